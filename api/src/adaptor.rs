//! The adaptors devicelink ships: which DeviceLink `spec.adaptor.name` each
//! answers to, which device models it handles and how its pod is started.
//!
//! This list is the one place an adaptor kind is declared. The chart's
//! adaptor RBAC is generated from it (`charts/devicelink/adaptors.yaml`, by
//! `make crds`), the Dockerfile must have an `adaptor-<short name>` target
//! (checked by a test), and the runtime refuses to drive a model its kind
//! does not name.

/// One kind of adaptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptorKind {
    /// Short name, used in pod names and labels: `dummy`.
    pub short_name: &'static str,
    /// What a DeviceLink names in `spec.adaptor.name`.
    pub name: &'static str,
    /// The device model kinds (in `devices.edge.cattle.io`) it handles.
    pub models: &'static [&'static str],
    /// The executable in the adaptor image.
    pub command: &'static str,
}

/// Every adaptor kind, in a stable order.
pub const ADAPTORS: &[AdaptorKind] = &[
    AdaptorKind {
        short_name: "dummy",
        name: "adaptors.edge.cattle.io/dummy",
        models: &["DummySpecialDevice", "DummyProtocolDevice"],
        command: "devicelink-adaptor-dummy",
    },
    AdaptorKind {
        short_name: "modbus",
        name: "adaptors.edge.cattle.io/modbus",
        models: &["ModbusDevice"],
        command: "devicelink-adaptor-modbus",
    },
    AdaptorKind {
        short_name: "opcua",
        name: "adaptors.edge.cattle.io/opcua",
        models: &["OPCUADevice"],
        command: "devicelink-adaptor-opcua",
    },
    AdaptorKind {
        short_name: "mqtt",
        name: "adaptors.edge.cattle.io/mqtt",
        models: &["MQTTDevice"],
        command: "devicelink-adaptor-mqtt",
    },
    AdaptorKind {
        short_name: "ble",
        name: "adaptors.edge.cattle.io/ble",
        models: &["BluetoothDevice"],
        command: "devicelink-adaptor-ble",
    },
];

/// Finds the adaptor a DeviceLink names.
pub fn find(name: &str) -> Option<&'static AdaptorKind> {
    ADAPTORS.iter().find(|a| a.name == name)
}

/// Finds an adaptor by its short name.
pub fn find_short(short_name: &str) -> Option<&'static AdaptorKind> {
    ADAPTORS.iter().find(|a| a.short_name == short_name)
}

/// All adaptor names, for messages that say what is allowed.
pub fn names() -> Vec<&'static str> {
    ADAPTORS.iter().map(|a| a.name).collect()
}

impl AdaptorKind {
    /// Whether this adaptor handles the given model.
    pub fn handles(&self, api_version: &str, kind: &str) -> bool {
        api_version == format!("{}/{}", crate::DEVICES_GROUP, crate::VERSION)
            && self.models.contains(&kind)
    }
}

/// The adaptor kinds as the Helm chart reads them
/// (`charts/devicelink/adaptors.yaml`): each short name with the device
/// resources (plurals) its adaptor pods may read and write.
pub fn chart_file() -> String {
    let mut out = String::from(
        "# Generated from api/src/adaptor.rs by `make crds`; do not edit.\n\
         # Each adaptor kind and the device resources its pods drive (the chart\n\
         # gives each kind a ClusterRole over them).\n",
    );
    for kind in ADAPTORS {
        let plurals: Vec<String> = kind
            .models
            .iter()
            .map(|model| {
                crate::plural_of(model).unwrap_or_else(|| {
                    panic!("adaptor {}: no CRD defines {model}", kind.short_name)
                })
            })
            .collect();
        out.push_str(&format!("{}: [{}]\n", kind.short_name, plurals.join(", ")));
    }
    out
}
