//! An adaptor pod writes only what is assigned to it: its ServiceAccount
//! (`devicelink-adaptor-<kind>-<node>`) may patch the status of devices of
//! its kind on its node and the DeviceConnected and refused writes of their
//! DeviceLinks, and records no Events; and
//! the API server refuses the same writes on another node's objects (the
//! chart's ValidatingAdmissionPolicy `devicelink-adaptor-writes`, here from
//! deploy/manifests/rbac.yaml), naming the account and where the object is
//! assigned. RBAC alone grants every device of the kind on every node.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice, labels::node_label_value};
use devicelink_e2e::{
    SYSTEM_NAMESPACE, apply, begin, client_as, client_with_token, dummy_link, eventually_showing,
    token_for,
};
use k8s_openapi::api::{
    core::v1::{Node, Pod, ServiceAccount},
    events::v1::Event,
    rbac::v1::ClusterRoleBinding,
};
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

/// The binding the operator gives an adaptor account when its node has
/// devices: the dummy kind's ClusterRole.
async fn bind_to_the_dummy_role(bindings: &Api<ClusterRoleBinding>, name: &str, account: &str) {
    apply(
        bindings,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "devicelink-adaptor-dummy"},
            "subjects": [{"kind": "ServiceAccount", "name": account,
                          "namespace": SYSTEM_NAMESPACE}],
        }),
    )
    .await;
}

/// The DeviceLink of a fan device (see [`fan`]) assigned to `node`.
fn fan_link(namespace: &str, name: &str, node: &str) -> DeviceLink {
    dummy_link(
        namespace,
        name,
        node,
        json!({"spec": {"protocol": {"location": "hall"}, "gear": "slow"}}),
    )
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
    // (A failed run may have left a finalizer on one.)
    for name in ["mine", "theirs"] {
        let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let _ = devices.patch(name, &PatchParams::default(), &unblock).await;
        let _ = devices.delete(name, &DeleteParams::default()).await;
        let _ = links.delete(name, &DeleteParams::default()).await;
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bind_to_the_dummy_role(&bindings, "e2e-adaptor-writes", ACCOUNT).await;
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
        links
            .create(&create, &fan_link(namespace, name, node))
            .await
            .unwrap();
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
    // (The whole status, with an update; the adaptor itself patches
    // DeviceConnected and its count of refused writes, below.)
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
    // Its own device: only the status and its own finalizer. Moving the
    // device to another node (its labels), changing what it drives (its
    // spec), or dropping someone else's finalizer is the operator's to do.
    devices
        .patch(
            "mine",
            &params,
            &Patch::Merge(json!({"metadata": {"finalizers": [
                "edge.cattle.io/adaptor-cleanup", "example.com/backup"]}})),
        )
        .await
        .expect("the operator's finalizer and another one");
    let own_device_changes = [
        json!({"metadata": {"labels": {"edge.cattle.io/node": "far-node"}}}),
        json!({"spec": {"gear": "fast"}}),
        json!({"metadata": {"annotations": {"forged": "yes"}}}),
        json!({"metadata": {"finalizers": ["edge.cattle.io/adaptor-cleanup"]}}),
    ];
    for change in own_device_changes {
        let message = refused(
            its_devices
                .patch("mine", &params, &Patch::Merge(&change))
                .await
                .map(|_: DummySpecialDevice| ()),
        );
        assert!(
            message.contains(&format!(
                "{ACCOUNT} may change only the status of dummyspecialdevices mine and remove its own finalizer"
            )),
            "{change}: {message}"
        );
    }
    // Releasing it (removing its own finalizer) is taken.
    its_devices
        .patch(
            "mine",
            &params,
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/backup"]}})),
        )
        .await
        .expect("the adaptor removes its own finalizer");
    devices
        .patch(
            "mine",
            &params,
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
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

    // It records no Events, not even about its own DeviceLinks: the
    // operator records them from the status (a refused write made up on
    // another node's device would mislead its operators).
    let events: Api<Event> = Api::namespaced(adaptor.clone(), namespace);
    for about in ["mine", "theirs"] {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"generateName": "e2e-", "namespace": namespace},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "edge.cattle.io/devicelink-adaptor-dummy",
            "reportingInstance": ACCOUNT, "action": "Write", "reason": "WriteRefused",
            "type": "Warning", "note": "a write from MQTT was refused",
            "regarding": {"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
                          "namespace": namespace, "name": about}}))
        .unwrap();
        let message = refused(events.create(&create, &event).await.map(|_| ()));
        assert!(
            message.contains("cannot create resource \"events\""),
            "{about}: {message}"
        );
    }
    // Refused writes are counted in the status instead, held as
    // DeviceConnected is: its own DeviceLink's, not another node's.
    let count = Patch::Merge(json!({"status": {"refusedWrites": {
        "count": 1, "lastMessage": "on is not a boolean"}}}));
    its_links
        .patch_status("mine", &params, &count)
        .await
        .expect("the adaptor counts refused writes on its own DeviceLink");
    let message = refused(
        its_links
            .patch_status("theirs", &params, &count)
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

/// Node names over 63 characters are shortened in labels and account
/// names (the first 50 characters and a digest). Two such names alike in
/// their first 50 characters give accounts whose names the policy cannot
/// tell apart from a DeviceLink's full node name alone; the token's own
/// node (every token a kubelet gives a pod is bound to the pod, and names
/// its node) keeps them apart.
#[tokio::test]
async fn adaptors_of_long_node_names_alike_in_their_first_50_characters_stay_apart() {
    let namespace = "e2e-adaptor-writes-long-nodes";
    let (_guard, admin) = begin(namespace).await;
    // Names whose 50th character is a letter, and names whose 50th is a
    // dot (which the label drops before its digest).
    for base in [
        "cabinet-12.line-3.plant-7.edge-sites.examplecorp-ab.internal.zone",
        "cabinet-12.line-3.plant-7.edge-sites.example-corp.internal.zone",
    ] {
        long_nodes_stay_apart(&admin, namespace, base).await;
    }
}

async fn long_nodes_stay_apart(admin: &kube::Client, namespace: &str, base: &str) {
    let (node_a, node_b) = (format!("{base}-a"), format!("{base}-b"));
    let (label_a, label_b) = (node_label_value(&node_a), node_label_value(&node_b));
    assert_eq!(label_a[..50], label_b[..50], "the names share a prefix");
    assert_ne!(label_a, label_b);
    let account = format!("devicelink-adaptor-dummy-{label_a}");

    let nodes: Api<Node> = Api::all(admin.clone());
    for node in [&node_a, &node_b] {
        apply(
            &nodes,
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
        )
        .await;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
    apply(
        &accounts,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": SYSTEM_NAMESPACE}}),
    )
    .await;
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bind_to_the_dummy_role(&bindings, "e2e-adaptor-writes-long", &account).await;
    // The adaptor pod on node A (never run here: its token is what counts).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
    let _ = pods
        .delete(&account, &DeleteParams::default().grace_period(0))
        .await;
    eventually_showing("an earlier pod of the account to go", WAIT, || async {
        match pods.get_opt(&account).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": account, "namespace": SYSTEM_NAMESPACE},
        "spec": {"nodeName": node_a, "serviceAccountName": account,
                 "containers": [{"name": "adaptor", "image": "example.com/adaptor-dummy"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let token = token_for(&account, Some(&account)).expect("a token bound to the pod");
    let adaptor = client_with_token(&token).await;

    let links: Api<DeviceLink> = Api::namespaced(admin.clone(), namespace);
    for (name, node) in [("long-a", &node_a), ("long-b", &node_b)] {
        let _ = links.delete(name, &DeleteParams::default()).await;
        links
            .create(&PostParams::default(), &fan_link(namespace, name, node))
            .await
            .unwrap();
    }
    let its_links: Api<DeviceLink> = Api::namespaced(adaptor, namespace);
    let with_condition = |mut link: DeviceLink| {
        link.status = serde_json::from_value(json!({"conditions": [{"type": "DeviceConnected",
            "status": "True", "reason": "Healthy", "message": "",
            "lastUpdateTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap();
        link
    };
    eventually_showing(
        "the adaptor to write its own node's DeviceLink",
        WAIT,
        || async {
            let link = with_condition(its_links.get("long-a").await.map_err(|e| e.to_string())?);
            its_links
                .replace_status("long-a", &PostParams::default(), &link)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let other = with_condition(its_links.get("long-b").await.unwrap());
    match its_links
        .replace_status("long-b", &PostParams::default(), &other)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 => assert!(
            e.message
                .contains(&format!("long-b is assigned to dummy on {node_b}"))
                && e.message
                    .contains(&format!("(the token is of a pod on {node_a})")),
            "{}",
            e.message
        ),
        other => panic!("another long node's DeviceLink written: {other:?}"),
    }

    for name in ["long-a", "long-b"] {
        links.delete(name, &DeleteParams::default()).await.unwrap();
    }
    pods.delete(&account, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    bindings
        .delete("e2e-adaptor-writes-long", &DeleteParams::default())
        .await
        .unwrap();
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .unwrap();
    for node in [&node_a, &node_b] {
        nodes.delete(node, &DeleteParams::default()).await.unwrap();
    }
}
