//! The BLE adaptor: Bluetooth Low Energy GATT peripherals (BluetoothDevice)
//! through BlueZ, with btleplug.
//!
//! `uuid` reads the UUIDs specs write, `converter` is Octopus's
//! dataConverter, `point` resolves a property (characteristic, modes, how
//! bytes make a value and back), `central` is the node's adapter shared by
//! every device, `device` is a device's task in the adaptor runtime;
//! `discovery` finds peripherals for DeviceDiscoveries; `metrics` counts.

pub mod central;
pub mod converter;
pub mod device;
pub mod discovery;
pub mod metrics;
pub mod point;
pub mod uuid;
