//! Pieces that several device models share: value types, access modes,
//! arithmetic on read values, byte order, and the reported property status.

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The type of a property's value.
///
/// `int` is `int32`, `uint` is `uint32`, `float` is `float32` and `double` is
/// `float64`. `hexString`, `binaryString` and `base64String` render raw bytes
/// as text. `byteString` and `datetime` are OPC-UA built-in types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValueType {
    Int8,
    Int16,
    Int,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint,
    Uint32,
    Uint64,
    Float,
    Float32,
    Double,
    Float64,
    Boolean,
    String,
    HexString,
    BinaryString,
    Base64String,
    ByteString,
    Datetime,
}

/// How a property may be accessed.
///
/// ReadOnce reads the value once after connecting, ReadMany reads it every
/// sync interval, Notify subscribes to changes where the protocol can (and
/// reads every sync interval where it cannot); WriteOnce writes `value` once
/// after it is set or changed, WriteMany writes it every sync interval.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AccessMode {
    Notify,
    ReadOnce,
    ReadMany,
    WriteOnce,
    WriteMany,
}

/// One step of arithmetic applied, in order, to a value read from the device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(self.type == 'Divide' && self.value.matches('^[-+]?0*[.]?0*([eE][-+]?[0-9]+)?$'))",
    "message": "value must not be 0 for Divide",
}]))]
pub struct ArithmeticOperation {
    /// Add, Subtract, Multiply or Divide.
    #[serde(rename = "type")]
    pub type_: ArithmeticOperationType,
    /// The operand, a decimal number written as a string, e.g. `"273.15"`.
    #[schemars(
        length(max = 64),
        regex(pattern = r"^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$")
    )]
    pub value: String,
}

/// Arithmetic operations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ArithmeticOperationType {
    Add,
    Subtract,
    Multiply,
    Divide,
}

/// Byte and word order of a multi-byte value: BigEndian is ABCD,
/// BigEndianSwap BADC, LittleEndian DCBA and LittleEndianSwap CDAB.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Endianness {
    #[default]
    BigEndian,
    BigEndianSwap,
    LittleEndian,
    LittleEndianSwap,
}

/// How a value's bytes are read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// UTF-8 text.
    Text,
    /// Binary, decoded by type and endianness.
    Bytes,
}

/// The desired value of a writable property: a string, or an integer that is
/// read as its decimal string.
pub type PropertyValue = IntOrString;

/// What an adaptor reports about one property.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropertyStatus {
    /// Name of the property in the spec.
    pub name: String,
    /// Type of the value.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ValueType>,
    /// The access modes in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<AccessMode>,
    /// The value as read from the device, rendered as text.
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
    pub mqtt_write: Option<MqttWrite>,
}

/// A value written to a property from MQTT.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct MqttWrite {
    /// The value written, as text: a string as it is, anything else as
    /// JSON.
    pub value: String,
    /// When it was written.
    pub at: Time,
}

/// What an adaptor reports about a device's extensions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ExtensionStatus {
    /// The MQTT publisher in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttStatus>,
}

/// The effective MQTT settings and connection state; never a credential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttStatus {
    /// Broker address in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Client identifier in use.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The rendered status topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The rendered write topic the adaptor subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_topic: Option<String>,
    /// QoS in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<i32>,
    /// Whether status messages are retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<bool>,
    /// Whether the adaptor is connected to the broker.
    #[serde(default)]
    pub connected: bool,
    /// The last connection or publish error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why the latest status message did not reach the broker while
    /// connected: larger than the broker takes (MQTT 5 brokers say their
    /// limit), or refused in its acknowledgement (MQTT 5 reason codes).
    /// Cleared once a status message gets through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelivered: Option<String>,
    /// Set while messages are being lost on the way: the buffer is over
    /// `messageChannelBytes` or `messageChannelDepth` and drops its oldest
    /// messages, or the File store cannot be written and messages are kept
    /// in memory only. Cleared once the buffer has drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<String>,
}

/// What an adaptor reports about a device with a list of properties.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceStatus {
    /// The last value of each property.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<PropertyStatus>,
    /// The state of the device's extensions.
    // Boxed: an adaptor keeps a typed copy of each of thousands of devices
    // (without its status), and this was most of the status's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Box<ExtensionStatus>>,
}

/// The numeric value types, as a CEL list.
pub(crate) const NUMERIC_TYPES: &str = "['int8', 'int16', 'int', 'int32', 'int64', 'uint8', 'uint16', 'uint', 'uint32', 'uint64', 'float', 'float32', 'double', 'float64']";

/// CEL: a property with any of the given visitor operation lists is numeric.
/// `visitor_optional` is for models whose visitor may be absent.
pub(crate) fn arithmetic_rule(lists: &[&str], visitor_optional: bool) -> Value {
    let has_any = lists
        .iter()
        .map(|l| format!("has(self.visitor.{l})"))
        .collect::<Vec<_>>()
        .join(" || ");
    let guard = if visitor_optional {
        "!has(self.visitor) || "
    } else {
        ""
    };
    json!({
        "rule": format!("{guard}!({has_any}) || self.type in {NUMERIC_TYPES}"),
        "message": "arithmetic operations apply to numeric types only",
        "fieldPath": ".visitor",
    })
}

/// CEL for properties that have both `readOnly` and `accessModes`: `value`
/// needs a writable property, and `readOnly: true` excludes Write modes.
pub(crate) fn writability_rules(target: &str) -> Vec<Value> {
    let writes = "self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany'])";
    vec![
        json!({
            "rule": format!("!has(self.value) || !((has(self.readOnly) && self.readOnly) || (has(self.accessModes) && !{writes}))"),
            "message": format!("value is written to the {target}, so the property must be writable: drop readOnly: true, or add WriteOnce or WriteMany to accessModes"),
            "fieldPath": ".value",
        }),
        json!({
            "rule": format!("!(has(self.readOnly) && self.readOnly && has(self.accessModes) && {writes})"),
            "message": "readOnly: true contradicts the Write access modes",
            "fieldPath": ".accessModes",
        }),
    ]
}
