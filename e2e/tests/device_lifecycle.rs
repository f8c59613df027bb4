//! The device object follows its DeviceLink: deleted or edited by hand, it
//! is put back from the template, with no one touching the DeviceLink.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{
    begin, delete_link_and_wait, dummy_link, eventually, eventually_showing,
    process::start_operator, wait_condition, wait_event,
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
    let path = devicelink_e2e::repo_root().join(format!("crds/generated/{crd_name}.yaml"));
    let crd: CustomResourceDefinition =
        serde_json::from_value(devicelink_e2e::yaml_documents(&path).remove(0)).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("install the CRD");
    wait_condition(&links, name, "ModelExisted", "True").await;

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
