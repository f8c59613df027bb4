//! Dummy device models: simulated devices for demos, tests and benchmarks.

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

    /// Whether the fan runs.
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DummySpecialDeviceStatus {
    /// The gear the fan runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gear: Option<Gear>,
    /// Revolutions per minute.
    #[serde(default)]
    pub rotating_speed: i32,
}

impl crate::mqtt::WithMqttExtension for DummySpecialDevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}
