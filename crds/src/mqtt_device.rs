//! MQTTDevice: a device that already speaks MQTT; the adaptor subscribes to
//! its topics and publishes writes to it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    duration::Duration,
    mqtt::{MqttOptions, MqttTopicOperator},
    property::{
        AccessMode, ArithmeticOperation, ContentType, DeviceStatus, Endianness, ValueType,
        arithmetic_rule,
    },
};

/// An MQTT-native device.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "MQTTDevice",
    plural = "mqttdevices",
    namespaced,
    status = "DeviceStatus",
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
    /// Broker connection (`client`) and topic (`message`), as in the MQTT extension.
    #[serde(flatten)]
    pub options: MqttOptions,
    /// AttributedMessage: one topic carries all properties as one JSON
    /// object. AttributedTopic: each property has its own topic (`:path`).
    pub pattern: MqttDevicePattern,
    /// How often the device's state is published to the device resource. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub sync_interval: Option<Duration>,
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

/// One property of an MQTT device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [arithmetic_rule(&["arithmeticOperations"], true)]))]
pub struct MqttDeviceProperty {
    /// Name of the property, unique within the device; also its default `:path`.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Free-form notes for people and tools, e.g. unit or format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Type of the value.
    #[serde(rename = "type")]
    pub type_: ValueType,
    /// Notify (follow the device's messages, the default), ReadOnce, WriteOnce, WriteMany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub access_modes: Vec<AccessMode>,
    /// Where the value is in the device's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<MqttDeviceVisitor>,
    /// Value to publish to the device, for writable properties (WriteOnce or
    /// WriteMany); any JSON value. The API server cannot look into free-form
    /// values, so the adaptor refuses a value on a read-only property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub value: Option<serde_json::Value>,
}

/// Where a property's value is in the device's messages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttDeviceVisitor {
    /// With AttributedMessage, the JSON path of the value (`parameter.power`);
    /// with AttributedTopic, the `:path` of its topic. Default: the property name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// `:operator` values for this property's topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<MqttTopicOperator>,
    /// QoS of writes to this property: 0, 1 or 2. Default: the message's qos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: Option<i32>,
    /// Whether writes to this property are retained. Default: the message's retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<bool>,
    /// text (the default) or bytes (decoded by type and endianness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<ContentType>,
    /// Byte order of binary values. Default BigEndian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endianness: Option<Endianness>,
    /// Arithmetic applied in order to numeric values received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub arithmetic_operations: Vec<ArithmeticOperation>,
    /// Decimal places kept after the arithmetic. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 24))]
    pub arithmetic_operation_precision: Option<i32>,
}

fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

impl crate::mqtt::WithMqttExtension for MQTTDevice {
    fn mqtt(&self) -> Option<&MqttOptions> {
        Some(&self.spec.protocol.options)
    }
}
