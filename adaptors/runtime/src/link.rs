//! A DeviceLink as an adaptor keeps it: reduced on arrival to what the
//! runtime reads, since one is kept for every device (a whole DeviceLink,
//! with its metadata, template and five conditions, is about 2.5 KiB; this
//! is a few hundred bytes).
//!
//! What is read: which object it is and at which version (writes to its
//! status carry that version, so a stale copy cannot overwrite a newer
//! status), its references and the fields their downwardAPI items name,
//! whether the operator's stages before DeviceConnected are done, the
//! DeviceConnected condition as written, and the count of refused writes.

use std::borrow::Cow;

use devicelink_api::{
    DeviceLink, DeviceLinkCondition,
    condition::{self, ConditionType},
    devicelink::{
        DeviceAdaptor, DeviceLinkReference, DeviceLinkSpec, DeviceLinkStatus, DeviceModel,
    },
};
use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use serde_json::Value;

/// A DeviceLink as the adaptor's watch reads it: all of it but the
/// template, which is skipped while the JSON is read instead of being built
/// as a tree (it is the device's spec, and the device watch brings that).
/// A list page of 500 DeviceLinks of 20-property Modbus devices built
/// about 20 MiB of templates at once, the adaptor's peak.
#[derive(Deserialize, Clone, Debug)]
pub(crate) struct Arriving {
    metadata: ObjectMeta,
    spec: ArrivingSpec,
    #[serde(default)]
    status: Option<DeviceLinkStatus>,
}

#[derive(Deserialize, Clone, Debug)]
struct ArrivingSpec {
    adaptor: DeviceAdaptor,
    model: DeviceModel,
    #[serde(default)]
    references: Vec<DeviceLinkReference>,
}

/// The DeviceLink resource, read as [`Arriving`].
impl Resource for Arriving {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        DeviceLink::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        DeviceLink::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        DeviceLink::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        DeviceLink::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<Arriving> for Link {
    fn from(arriving: Arriving) -> Link {
        let spec = arriving.spec;
        Link::from(DeviceLink {
            metadata: arriving.metadata,
            spec: DeviceLinkSpec {
                adaptor: spec.adaptor,
                model: spec.model,
                references: spec.references,
                template: Default::default(),
            },
            status: arriving.status,
        })
    }
}

#[derive(Debug, PartialEq)]
pub(crate) struct Link {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) resource_version: String,
    pub(crate) references: Vec<DeviceLinkReference>,
    /// The fields the references' downwardAPI items name (usually none).
    pub(crate) downward: Value,
    /// Whether NodeExisted through DeviceCreated are all True: only then
    /// is DeviceConnected the adaptor's to write.
    pub(crate) stages_done: bool,
    /// DeviceConnected as written, and where in `status.conditions`.
    pub(crate) connected: Option<(usize, DeviceLinkCondition)>,
    /// `status.conditions`' length (where DeviceConnected goes if absent).
    pub(crate) conditions: usize,
    /// `status.refusedWrites.count`.
    pub(crate) refused: i64,
}

impl From<DeviceLink> for Link {
    fn from(link: DeviceLink) -> Link {
        let downward = if link
            .spec
            .references
            .iter()
            .any(|r| r.downward_api.is_some())
        {
            let whole = serde_json::to_value(&link).unwrap_or_default();
            devicelink_references::downward_fields(&whole, &link.spec.references)
        } else {
            Value::Null
        };
        let all = link.conditions();
        let stages_done = condition::true_prefix(all, ConditionType::DeviceConnected).is_some();
        let connected = all
            .iter()
            .position(|c| c.type_ == ConditionType::DeviceConnected.as_str())
            .map(|i| (i, all[i].clone()));
        let conditions = all.len();
        let refused = link.refused_writes().map_or(0, |r| r.count);
        Link {
            namespace: link.namespace().unwrap_or_default(),
            name: link.name_any(),
            resource_version: link.resource_version().unwrap_or_default(),
            references: link.spec.references,
            downward,
            stages_done,
            connected,
            conditions,
            refused,
        }
    }
}

impl Link {
    /// The Secrets and ConfigMaps its references name.
    pub(crate) fn objects(&self) -> Vec<devicelink_references::ObjectKey> {
        devicelink_references::objects_referenced(&self.namespace, &self.references)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_devicelink_is_kept_with_what_the_runtime_reads() {
        let link: DeviceLink = serde_json::from_value(json!({
            "metadata": {"name": "fan", "namespace": "ns", "uid": "u1", "resourceVersion": "42",
                         "labels": {"line": "3"}, "annotations": {"big": "x".repeat(4000)}},
            "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                     "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                               "kind": "DummySpecialDevice"},
                     "template": {"spec": {"protocol": {"location": "attic"}}},
                     "references": [{"name": "self", "downwardAPI": {"items": [
                         {"name": "line", "fieldRef": {"fieldPath": "metadata.labels['line']"}}]}}]},
            "status": {
                "conditions": [
                    {"type": "NodeExisted", "status": "True", "reason": "Found"},
                    {"type": "ModelExisted", "status": "True", "reason": "Found"},
                    {"type": "AdaptorExisted", "status": "True", "reason": "Found"},
                    {"type": "DeviceCreated", "status": "True", "reason": "Created"},
                    {"type": "DeviceConnected", "status": "False", "reason": "Unreachable"},
                ],
                "nodeName": "n", "nodeInternalIP": "10.0.0.7",
                "refusedWrites": {"count": 3},
            },
        }))
        .unwrap();
        let arriving: Arriving = serde_json::from_value(serde_json::to_value(&link).unwrap())
            .expect("read as the watch reads it");
        assert_eq!(Link::from(arriving), Link::from(link.clone()));
        let kept = Link::from(link);
        assert_eq!(kept.resource_version, "42");
        assert!(kept.stages_done);
        let (at, connected) = kept.connected.as_ref().unwrap();
        assert_eq!(
            (*at, connected.reason.as_str(), kept.conditions),
            (4, "Unreachable", 5)
        );
        assert_eq!(kept.refused, 3);
        assert_eq!(
            kept.downward,
            json!({"metadata": {"labels": {"line": "3"}}})
        );
    }
}
