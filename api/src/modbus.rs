//! ModbusDevice: a Modbus TCP or RTU device, read and written register by
//! register.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    duration::Duration,
    mqtt::DeviceExtension,
    property::{
        AccessMode, ArithmeticOperation, DeviceStatus, Endianness, PropertyValue, ValueType,
        arithmetic_rule, writability_rules,
    },
};

/// A Modbus device.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "ModbusDevice",
    namespaced,
    status = "DeviceStatus",
    shortname = "modbus",
    doc = "ModbusDevice is a device reached over Modbus TCP or RTU; its properties map to coils and registers.",
    printcolumn(
        name = "ENDPOINT",
        type_ = "string",
        json_path = ".spec.protocol..endpoint"
    ),
    printcolumn(
        name = "WORKER ID",
        type_ = "string",
        json_path = ".spec.protocol..workerID"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ModbusDeviceSpec {
    /// Extensions, such as publishing to MQTT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,

    /// Polling interval and request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<ModbusParameters>,

    /// How to reach the device: exactly one of tcp or rtu.
    pub protocol: ModbusProtocol,

    /// The device's properties, each mapped to coils or registers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub properties: Vec<ModbusProperty>,
}

/// Polling interval and request timeout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModbusParameters {
    /// How often the properties are read. Default 15s; zero means the
    /// default, less than 100ms is taken as 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "15s"))]
    pub sync_interval: Option<Duration>,
    /// How long one request may take. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub timeout: Option<Duration>,
}

impl ModbusParameters {
    /// The sync interval when none is given (or zero): see
    /// [`crate::duration::sync_interval`].
    pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
}

/// How to reach a Modbus device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.tcp) != has(self.rtu)",
    "message": "set exactly one of tcp or rtu",
}]))]
pub struct ModbusProtocol {
    /// Modbus TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ModbusTcp>,
    /// Modbus RTU over a serial line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtu: Option<ModbusRtu>,
}

/// Modbus TCP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModbusTcp {
    /// Address of the device, `host:port`, e.g. `192.168.1.3:502`.
    #[schemars(length(min = 3, max = 261), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([^:/ ]+|[[][0-9A-Fa-f:.]+[]]):[0-9]{1,5}$')",
        "message": "must be host:port, e.g. 192.168.1.3:502",
    }]))]
    pub endpoint: String,
    /// Unit identifier of the device, 1 to 247.
    #[serde(rename = "workerID")]
    #[schemars(range(min = 1, max = 247))]
    pub worker_id: i32,
}

/// Modbus RTU over a serial line.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModbusRtu {
    /// Path of the serial device, e.g. `/dev/ttyUSB0`. Devices on the same
    /// serial line take turns on it.
    #[schemars(length(min = 2, max = 4096), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^/.*[^/]$')",
        "message": "must be the path of a serial device, e.g. /dev/ttyUSB0",
    }]))]
    pub endpoint: String,
    /// Unit identifier of the device, 1 to 247.
    #[serde(rename = "workerID")]
    #[schemars(range(min = 1, max = 247))]
    pub worker_id: i32,
    /// Bits per second. Default 19200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 50, max = 4000000), extend("default" = 19200))]
    pub baud_rate: Option<i32>,
    /// Data bits: 5, 6, 7 or 8. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [5, 6, 7, 8], "default" = 8))]
    pub data_bits: Option<i32>,
    /// Parity: N (none), E (even) or O (odd). Default E.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "E"))]
    pub parity: Option<Parity>,
    /// Stop bits: 1 or 2. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [1, 2], "default" = 1))]
    pub stop_bits: Option<i32>,
}

/// Serial parity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Parity {
    N,
    E,
    O,
}

/// One property of a Modbus device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = property_rules()))]
pub struct ModbusProperty {
    /// Name of the property, unique within the device.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Type of the value held in the registers.
    #[serde(rename = "type")]
    pub type_: ValueType,
    /// Where the value lives on the device: which data table, the address of
    /// the first coil or register and how many, their byte order, and the
    /// arithmetic applied to the value read.
    pub visitor: ModbusVisitor,
    /// Whether the property is only read. Properties on InputRegister and
    /// DiscreteInputRegister are always read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Access modes, instead of readOnly: ReadOnce, ReadMany (Notify is the
    /// same for Modbus), WriteOnce, WriteMany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub access_modes: Vec<AccessMode>,
    /// Value to write to the device, for writable properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PropertyValue>,
}

/// Where a Modbus property's value lives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.offset + self.?quantity.orValue(1) <= 65536",
        "message": "offset + quantity must not pass the last address, 65535",
        "fieldPath": ".quantity",
    },
    {
        "rule": "self.register in ['CoilRegister', 'DiscreteInputRegister'] ? self.?quantity.orValue(1) <= 2000 : self.?quantity.orValue(1) <= 125",
        "message": "one request reads at most 2000 coils or discrete inputs, or 125 registers",
        "fieldPath": ".quantity",
    },
    {
        "rule": "!(has(self.orderOfOperations) && has(self.arithmeticOperations))",
        "message": "set orderOfOperations or arithmeticOperations (its other name), not both",
    },
]))]
pub struct ModbusVisitor {
    /// The data table: CoilRegister (read-write bits), DiscreteInputRegister
    /// (read-only bits), InputRegister (read-only 16-bit words) or
    /// HoldingRegister (read-write 16-bit words).
    pub register: RegisterKind,
    /// Address of the first coil or register, 0 to 65535.
    #[schemars(range(min = 0, max = 65535))]
    pub offset: i32,
    /// Number of coils or registers. Default 1. 16-bit types take 1, 32-bit
    /// types 2, 64-bit types 4; strings any number; at most 125 registers or
    /// 2000 coils.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2000), extend("default" = 1))]
    pub quantity: Option<i32>,
    /// Byte and word order of multi-register values: BigEndian (ABCD, the
    /// default), BigEndianSwap (BADC), LittleEndian (DCBA) or
    /// LittleEndianSwap (CDAB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "BigEndian"))]
    pub endianness: Option<Endianness>,
    /// Arithmetic applied in order to the value read, e.g. Divide by 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub order_of_operations: Vec<ArithmeticOperation>,
    /// The same as orderOfOperations, by the name later Octopus releases use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub arithmetic_operations: Vec<ArithmeticOperation>,
    /// Decimal places kept after the arithmetic. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 24))]
    pub arithmetic_operation_precision: Option<i32>,
}

/// Modbus data tables.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RegisterKind {
    /// Read-write bits.
    CoilRegister,
    /// Read-only bits.
    DiscreteInputRegister,
    /// Read-only 16-bit words.
    InputRegister,
    /// Read-write 16-bit words.
    HoldingRegister,
}

impl crate::mqtt::WithMqttExtension for ModbusDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}

/// The checks of one property: the type fits the register kind and
/// quantity, only coils and holding registers are written, and the checks
/// every model shares.
fn property_rules() -> serde_json::Value {
    let mut rules = serde_json::json!([
        {
            "rule": "!(self.visitor.register in ['CoilRegister', 'DiscreteInputRegister']) || (self.type == 'boolean' && self.visitor.?quantity.orValue(1) == 1) || self.type in ['hexString', 'binaryString']",
            "message": "on CoilRegister and DiscreteInputRegister the type must be boolean (with visitor.quantity 1), hexString or binaryString",
            "fieldPath": ".type",
        },
        {
            "rule": "self.visitor.register in ['CoilRegister', 'DiscreteInputRegister'] || !(self.type in ['int8', 'uint8', 'int16', 'uint16', 'boolean']) || self.visitor.?quantity.orValue(1) == 1",
            "message": "types int8, uint8, int16, uint16 and boolean take one register: set visitor.quantity to 1",
            "fieldPath": ".visitor.quantity",
        },
        {
            "rule": "self.visitor.register in ['CoilRegister', 'DiscreteInputRegister'] || !(self.type in ['int32', 'uint32', 'float32']) || self.visitor.?quantity.orValue(1) == 2",
            "message": "32-bit types (int32, uint32, float32) take two registers: set visitor.quantity to 2",
            "fieldPath": ".visitor.quantity",
        },
        {
            "rule": "self.visitor.register in ['CoilRegister', 'DiscreteInputRegister'] || !(self.type in ['int', 'uint', 'float']) || self.visitor.?quantity.orValue(1) <= 2",
            "message": "int, uint and float take one register (a 16-bit value, widened) or two (32-bit): set visitor.quantity to 1 or 2",
            "fieldPath": ".visitor.quantity",
        },
        {
            "rule": "self.visitor.register in ['CoilRegister', 'DiscreteInputRegister'] || !(self.type in ['int64', 'uint64', 'double', 'float64']) || self.visitor.?quantity.orValue(1) == 4",
            "message": "64-bit types (int64, uint64, double, float64) take four registers: set visitor.quantity to 4",
            "fieldPath": ".visitor.quantity",
        },
        {
            "rule": "!(self.type in ['byteString', 'datetime'])",
            "message": "byteString and datetime are OPC-UA types; for raw registers use string, hexString, binaryString or base64String",
            "fieldPath": ".type",
        },
        {
            "rule": "!(self.visitor.register in ['HoldingRegister', 'CoilRegister']) || (has(self.readOnly) && self.readOnly) || (has(self.accessModes) && !self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany'])) || self.visitor.?quantity.orValue(1) <= (self.visitor.register == 'CoilRegister' ? 1968 : 123)",
            "message": "one write request takes at most 123 registers or 1968 coils: a writable property with more must be readOnly: true (or have only Read access modes)",
            "fieldPath": ".visitor.quantity",
        },
        {
            "rule": "!(self.visitor.register in ['InputRegister', 'DiscreteInputRegister']) || !(has(self.value) || (has(self.readOnly) && !self.readOnly) || (has(self.accessModes) && self.accessModes.exists(m, m in ['WriteOnce', 'WriteMany'])))",
            "message": "InputRegister and DiscreteInputRegister cannot be written: only CoilRegister and HoldingRegister properties may have a value, readOnly: false or a Write access mode",
        },
    ]);
    let list = rules.as_array_mut().expect("a list");
    list.extend(writability_rules("device"));
    list.push(arithmetic_rule(
        &["orderOfOperations", "arithmeticOperations"],
        false,
    ));
    rules
}
