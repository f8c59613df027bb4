//! BluetoothDevice: a Bluetooth Low Energy GATT peripheral.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    duration::Duration,
    mqtt::DeviceExtension,
    property::{
        AccessMode, ArithmeticOperation, ContentType, DeviceStatus, Endianness, PropertyValue,
        ValueType, arithmetic_rule,
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
    /// How often readable characteristics are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<Duration>,
    /// How long to wait for the peripheral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// How to find and connect to the peripheral.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothProtocol {
    /// The peripheral's advertised name or its MAC address.
    #[schemars(length(min = 1, max = 248))]
    pub endpoint: String,
    /// How long to scan for the peripheral. Default 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "15s"))]
    pub scan_timeout: Option<Duration>,
    /// How long to wait for a connection. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub connect_timeout: Option<Duration>,
    /// MTU to negotiate, 23 to 515.
    #[serde(
        default,
        rename = "connectionMTU",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 23, max = 515))]
    pub connection_mtu: Option<i32>,
    /// How often readable characteristics are read. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
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
    /// Type of the value.
    #[serde(rename = "type")]
    pub type_: ValueType,
    /// How the characteristic is used: Notify (subscribe), ReadOnce,
    /// ReadMany, WriteOnce, WriteMany. Default ReadMany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub access_modes: Vec<AccessMode>,
    /// Which characteristic holds the value, and how to decode it.
    pub visitor: BluetoothVisitor,
    /// Value to write, for writable properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PropertyValue>,
}

/// Which GATT characteristic holds a value, and how to decode it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BluetoothVisitor {
    /// UUID of the GATT service, 16-bit (`180F`) or 128-bit; any service when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$')",
        "message": "must be a 16-bit UUID such as 180F or a 128-bit UUID",
    }]))]
    pub service: Option<String>,
    /// UUID of the characteristic, 16-bit (`2A19`) or 128-bit.
    #[schemars(length(max = 36), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$')",
        "message": "must be a 16-bit UUID such as 2A19 or a 128-bit UUID",
    }]))]
    pub characteristic: String,
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

impl crate::mqtt::WithMqttExtension for BluetoothDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}

fn property_rules() -> serde_json::Value {
    let mut rules = serde_json::json!([
        {
            "rule": "!has(self.value) || (has(self.accessModes) && self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany']))",
            "message": "value is written to the characteristic, so accessModes must include WriteOnce or WriteMany",
            "fieldPath": ".value",
        },
        {
            "rule": "self.type != 'datetime' && self.type != 'byteString'",
            "message": "datetime and byteString are OPC-UA types; for raw bytes use hexString, binaryString or base64String",
            "fieldPath": ".type",
        },
    ]);
    let list = rules.as_array_mut().expect("a list");
    list.push(arithmetic_rule(&["arithmeticOperations"], false));
    rules
}
