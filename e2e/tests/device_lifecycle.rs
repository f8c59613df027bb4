//! The device object follows its DeviceLink: deleted or edited by hand, it
//! is put back from the template, with no one touching the DeviceLink.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{client, eventually, eventually_showing, exclusive, process::start_operator};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_deleted_or_edited_device_is_put_back_from_the_template() {
    let _guard = exclusive().await;
    let client = client().await;
    let namespace = "e2e-device-lifecycle";
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await;
    let operator = start_operator();

    // kwok makes the adaptor pod Ready, which is all DeviceCreated needs.
    let name = "attic-fan";
    let link: DeviceLink = serde_json::from_value(json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DeviceLink",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "adaptor": {"node": "edge-worker", "name": "adaptors.edge.cattle.io/dummy"},
            "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice"},
            "template": {
                "metadata": {"labels": {"room": "attic"}},
                "spec": {"protocol": {"location": "attic"}, "gear": "middle"}
            }
        }
    }))
    .unwrap();
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

    links
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete DeviceLink");
    eventually("the DeviceLink to be gone", WAIT, || async {
        links.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    operator.stop().await;
}
