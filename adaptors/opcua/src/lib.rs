//! The OPC-UA adaptor: one secure session per device, its variables watched
//! through one subscription, and written from the spec and from MQTT.
//!
//! `codec` maps property types to Variants, `item` resolves a property,
//! `settings` resolves how to reach and sign in to the server, `trust`
//! keeps the client's certificates and the server certificates it trusts,
//! `session` opens a session with its subscription, and `device` is a
//! device's task in the adaptor runtime; `metrics` counts what happens.
//! `discovery` finds servers and browses them for a DeviceDiscovery.

pub mod codec;
pub mod device;
pub mod discovery;
pub mod item;
pub mod metrics;
pub mod properties;
pub mod session;
pub mod settings;
pub mod trust;
