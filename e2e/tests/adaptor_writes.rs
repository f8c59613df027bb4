//! An adaptor pod writes only what is assigned to it: its ServiceAccount
//! (`devicelink-adaptor-<kind>-<node>`) may patch the status of devices of
//! its kind on its node and the DeviceConnected of their DeviceLinks, and
//! the API server refuses the same writes on another node's objects (the
//! chart's ValidatingAdmissionPolicy `devicelink-adaptor-writes`, here from
//! deploy/manifests/rbac.yaml), naming the account and where the object is
//! assigned. RBAC alone grants every device of the kind on every node.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{SYSTEM_NAMESPACE, apply, begin, client_as, device_link, eventually_showing};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const ACCOUNT: &str = "devicelink-adaptor-dummy-edge-worker";

/// A fan device as the operator makes it, assigned to `node`.
fn fan(namespace: &str, name: &str, node: &str) -> DummySpecialDevice {
    serde_json::from_value(json!({
        "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"edge.cattle.io/adaptor": "dummy", "edge.cattle.io/node": node}},
        "spec": {"protocol": {"location": "hall"}, "gear": "slow"},
    }))
    .unwrap()
}

fn status_patch() -> Patch<serde_json::Value> {
    Patch::Merge(json!({"status": {"on": true, "gear": "fast", "rotatingSpeed": 1}}))
}

#[tokio::test]
async fn an_adaptor_writes_only_its_own_nodes_devices_and_links() {
    let namespace = "e2e-adaptor-writes";
    let (_guard, admin) = begin(namespace).await;
    let devices: Api<DummySpecialDevice> = Api::namespaced(admin.clone(), namespace);
    let links: Api<DeviceLink> = Api::namespaced(admin.clone(), namespace);
    for name in ["mine", "theirs"] {
        let _ = devices.delete(name, &DeleteParams::default()).await;
        let _ = links.delete(name, &DeleteParams::default()).await;
    }
    // The binding the operator gives the account when its node has devices.
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    apply(
        &bindings,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e-adaptor-writes"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "devicelink-adaptor-dummy"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT,
                          "namespace": SYSTEM_NAMESPACE}],
        }),
    )
    .await;
    let create = PostParams::default();
    devices
        .create(&create, &fan(namespace, "mine", "edge-worker"))
        .await
        .unwrap();
    devices
        .create(&create, &fan(namespace, "theirs", "far-node"))
        .await
        .unwrap();
    for (name, node) in [("mine", "edge-worker"), ("theirs", "far-node")] {
        let link = device_link(
            namespace,
            name,
            node,
            "dummy",
            "DummySpecialDevice",
            json!({"spec": {"protocol": {"location": "hall"}, "gear": "slow"}}),
        );
        links.create(&create, &link).await.unwrap();
    }

    let adaptor = client_as(&format!(
        "system:serviceaccount:{SYSTEM_NAMESPACE}:{ACCOUNT}"
    ))
    .await;
    let its_devices: Api<DummySpecialDevice> = Api::namespaced(adaptor.clone(), namespace);
    let its_links: Api<DeviceLink> = Api::namespaced(adaptor.clone(), namespace);
    let params = PatchParams::default();
    // Its own node's device and DeviceLink: written (once RBAC has the binding).
    eventually_showing(
        "the adaptor to write its own device's status",
        WAIT,
        || async {
            its_devices
                .patch_status("mine", &params, &status_patch())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    // (DeviceConnected is written whole, with an update, as the adaptor does.)
    let with_condition = |mut link: DeviceLink| {
        link.status = serde_json::from_value(json!({"conditions": [{"type": "NodeExisted",
            "status": "True", "reason": "Success", "message": "",
            "lastUpdateTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap();
        link
    };
    let mine = with_condition(its_links.get("mine").await.unwrap());
    its_links
        .replace_status("mine", &create, &mine)
        .await
        .expect("the adaptor writes its own DeviceLink's status");

    // Another node's: refused, saying whose account and where it belongs.
    let refused = |result: kube::Result<_>| match result {
        Err(kube::Error::Api(e)) if e.code == 403 => e.message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let message = refused(
        its_devices
            .patch_status("theirs", &params, &status_patch())
            .await
            .map(|_: DummySpecialDevice| ()),
    );
    assert!(
        message.contains(&format!(
            "{ACCOUNT} may write only the devices and DeviceLinks of its own adaptor kind and node"
        )) && message.contains("theirs is assigned to dummy on far-node"),
        "{message}"
    );
    // Nor may it change the device itself (as it does to release one) or
    // forge its DeviceLink's condition.
    let change = Patch::Merge(json!({"metadata": {"labels": {"forged": "yes"}}}));
    refused(
        its_devices
            .patch("theirs", &params, &change)
            .await
            .map(|_: DummySpecialDevice| ()),
    );
    let theirs = with_condition(its_links.get("theirs").await.unwrap());
    let message = refused(
        its_links
            .replace_status("theirs", &create, &theirs)
            .await
            .map(|_| ()),
    );
    assert!(
        message.contains("is assigned to dummy on far-node"),
        "{message}"
    );

    for name in ["mine", "theirs"] {
        devices
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        links.delete(name, &DeleteParams::default()).await.unwrap();
    }
    bindings
        .delete("e2e-adaptor-writes", &DeleteParams::default())
        .await
        .unwrap();
}
