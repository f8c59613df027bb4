//! MQTTDevice: a device that already speaks MQTT; the adaptor subscribes to
//! its topics and publishes writes to it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    duration::Duration,
    mqtt::{DeviceExtension, MqttOptions, MqttTopicOperator},
    property::{AccessMode, ArithmeticOperation, ExtensionStatus},
};

/// An MQTT-native device.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "MQTTDevice",
    plural = "mqttdevices",
    namespaced,
    status = "MqttDeviceStatus",
    shortname = "mqtt",
    doc = "MQTTDevice is a device that publishes its state to an MQTT broker and takes commands from it.",
    printcolumn(
        name = "PATTERN",
        type_ = "string",
        json_path = ".spec.protocol.pattern"
    ),
    printcolumn(
        name = "SERVER",
        type_ = "string",
        json_path = ".spec.protocol.client.server"
    ),
    printcolumn(
        name = "TOPIC",
        type_ = "string",
        json_path = ".spec.protocol.message.topic"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MqttDeviceSpec {
    /// The broker, the device's topics, and how its messages are laid out.
    pub protocol: MqttDeviceProtocol,

    /// The device's properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub properties: Vec<MqttDeviceProperty>,

    /// Extensions, such as publishing the device's status to (another)
    /// MQTT broker and taking writes there, like every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,
}

/// The broker, the device's topics, and how its messages are laid out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.pattern != 'AttributedTopic' || self.message.topic.contains(':path')",
    "message": "with pattern AttributedTopic every property has its own topic, so message.topic must contain :path",
    "fieldPath": ".message.topic",
}]))]
pub struct MqttDeviceProtocol {
    /// Broker connection (`client`) and topic (`message`), as in the MQTT
    /// extension. The adaptor subscribes to the topic rendered with
    /// `operator.read` and publishes to the device with `operator.write`.
    #[serde(flatten)]
    pub options: MqttOptions,
    /// AttributedMessage: one topic carries all properties as one JSON
    /// object. AttributedTopic: each property has its own topic (`:path`).
    pub pattern: MqttDevicePattern,
    /// A schema the device's messages follow (`type`, `reference`); kept
    /// for tools, not checked by the adaptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<MqttDeviceSchema>,
    /// Least time between two writes of the device's status to the API
    /// server (every message still reaches MQTT), and how often WriteMany
    /// values are published. Default 10s; zero means the default, less
    /// than 100ms is taken as 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub sync_interval: Option<Duration>,
}

impl MqttDeviceProtocol {
    /// The sync interval when none is given (or zero): see
    /// [`crate::duration::sync_interval`].
    pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
}

/// How a device lays out its properties on topics.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MqttDevicePattern {
    /// One topic, one JSON object holding every property.
    #[default]
    AttributedMessage,
    /// One topic per property.
    AttributedTopic,
}

/// The schema of a device's messages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttDeviceSchema {
    /// The kind of schema, e.g. `json-schema`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub type_: Option<String>,
    /// Where the schema is, e.g. a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub reference: Option<String>,
}

/// The type of an MQTT device property's value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MqttValueType {
    /// A whole number (64-bit).
    Int,
    /// A number.
    Float,
    String,
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl MqttValueType {
    pub fn is_numeric(self) -> bool {
        matches!(self, MqttValueType::Int | MqttValueType::Float)
    }
}

/// One property of an MQTT device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = mqtt_property_rules()))]
pub struct MqttDeviceProperty {
    /// Name of the property, unique within the device.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Free-form notes for people and tools, e.g. unit or format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// int, float, string, boolean, object or array.
    #[serde(rename = "type")]
    pub type_: MqttValueType,
    /// Where the value is: with AttributedMessage, its path in the device's
    /// JSON object (`parameter.power`, `colours.0`); with AttributedTopic,
    /// the `:path` of its topic. Default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// `:operator` values for this property's topic (AttributedTopic);
    /// default: the message's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<MqttTopicOperator>,
    /// QoS of this property's subscription and writes: 0, 1 or 2. Default:
    /// the message's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: Option<i32>,
    /// Whether writes of this property are retained. Default: the message's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<bool>,
    /// MIME type of the value (e.g. `application/json`, `text/plain`); kept
    /// for tools: the adaptor reads JSON, and a text that is not JSON as a
    /// string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub content_type: Option<String>,
    /// Whether the property is only read (the default, as in Octopus);
    /// false makes it writable, from `value` and from MQTT writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Notify (follow the device's messages), ReadOnce (the first value
    /// only), WriteOnce (publish `value` when set or changed), WriteMany
    /// (publish it every syncInterval); instead of readOnly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), extend("x-kubernetes-list-type" = "set", "items" = {
        "type": "string",
        "enum": ["Notify", "ReadOnce", "WriteOnce", "WriteMany"],
    }))]
    pub access_modes: Vec<AccessMode>,
    /// Value to publish to the device, of the property's type (any JSON).
    /// The API server cannot look into free-form values; the adaptor says
    /// when one does not fit the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub value: Option<serde_json::Value>,
    /// Arithmetic applied in order to numeric values received
    /// (`operatedValue` in the status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub arithmetic_operations: Vec<ArithmeticOperation>,
    /// Decimal places kept after the arithmetic. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 24))]
    pub arithmetic_operation_precision: Option<i32>,
}

/// CEL for a property: arithmetic on numbers only, and readOnly and
/// accessModes agreeing. (That `value` needs a writable property is the
/// adaptor's to say: CEL cannot look into a free-form value.)
fn mqtt_property_rules() -> Vec<serde_json::Value> {
    let writes = "self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany'])";
    vec![
        serde_json::json!({
            "rule": "!has(self.arithmeticOperations) || self.type in ['int', 'float']",
            "message": "arithmetic operations apply to int and float properties only",
            "fieldPath": ".arithmeticOperations",
        }),
        serde_json::json!({
            "rule": format!("!(has(self.readOnly) && has(self.accessModes)) || (self.readOnly != {writes})"),
            "message": "readOnly and accessModes disagree: readOnly: true goes with no Write mode, readOnly: false with WriteOnce or WriteMany",
            "fieldPath": ".accessModes",
        }),
    ]
}

fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// What the adaptor reports about an MQTT device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttDeviceStatus {
    /// The last value of each property.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<MqttPropertyStatus>,
    /// The state of the device's extensions.
    // Boxed: an adaptor keeps a typed copy of each of thousands of devices
    // (without its status), and this was most of the status's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Box<ExtensionStatus>>,
}

/// What the adaptor reports about one property of an MQTT device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttPropertyStatus {
    /// Name of the property in the spec.
    pub name: String,
    /// Type of the value.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<MqttValueType>,
    /// Where the value is (the path in effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The access modes in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<AccessMode>,
    /// The value the device last reported, as text: a string as it is,
    /// anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value after the property's arithmetic operations, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operated_value: Option<String>,
    /// When the value last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
    /// Set while the property holds a value written from MQTT rather than
    /// its spec's: until the property's spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_write: Option<crate::property::MqttWrite>,
    /// What was wrong with the device's last message for this property
    /// (not JSON, no such path, a value of another type); cleared by the
    /// next good one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl crate::mqtt::WithMqttExtension for MQTTDevice {
    fn mqtt(&self) -> Option<&MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}
