//! Dummy device models: simulated devices for demos, tests and benchmarks.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mqtt::DeviceExtension;

/// A simulated fan.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "DummySpecialDevice",
    namespaced,
    status = "DummySpecialDeviceStatus",
    shortname = "dummyspecial",
    doc = "DummySpecialDevice is a simulated fan: turned on, it speeds up to the ceiling of its gear.",
    printcolumn(name = "GEAR", type_ = "string", json_path = ".status.gear"),
    printcolumn(name = "SPEED", type_ = "integer", json_path = ".status.rotatingSpeed"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DummySpecialDeviceSpec {
    /// Extensions, such as publishing to MQTT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,

    /// Where the simulated device is.
    pub protocol: DummySpecialDeviceProtocol,

    /// Whether the fan runs. Default false.
    #[serde(default)]
    pub on: bool,

    /// How fast the fan runs: slow, middle or fast.
    #[serde(default)]
    pub gear: Gear,
}

/// Where the simulated device is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DummySpecialDeviceProtocol {
    /// A free-form location, such as `living_room`.
    pub location: String,
}

/// Fan gears.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gear {
    #[default]
    Slow,
    Middle,
    Fast,
}

/// What the fan reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DummySpecialDeviceStatus {
    /// The gear the fan runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gear: Option<Gear>,
    /// Revolutions per minute.
    #[serde(default)]
    pub rotating_speed: i32,
    /// The state of the device's extensions.
    // Boxed: an adaptor keeps a typed copy of each of thousands of devices
    // (without its status), and this was most of the status's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Box<crate::property::ExtensionStatus>>,
}

impl crate::mqtt::WithMqttExtension for DummySpecialDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}

/// A simulated device whose properties are declared in its spec, including
/// nested objects and arrays; the adaptor reports made-up values for them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "DummyProtocolDevice",
    namespaced,
    status = "DummyProtocolDeviceStatus",
    shortname = "dummyprotocol",
    doc = "DummyProtocolDevice is a simulated device with declared properties of any shape.",
    printcolumn(name = "IP", type_ = "string", json_path = ".spec.protocol.ip"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.properties) || !has(self.props)",
    "message": "props is the older name of properties: give one of them",
    "fieldPath": ".props",
}]))]
pub struct DummyProtocolDeviceSpec {
    /// Extensions, such as publishing to MQTT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,

    /// Where the simulated device is.
    pub protocol: DummyProtocolDeviceProtocol,

    /// The properties, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub properties: BTreeMap<String, DummyProtocolProp>,

    /// The older Octopus name of `properties`; the status then reports
    /// under `props` too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub props: BTreeMap<String, DummyProtocolProp>,

    /// How the simulation runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<DummyProtocolParameters>,
}

impl DummyProtocolDeviceSpec {
    /// The declared properties, under whichever name the spec used.
    pub fn declared(&self) -> &BTreeMap<String, DummyProtocolProp> {
        if self.properties.is_empty() {
            &self.props
        } else {
            &self.properties
        }
    }
}

/// How the simulation runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DummyProtocolParameters {
    /// How often read-only properties take new values. Default 2s; zero
    /// means the default, less than 100ms is taken as 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "2s"))]
    pub sync_interval: Option<crate::duration::Duration>,
}

impl DummyProtocolParameters {
    /// The sync interval when none is given (or zero): see
    /// [`crate::duration::sync_interval`].
    pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
}

/// Where the simulated device is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DummyProtocolDeviceProtocol {
    /// IP address or host name of the (simulated) device.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [{
        "rule": "isIP(self) || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "message": "must be an IP address or a host name",
    }]))]
    pub ip: String,
}

/// Kinds of declared property.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DummyPropType {
    String,
    Int,
    Float,
    Boolean,
    Array,
    Object,
}

/// A declared property.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.type == 'array') == (has(self.arrayProperties) || has(self.arrayProps))",
        "message": "arrayProperties describes the items of an array: set it exactly when type is array",
        "fieldPath": ".arrayProperties",
    },
    {
        "rule": "self.type == 'object' || !(has(self.objectProperties) || has(self.objectProps))",
        "message": "objectProperties describes the fields of an object: set it only when type is object",
        "fieldPath": ".objectProperties",
    },
    {
        "rule": "!(has(self.arrayProperties) && has(self.arrayProps)) && !(has(self.objectProperties) && has(self.objectProps))",
        "message": "arrayProps and objectProps are the older names of arrayProperties and objectProperties: give one of each",
    },
]))]
pub struct DummyProtocolProp {
    /// string, int, float, boolean, array or object.
    #[serde(rename = "type")]
    pub type_: DummyPropType,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Whether the property is only read: the device changes it on every
    /// sync. A writable one keeps its value until written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The items of an array property (nested declarations are kept as
    /// written and checked by the adaptor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nested_prop")]
    pub array_properties: Option<Box<DummyProtocolProp>>,
    /// The fields of an object property (nested declarations are kept as
    /// written and checked by the adaptor).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "nested_props")]
    pub object_properties: BTreeMap<String, DummyProtocolProp>,
    /// The older Octopus name of `arrayProperties`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "nested_prop")]
    pub array_props: Option<Box<DummyProtocolProp>>,
    /// The older Octopus name of `objectProperties`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "nested_props")]
    pub object_props: BTreeMap<String, DummyProtocolProp>,
    /// The value a writable property is set to, as JSON of its type; the
    /// device keeps it until written again (from the spec or MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub value: Option<serde_json::Value>,
}

impl DummyProtocolProp {
    /// The items of an array, under whichever name was used.
    pub fn items(&self) -> Option<&DummyProtocolProp> {
        self.array_properties
            .as_deref()
            .or(self.array_props.as_deref())
    }

    /// The fields of an object, under whichever name was used.
    pub fn fields(&self) -> &BTreeMap<String, DummyProtocolProp> {
        if self.object_properties.is_empty() {
            &self.object_props
        } else {
            &self.object_properties
        }
    }
}

fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// One level of a nested declaration is typed; deeper levels are kept as
/// written, since a CRD schema cannot be recursive.
fn nested_prop(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["type"],
        "properties": {
            "description": {"type": "string", "maxLength": 1024},
            "readOnly": {"type": "boolean"},
        },
    });
    let type_schema = generator.subschema_for::<DummyPropType>();
    schema
        .get_mut("properties")
        .and_then(|p| p.as_object_mut())
        .expect("properties")
        .insert("type".into(), type_schema.to_value());
    schema
}

fn nested_props(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = nested_prop(generator);
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 128,
        "additionalProperties": item,
    })
}

/// What the simulated device reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DummyProtocolDeviceStatus {
    /// The value of each declared property.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, DummyProtocolValue>,
    /// The same, for a spec that declared them under the older `props`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub props: BTreeMap<String, DummyProtocolValue>,
    /// The state of the device's extensions.
    // Boxed: an adaptor keeps a typed copy of each of thousands of devices
    // (without its status), and this was most of the status's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Box<crate::property::ExtensionStatus>>,
}

/// The value of a declared property, in the field that matches its type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DummyProtocolValue {
    /// The property's type.
    #[serde(rename = "type")]
    pub type_: DummyPropType,
    /// Value of an int property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int_value: Option<i64>,
    /// Value of a string property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Value of a float property, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_value: Option<String>,
    /// Value of a boolean property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean_value: Option<bool>,
    /// Items of an array property, each shaped like this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "nested_values")]
    pub array_value: Vec<serde_json::Value>,
    /// Fields of an object property, each shaped like this object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "nested_value_map")]
    pub object_value: BTreeMap<String, serde_json::Value>,
}

fn nested_values(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

fn nested_value_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

impl crate::mqtt::WithMqttExtension for DummyProtocolDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}
