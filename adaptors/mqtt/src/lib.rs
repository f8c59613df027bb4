//! The MQTT adaptor: devices that speak MQTT themselves (MQTTDevice).
//!
//! `path` finds a value in a device's JSON message, `codec` turns what a
//! device sends into property values and back, `plan` resolves a spec into
//! topics and properties, `state` keeps what the device said, and `device`
//! is a device's task in the adaptor runtime; `metrics` counts.
//! `discovery` listens on a broker for devices a DeviceDiscovery asks for.

pub mod codec;
pub mod device;
pub mod discovery;
pub mod metrics;
pub mod path;
pub mod plan;
pub mod state;
