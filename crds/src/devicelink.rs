//! DeviceLink, `edge.cattle.io/v1alpha1`: links a device model instance to the
//! adaptor that drives it on a node.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::preserve_unknown_object;

/// Desired state of a DeviceLink.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "DeviceLink",
    namespaced,
    status = "DeviceLinkStatus",
    shortname = "dl",
    doc = "DeviceLink connects one device, described by a device model template, to the adaptor that drives it on a node.",
    printcolumn(name = "KIND", type_ = "string", json_path = ".spec.model.kind"),
    printcolumn(name = "NODE", type_ = "string", json_path = ".spec.adaptor.node"),
    printcolumn(name = "ADAPTOR", type_ = "string", json_path = ".spec.adaptor.name"),
    printcolumn(
        name = "PHASE",
        type_ = "string",
        json_path = ".status.conditions[-1].type"
    ),
    printcolumn(
        name = "STATUS",
        type_ = "string",
        json_path = ".status.conditions[-1].reason"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.adaptor.node",
    selectable = ".spec.adaptor.name"
)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkSpec {
    /// The adaptor that drives the device, and the node it runs on.
    pub adaptor: DeviceAdaptor,

    /// The device model (a CRD in devices.edge.cattle.io) the device is an instance of.
    pub model: DeviceModel,

    /// Secrets, ConfigMaps and DeviceLink fields that the device's settings refer to by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<DeviceLinkReference>,

    /// The device to create: labels and the spec of the model instance.
    pub template: DeviceTemplate,
}

/// Which adaptor drives the device, and where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceAdaptor {
    /// Name of the node whose adaptor reaches the device.
    pub node: String,

    /// Name of the adaptor, for example `adaptors.edge.cattle.io/dummy`.
    pub name: String,

    /// Deprecated in Octopus: adaptor parameters now belong to the device model. Kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub parameters: Option<serde_json::Value>,
}

/// The model a device is an instance of, named like a Kubernetes type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceModel {
    /// API version of the model, for example `devices.edge.cattle.io/v1alpha1`.
    pub api_version: String,
    /// Kind of the model, for example `DummySpecialDevice`.
    pub kind: String,
}

/// Labels for the device object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceMeta {
    /// Labels to put on the device object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The device object to create.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceTemplate {
    /// Metadata of the device object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<DeviceMeta>,

    /// Spec of the device object; its schema is the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub spec: Option<serde_json::Value>,
}

/// A named source of values that device settings refer to with `{name, item}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkReference {
    /// Name the device settings use to refer to this source.
    pub name: String,

    /// A Secret in the DeviceLink's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectItemsSource>,

    /// A ConfigMap in the DeviceLink's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ObjectItemsSource>,

    /// Fields of the DeviceLink itself.
    #[serde(
        default,
        rename = "downwardAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub downward_api: Option<DownwardApiSource>,
}

/// A Secret or ConfigMap, optionally narrowed to some of its keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ObjectItemsSource {
    /// Name of the object in the DeviceLink's namespace.
    pub name: String,
    /// Keys to use; all keys when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// DeviceLink fields exposed as reference items.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DownwardApiSource {
    /// The items, each a name and the field it takes its value from.
    pub items: Vec<DownwardApiItem>,
}

/// One DeviceLink field exposed under a name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiItem {
    /// Item name.
    pub name: String,
    /// The DeviceLink field: metadata.name, metadata.namespace, metadata.labels['x'], metadata.annotations['x'] or status fields.
    pub field_ref: ObjectFieldSelector,
}

/// Selects a field of an object, as in core/v1 ObjectFieldSelector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// Version of the schema the field path is written in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Path of the field.
    pub field_path: String,
}

/// Refers to one item of one entry of `spec.references`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ReferenceItem {
    /// Name of the entry in `spec.references`.
    pub name: String,
    /// Key within that entry.
    pub item: String,
}

/// Observed state of a DeviceLink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkStatus {
    /// The condition pipeline: NodeExisted, ModelExisted, AdaptorExisted, DeviceCreated, DeviceConnected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<DeviceLinkCondition>,

    /// The generation of the spec these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Node the device is reached from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Hostname address of that node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_host_name: String,
    /// Internal IP of that node.
    #[serde(
        default,
        rename = "nodeInternalIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_internal_ip: String,
    /// Internal DNS name of that node.
    #[serde(
        default,
        rename = "nodeInternalDNS",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_internal_dns: String,
    /// External IP of that node.
    #[serde(
        default,
        rename = "nodeExternalIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_external_ip: String,
    /// External DNS name of that node.
    #[serde(
        default,
        rename = "nodeExternalDNS",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_external_dns: String,

    /// The model that was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<DeviceModel>,

    /// The adaptor that was found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adaptor_name: String,

    /// Kept for Octopus compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_template_generation: Option<i64>,
}

/// One stage of the DeviceLink pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkCondition {
    /// Stage: NodeExisted, ModelExisted, AdaptorExisted, DeviceCreated or DeviceConnected.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// When status, reason or message last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened and what to do about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl DeviceLink {
    /// The conditions, or none yet.
    pub fn conditions(&self) -> &[DeviceLinkCondition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }
}
