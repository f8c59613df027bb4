//! BluetoothDevice: a Bluetooth Low Energy GATT peripheral.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    duration::Duration,
    mqtt::DeviceExtension,
    property::{
        AccessMode, ArithmeticOperation, ContentType, DeviceStatus, Endianness, NUMERIC_TYPES,
        PropertyValue, ValueType,
    },
};

/// A BLE device.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "BluetoothDevice",
    namespaced,
    status = "DeviceStatus",
    shortname = "ble",
    doc = "BluetoothDevice is a Bluetooth Low Energy peripheral; its properties are GATT characteristics.",
    printcolumn(
        name = "ENDPOINT",
        type_ = "string",
        json_path = ".spec.protocol.endpoint"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothDeviceSpec {
    /// Extensions, such as publishing to MQTT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,

    /// Polling interval and timeout, as older Octopus releases wrote them;
    /// the protocol's fields take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BluetoothParameters>,

    /// How to find and connect to the peripheral.
    pub protocol: BluetoothProtocol,

    /// The characteristics to read, watch or write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub properties: Vec<BluetoothProperty>,
}

/// Polling interval and timeout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothParameters {
    /// How often readable characteristics are read. Default 15s; zero
    /// means the default, less than 100ms is taken as 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<Duration>,
    /// How long to wait for the peripheral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl BluetoothParameters {
    /// The sync interval when none is given (or zero): see
    /// [`crate::duration::sync_interval`].
    pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
}

/// How to find and connect to the peripheral.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.endpoint) && self.endpoint != '') || (has(self.name) && self.name != '') || (has(self.macAddress) && self.macAddress != '')",
    "message": "endpoint (the advertised name or the MAC address) is required; older Octopus releases wrote name or macAddress",
}]))]
pub struct BluetoothProtocol {
    /// The peripheral's advertised name or its MAC address (either case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 248))]
    pub endpoint: Option<String>,
    /// The peripheral's advertised name, as older Octopus releases wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 248))]
    pub name: Option<String>,
    /// The peripheral's MAC address, as older Octopus releases wrote it
    /// (empty: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == '' || self.matches('^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$')",
        "message": "must be a MAC address such as AA:BB:CC:DD:EE:FF",
    }]))]
    pub mac_address: Option<String>,
    /// How long to scan for the peripheral. Default 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "15s"))]
    pub scan_timeout: Option<Duration>,
    /// How long to wait for a connection. Default: parameters.timeout,
    /// else 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// MTU to negotiate, 23 to 515 (BlueZ negotiates it by itself; kept
    /// for tools).
    #[serde(
        default,
        rename = "connectionMTU",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 23, max = 515))]
    pub connection_mtu: Option<i32>,
    /// How often readable characteristics are read. Default:
    /// parameters.syncInterval, else 15s (zero means not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<Duration>,
    /// Reconnect after losing the peripheral, backing off from 1s. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub auto_reconnect: Option<bool>,
    /// Upper bound of the reconnect backoff. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10m"))]
    pub max_reconnect_interval: Option<Duration>,
    /// Subscribe to notifications only, when a characteristic offers both
    /// notification and indication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_subscribe_notification_value: Option<bool>,
    /// Write without response, when a characteristic offers both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_write_value_without_response: Option<bool>,
}

/// One characteristic of a BLE device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = property_rules()))]
pub struct BluetoothProperty {
    /// Name of the property, unique within the device.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Type of the value. Without it, the value is the characteristic's
    /// bytes in hex, or the number `visitor.dataConverter` makes of them.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ValueType>,
    /// Octopus's access mode: NotifyOnly (subscribe; the default),
    /// ReadOnly (read every sync interval), ReadWrite (read every sync
    /// interval, and written). Give this or accessModes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<BluetoothAccessMode>,
    /// How the characteristic is used: Notify (subscribe), ReadOnce,
    /// ReadMany, WriteOnce, WriteMany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub access_modes: Vec<AccessMode>,
    /// Which characteristic holds the value, and how to decode it.
    pub visitor: BluetoothVisitor,
    /// Value to write, for writable properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PropertyValue>,
}

/// Octopus's access modes of a BLE property.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BluetoothAccessMode {
    ReadWrite,
    ReadOnly,
    NotifyOnly,
}

/// Which GATT characteristic holds a value, and how to decode it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.characteristic) != has(self.characteristicUUID)",
    "message": "give the characteristic's UUID once: characteristic, or Octopus's characteristicUUID",
}]))]
pub struct BluetoothVisitor {
    /// UUID of the GATT service, 16-bit (`180F`) or 128-bit; any service when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$')",
        "message": "must be a 16-bit UUID such as 180F or a 128-bit UUID",
    }]))]
    pub service: Option<String>,
    /// UUID of the characteristic, 16-bit (`2A19`) or 128-bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36), extend("x-kubernetes-validations" = [{
        "rule": format!("self.matches('{UUID}')"),
        "message": "must be a 16-bit UUID such as 2A19 or a 128-bit UUID",
    }]))]
    pub characteristic: Option<String>,
    /// Octopus's name for `characteristic`: 32 hex digits, or the dashed form.
    #[serde(
        default,
        rename = "characteristicUUID",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 36), extend("x-kubernetes-validations" = [{
        "rule": format!("self.matches('{UUID}')"),
        "message": "must be a UUID: 32 hex digits, or the dashed form",
    }]))]
    pub characteristic_uuid: Option<String>,
    /// Written when the device connects, for a writable property: a name in
    /// `dataWrite`, or (without dataWrite) the value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub default_value: Option<String>,
    /// Values that may be written, by name, each as its bytes: `ON: [1]`
    /// (or base64, as Go's JSON writes bytes). A write then names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "data_write")]
    pub data_write: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// How a number is made of the bytes read: bytes startIndex..=endIndex
    /// (a reversed range reads them little-endian), shifted, then the
    /// operations in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_converter: Option<BluetoothDataConverter>,
    /// text (UTF-8) or bytes (decoded by type and endianness). Default bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "bytes"))]
    pub content_type: Option<ContentType>,
    /// Byte order of multi-byte values. Default LittleEndian, as GATT sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "LittleEndian"))]
    pub endianness: Option<Endianness>,
    /// Arithmetic applied in order to numeric values read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub arithmetic_operations: Vec<ArithmeticOperation>,
    /// Decimal places kept after the arithmetic. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 24))]
    pub arithmetic_operation_precision: Option<i32>,
}

impl BluetoothProtocol {
    /// What the peripheral is found by: the endpoint, else the MAC
    /// address, else the name (the older fields).
    pub fn target(&self) -> Option<&str> {
        [&self.endpoint, &self.mac_address, &self.name]
            .into_iter()
            .filter_map(|v| v.as_deref())
            .find(|v| !v.is_empty())
    }
}

impl crate::mqtt::WithMqttExtension for BluetoothDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}

/// The Bluetooth base UUID, which 16- and 32-bit UUIDs are short for.
const BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

/// The 128-bit value of a GATT UUID as specs and advertisements write it:
/// 16-bit (`2A19`), 32-bit, 128-bit with or without dashes.
pub fn uuid_value(text: &str) -> Result<u128, String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let bad = || format!("{text:?} is not a UUID (4, 8 or 32 hex digits, or the dashed form)");
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let value = u128::from_str_radix(&hex, 16).map_err(|_| bad())?;
    match hex.len() {
        4 | 8 => Ok(BASE_UUID | (value << 96)),
        32 => Ok(value),
        _ => Err(bad()),
    }
}

/// A GATT UUID in the dashed, lower-case form BlueZ reports, or `None`
/// when `text` is not one.
pub fn full_uuid(text: &str) -> Option<String> {
    let hex = format!("{:032x}", uuid_value(text).ok()?);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A UUID as BLE writes it: 16 or 32 bits, 128 bits with or without dashes.
const UUID: &str = "^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$";

/// The bytes of a dataWrite value: checked by the adaptor, since they may
/// be written as a list of numbers or as base64 text.
fn data_write(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

/// How a number is made of a characteristic's bytes (Octopus's dataConverter).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothDataConverter {
    /// First byte taken. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 511))]
    pub start_index: Option<i32>,
    /// Last byte taken; below startIndex, the bytes are read backwards
    /// (little-endian). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 511))]
    pub end_index: Option<i32>,
    /// Bits to shift the number left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 63))]
    pub shift_left: Option<i32>,
    /// Bits to shift the number right, after the left shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 63))]
    pub shift_right: Option<i32>,
    /// Arithmetic applied in order to the number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub order_of_operations: Vec<ArithmeticOperation>,
}

fn property_rules() -> serde_json::Value {
    let writes = "(has(self.accessModes) && self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany'])) || (has(self.accessMode) && self.accessMode == 'ReadWrite')";
    serde_json::json!([
        {
            "rule": format!("!has(self.value) || {writes}"),
            "message": "value is written to the characteristic, so the property must be writable: accessModes with WriteOnce or WriteMany, or accessMode ReadWrite",
            "fieldPath": ".value",
        },
        {
            "rule": "!has(self.accessMode) || !has(self.accessModes)",
            "message": "accessMode is Octopus's, accessModes ours: give one of them",
            "fieldPath": ".accessModes",
        },
        {
            "rule": "!has(self.type) || (self.type != 'datetime' && self.type != 'byteString')",
            "message": "datetime and byteString are OPC-UA types; for raw bytes use hexString, binaryString or base64String",
            "fieldPath": ".type",
        },
        {
            "rule": format!("!has(self.visitor.arithmeticOperations) || (has(self.type) && self.type in {NUMERIC_TYPES})"),
            "message": "arithmetic operations apply to numeric types only",
            "fieldPath": ".visitor",
        },
    ])
}
