//! The device object follows its DeviceLink: deleted or edited by hand, it
//! is put back from the template, with no one touching the DeviceLink.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{
    begin, delete_link_and_wait, dummy_link, eventually, eventually_showing,
    process::start_operator, wait_condition, wait_event, wait_reason,
};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_deleted_or_edited_device_is_put_back_from_the_template() {
    let namespace = "e2e-device-lifecycle";
    let (_guard, client) = begin(namespace).await;
    let operator = start_operator();

    // kwok makes the adaptor pod Ready, which is all DeviceCreated needs.
    let name = "attic-fan";
    let link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({
            "metadata": {"labels": {"room": "attic"}},
            "spec": {"protocol": {"location": "attic"}, "gear": "middle"}
        }),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    let first = eventually("the device to be created", WAIT, || async {
        devices.get_opt(name).await.ok()?
    })
    .await;
    assert_eq!(
        first.labels().get("room").map(String::as_str),
        Some("attic")
    );

    // Deleted by hand: a new device with the template's spec follows.
    devices
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the device");
    let again = eventually_showing("the device to be created again", WAIT, || async {
        match devices.get_opt(name).await {
            Ok(Some(d)) if d.uid() != first.uid() => Ok(d),
            other => Err(format!("{:?}", other.map(|d| d.map(|d| d.uid())))),
        }
    })
    .await;
    assert_eq!(
        serde_json::to_value(&again.spec).unwrap()["gear"],
        "middle",
        "re-created from the template"
    );

    // Edited by hand: the template's value comes back.
    devices
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gear": "fast"}})),
        )
        .await
        .expect("edit the device");
    eventually("the template's gear to be restored", WAIT, || async {
        let d = devices.get(name).await.ok()?;
        (serde_json::to_value(&d.spec).ok()?["gear"] == "middle").then_some(())
    })
    .await;

    // Its node label moved to another node (which would hand it to that
    // node's adaptor), or its adaptor label dropped: both put back.
    for (tamper, label) in [
        (
            json!({"edge.cattle.io/node": "another-node"}),
            "edge.cattle.io/node",
        ),
        (
            json!({"edge.cattle.io/adaptor": null}),
            "edge.cattle.io/adaptor",
        ),
    ] {
        let before = devices
            .get(name)
            .await
            .unwrap()
            .labels()
            .get(label)
            .cloned();
        devices
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": tamper}})),
            )
            .await
            .expect("edit the device's labels");
        eventually_showing(&format!("{label} to be put back"), WAIT, || async {
            let now = devices.get(name).await.map_err(|e| e.to_string())?;
            let now = now.labels().get(label).cloned();
            (now == before).then_some(()).ok_or(format!("{now:?}"))
        })
        .await;
    }

    let condition = links
        .get(name)
        .await
        .unwrap()
        .conditions()
        .iter()
        .find(|c| c.type_ == "DeviceCreated")
        .cloned()
        .expect("DeviceCreated condition");
    assert_eq!(condition.status, "True", "{condition:?}");

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_secret_reference_is_named_and_recovers_when_created() {
    let namespace = "e2e-references";
    let (_guard, client) = begin(namespace).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let _ = secrets.delete("attic-mqtt", &DeleteParams::default()).await;
    let operator = start_operator();

    let name = "attic-fan";
    let mut link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
                "protocol": {"location": "attic"},
                "gear": "slow",
                "extension": {"mqtt": {
                    "client": {
                        "server": "tcp://127.0.0.1:1883",
                        "basicAuth": {
                            "usernameRef": {"name": "mqtt-credentials", "item": "username"},
                            "passwordRef": {"name": "mqtt-credentials", "item": "password"}
                        }
                    },
                "message": {"topic": "cattle.io/octopus/:namespace/:name"}
            }}
        }}),
    );
    link.spec.references = serde_json::from_value(json!([
        {"name": "mqtt-credentials", "secret": {"name": "attic-mqtt", "items": ["username", "password"]}}
    ]))
    .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");

    let missing = wait_condition(&links, name, "DeviceCreated", "False").await;
    assert_eq!(missing.reason, "ReferenceNotFound");
    assert!(
        missing.message.contains("\"attic-mqtt\"")
            && missing.message.contains("spec.references[0].secret.name"),
        "names the Secret and the field: {}",
        missing.message
    );
    wait_event(&client, namespace, name, "ReferenceNotFound", "Warning").await;

    // The Secret appears without the password: the missing key is named.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "attic-mqtt"},
        "stringData": {"username": "fan"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    eventually_showing("the missing key to be named", WAIT, || async {
        let link = links.get(name).await.map_err(|e| e.to_string())?;
        match link
            .conditions()
            .iter()
            .find(|c| c.type_ == "DeviceCreated")
        {
            Some(c) if c.message.contains("password") && c.message.contains("items") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Completing the Secret lets the DeviceLink proceed by itself.
    secrets
        .patch(
            "attic-mqtt",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "s3cret"}})),
        )
        .await
        .expect("add the password");
    wait_condition(&links, name, "DeviceCreated", "True").await;
    let shown = serde_json::to_string(&links.get(name).await.unwrap().status).unwrap();
    assert!(!shown.contains("s3cret"), "no secret value in the status");

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_node_that_goes_and_comes_back_and_deletion_without_node_or_adaptor() {
    let namespace = "e2e-node-lifecycle";
    let (_guard, client) = begin(namespace).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = "e2e-transient-node";
    let fake_node = devicelink_e2e::kwok_node(node);
    let _ = nodes.create(&PostParams::default(), &fake_node).await;
    let operator = start_operator();

    // No adaptor process runs here (no local kubelet): only the operator's
    // stages matter, and the deletion below must not wait for an adaptor.
    let name = "shed-fan";
    let link = dummy_link(
        namespace,
        name,
        node,
        json!({"spec": {"protocol": {"location": "shed"}, "gear": "slow"}}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    wait_condition(&links, name, "DeviceCreated", "True").await;

    // The node goes away: NodeExisted False, naming it; the later stages go.
    nodes
        .delete(node, &DeleteParams::default())
        .await
        .expect("delete node");
    let gone = wait_condition(&links, name, "NodeExisted", "False").await;
    assert!(gone.message.contains(node), "{}", gone.message);
    let conditions = links.get(name).await.unwrap().conditions().len();
    assert_eq!(conditions, 1, "a failing stage removes the later ones");
    wait_event(&client, namespace, name, "NotFound", "Warning").await;

    // It comes back: the DeviceLink recovers by itself.
    nodes
        .create(&PostParams::default(), &fake_node)
        .await
        .expect("re-create node");
    wait_condition(&links, name, "DeviceCreated", "True").await;

    // Node gone again, and no adaptor to release the device: deleting the
    // DeviceLink still completes (the operator releases the device itself).
    nodes
        .delete(node, &DeleteParams::default())
        .await
        .expect("delete node");
    wait_condition(&links, name, "NodeExisted", "False").await;
    delete_link_and_wait(&links, name).await;
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    assert!(
        devices.get_opt(name).await.unwrap().is_none(),
        "device gone too"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_model_crd_installed_late_is_picked_up() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let namespace = "e2e-model-late";
    let (_guard, client) = begin(namespace).await;
    // A shipped model no other test uses, removed for the length of this test.
    let crd_name = "mqttdevices.devices.edge.cattle.io";
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(crd_name, &DeleteParams::default()).await;
    eventually("the MQTTDevice CRD to be gone", WAIT, || async {
        crds.get_opt(crd_name).await.ok()?.is_none().then_some(())
    })
    .await;
    let operator = start_operator();

    let name = "late-model";
    let mut link = dummy_link(namespace, name, "edge-worker", json!({"spec": {}}));
    link.spec.model = serde_json::from_value(
        json!({"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "MQTTDevice"}),
    )
    .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    let missing = wait_condition(&links, name, "ModelExisted", "False").await;
    assert!(
        missing.message.contains("MQTTDevice") && missing.message.contains("spec.model"),
        "names the model and the field: {}",
        missing.message
    );

    // Installing the CRD is all it takes.
    let path = devicelink_e2e::repo_root().join(format!("api/generated/{crd_name}.yaml"));
    let crd: CustomResourceDefinition =
        serde_json::from_value(devicelink_e2e::yaml_documents(&path).remove(0)).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("install the CRD");
    wait_condition(&links, name, "ModelExisted", "True").await;

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_node_that_is_not_ready_is_shown_and_the_devicelink_proceeds_once_it_is() {
    let namespace = "e2e-node-readiness";
    let (_guard, client) = begin(namespace).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = "e2e-unready-node";
    // Registered by a kubelet that is not ready yet; kwok does not run it
    // (no kwok annotation), so nothing makes it Ready behind the test.
    let _ = nodes.delete(node, &DeleteParams::default()).await;
    eventually("the node of an earlier run to be gone", WAIT, || async {
        nodes.get_opt(node).await.ok()?.is_none().then_some(())
    })
    .await;
    let unready: Node = serde_json::from_value(json!({
        "metadata": {"name": node, "labels": {"type": "kwok"}},
        "status": {"conditions": [{"type": "Ready", "status": "False",
            "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false"}]},
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &unready)
        .await
        .expect("create node");
    let operator = start_operator();

    let name = "barn-fan";
    let link = dummy_link(
        namespace,
        name,
        node,
        json!({"spec": {"protocol": {"location": "barn"}, "gear": "slow"}}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    // NodeExisted stays True (the node exists) and says it is not Ready:
    // the kubelet's reason (or, once the node controller has given up on
    // it, that its status is unknown).
    let shown = wait_reason(&links, name, "NodeExisted", "True", "NotReady").await;
    assert!(
        shown
            .message
            .starts_with(&format!("node {node:?} exists but is not Ready (Ready is ")),
        "{}",
        shown.message
    );
    wait_reason(&links, name, "ModelExisted", "True", "Found").await;

    // Its kubelet reports Ready (as a kubelet would, on the status): the
    // DeviceLink says so by itself.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    nodes
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [{"type": "Ready",
                "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": now}]}})),
        )
        .await
        .expect("report the node Ready");
    let ready = wait_reason(&links, name, "NodeExisted", "True", "Found").await;
    assert_eq!(ready.message, "");

    delete_link_and_wait(&links, name).await;
    // No kubelet runs the adaptor pod made for this node, so none confirms
    // its deletion either: removed here, with the node.
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(client.clone(), "devicelink-system");
    let _ = pods
        .delete(
            "devicelink-adaptor-dummy-e2e-unready-node",
            &DeleteParams::default().grace_period(0),
        )
        .await;
    let _ = nodes.delete(node, &DeleteParams::default()).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_model_crd_that_is_not_established_is_named_with_why() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let namespace = "e2e-model-established";
    let (_guard, client) = begin(namespace).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let group = "e2e-names.example.com";
    // Two CRDs of one group that both want the singular "widget": the
    // second is refused its names and never established while the first
    // exists.
    let crd = |plural: &str, kind: &str| -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": "widget", "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        }))
        .unwrap()
    };
    let (first, second) = (format!("widgets.{group}"), format!("gadgets.{group}"));
    for name in [&first, &second] {
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
    eventually("the CRDs of an earlier run to be gone", WAIT, || async {
        for name in [&first, &second] {
            crds.get_opt(name).await.ok()?.is_none().then_some(())?;
        }
        Some(())
    })
    .await;
    crds.create(&PostParams::default(), &crd("widgets", "Widget"))
        .await
        .expect("create the first CRD");
    eventually("the first CRD to be established", WAIT, || async {
        let crd = crds.get(&first).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
    crds.create(&PostParams::default(), &crd("gadgets", "Gadget"))
        .await
        .expect("create the clashing CRD");
    let operator = start_operator();

    let name = "gadget";
    let mut link = dummy_link(namespace, name, "edge-worker", json!({"spec": {}}));
    link.spec.model =
        serde_json::from_value(json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget"}))
            .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    let refused = wait_reason(&links, name, "ModelExisted", "False", "NotEstablished").await;
    assert!(
        refused.message.contains(&second)
            && refused.message.contains("(spec.model)")
            && refused.message.contains("\"widget\" is already in use"),
        "names the CRD, the field and the API server's reason: {}",
        refused.message
    );

    // The clash resolved, the API server establishes the CRD and the
    // DeviceLink moves on to the next stage (no adaptor handles Gadget).
    crds.delete(&first, &DeleteParams::default())
        .await
        .expect("delete the first CRD");
    wait_reason(&links, name, "ModelExisted", "True", "Found").await;
    wait_reason(&links, name, "AdaptorExisted", "False", "NotFound").await;

    delete_link_and_wait(&links, name).await;
    let _ = crds.delete(&second, &DeleteParams::default()).await;
    operator.stop().await;
}

/// Octopus's samples are YAML that kubectl reads as YAML 1.1, where an
/// unquoted `no` (or OFF, YES, ON...) is a boolean: the device made from
/// such a template is refused, and the DeviceLink says why and what to do.
#[tokio::test]
async fn a_yaml_1_1_boolean_where_text_is_wanted_is_explained() {
    let namespace = "e2e-yaml-1-1";
    let (_guard, client) = begin(namespace).await;
    let operator = start_operator();
    let _kubelet = devicelink_e2e::LocalKubelet::start(client.clone());
    let manifest = format!(
        "apiVersion: edge.cattle.io/v1alpha1
kind: DeviceLink
metadata: {{name: porch-fan, namespace: {namespace}}}
spec:
  adaptor: {{node: edge-worker, name: adaptors.edge.cattle.io/dummy}}
  model: {{apiVersion: devices.edge.cattle.io/v1alpha1, kind: DummySpecialDevice}}
  template:
    spec:
      protocol:
        location: no
      gear: slow
"
    );
    let applied = devicelink_e2e::kubectl::kubectl(&["apply", "-f", "-"], Some(&manifest));
    assert!(applied.success, "{}", applied.text);
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let condition =
        devicelink_e2e::wait_reason(&links, "porch-fan", "DeviceCreated", "False", "Fail").await;
    assert!(
        condition.message.contains(
            "spec.template.spec.protocol.location came as true or false where text is wanted: YAML 1.1"
        ) && condition.message.contains("quote it"),
        "{}",
        condition.message
    );
    devicelink_e2e::wait_event(&client, namespace, "porch-fan", "Fail", "Warning").await;
    devicelink_e2e::delete_link_and_wait(&links, "porch-fan").await;
    operator.stop().await;
}
