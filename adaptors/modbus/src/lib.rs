//! The Modbus adaptor: TCP and RTU devices, their coils and registers read
//! in as few requests as the protocol allows, and written from the spec and
//! from MQTT.
//!
//! `codec` maps values to bits and words, `point` resolves a property,
//! `plan` coalesces reads, `connection` reaches a device (its own TCP
//! connection or its turn on a serial line), `poller` runs one device's
//! cycle, and `device` is its task in the adaptor runtime; `metrics` counts
//! requests and polls.

pub mod codec;
pub mod connection;
pub mod device;
pub mod discovery;
pub mod metrics;
pub mod plan;
pub mod point;
pub mod poller;
