//! devicelink-operator: reconciles DeviceLinks.
//!
//! For each DeviceLink it checks the node and the model, makes sure the
//! adaptor pod for that adaptor kind runs on that node, creates the device
//! object from the template, and reports each step as a condition.
//!
//! The library holds everything; `main.rs` only parses flags and starts the
//! controller. Tests use [`device::desired`] to see exactly the device object
//! the operator would create.

mod adaptor_access;
mod adaptor_pod;
pub mod adaptor_settings;
pub mod broker;
pub mod config;
pub mod controller;
pub mod device;
mod device_watch;
mod error;
mod events;
mod fingerprint;
pub mod http;
pub mod leader;
pub mod metrics;
mod references;
mod reported;
mod stages;
mod watch_filter;
