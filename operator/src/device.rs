//! The device object: an instance of the DeviceLink's model, made from its
//! template and owned by it.

use std::collections::BTreeMap;

use devicelink_api::{DeviceLink, labels};
use kube::{
    Resource, ResourceExt,
    api::{DynamicObject, ObjectMeta},
    core::ApiResource,
};

/// The device object we want for a DeviceLink.
///
/// Labels from the template are kept; the node and adaptor labels are ours
/// and let an adaptor watch only the devices assigned to it.
pub fn desired(link: &DeviceLink, model: &ApiResource, adaptor_short_name: &str) -> DynamicObject {
    let mut device_labels: BTreeMap<String, String> = link
        .spec
        .template
        .metadata
        .as_ref()
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    device_labels.insert(
        labels::NODE.into(),
        labels::node_label_value(&link.spec.adaptor.node),
    );
    device_labels.insert(labels::ADAPTOR.into(), adaptor_short_name.into());

    let mut device = DynamicObject::new(&link.name_any(), model)
        .within(link.namespace().as_deref().unwrap_or_default());
    device.metadata = ObjectMeta {
        labels: Some(device_labels),
        owner_references: link.controller_owner_ref(&()).map(|o| vec![o]),
        finalizers: Some(vec![
            devicelink_api::finalizer::DEVICE_FINALIZER.to_string(),
        ]),
        ..device.metadata
    };
    device.data = serde_json::json!({
        "spec": link.spec.template.spec.clone().unwrap_or_else(|| serde_json::json!({})),
    });
    device
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_api::DeviceLinkSpec;
    use devicelink_api::devicelink::{DeviceAdaptor, DeviceMeta, DeviceModel, DeviceTemplate};

    #[test]
    fn device_takes_template_and_our_labels_and_is_owned() {
        let mut link = DeviceLink::new(
            "fan",
            DeviceLinkSpec {
                adaptor: DeviceAdaptor {
                    node: "edge".into(),
                    name: "adaptors.edge.cattle.io/dummy".into(),
                    parameters: None,
                },
                model: DeviceModel {
                    api_version: "devices.edge.cattle.io/v1alpha1".into(),
                    kind: "DummySpecialDevice".into(),
                },
                references: vec![],
                template: DeviceTemplate {
                    metadata: Some(DeviceMeta {
                        labels: BTreeMap::from([("room".into(), "living".into())]),
                    }),
                    spec: Some(serde_json::json!({"on": true})),
                },
            },
        );
        link.metadata.namespace = Some("default".into());
        link.metadata.uid = Some("u-1".into());
        let model = ApiResource::erase::<devicelink_api::dummy::DummySpecialDevice>(&());
        let device = desired(&link, &model, "dummy");
        let l = device.metadata.labels.unwrap();
        assert_eq!(l["room"], "living");
        assert_eq!(l[labels::NODE], "edge");
        assert_eq!(device.metadata.owner_references.unwrap()[0].uid, "u-1");
        assert_eq!(
            device.metadata.finalizers,
            Some(vec![
                devicelink_api::finalizer::DEVICE_FINALIZER.to_string()
            ]),
            "the adaptor gets to clean up before the device goes"
        );
        assert_eq!(device.data["spec"]["on"], true);
        assert_eq!(device.types.unwrap().kind, "DummySpecialDevice");
    }
}
