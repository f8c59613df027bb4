//! The adaptor runtime: what every protocol adaptor shares.
//!
//! An adaptor process serves one adaptor kind on one node. The runtime
//! watches the devices assigned to it (by the labels the operator sets) and
//! their DeviceLinks, runs each device in its own task, and gives that task a
//! [`DeviceContext`] to report through: status JSON to MQTT on every sample,
//! the device's `status` to the API server on change and rate-limited, and
//! the DeviceConnected condition on the DeviceLink.

pub mod access;
pub mod arithmetic;
pub mod bytes;
mod connected;
mod context;
mod discovery;
mod driver;
mod found;
mod health;
mod link;
mod link_status;
mod metrics;
mod model;
pub mod observed;
mod pace;
mod refused_writes;
mod registry;
mod release;
mod status_budget;
mod status_writer;
mod steps;
mod supervise;
pub mod value;
mod write_ledger;
mod write_rate;
mod writer;

pub use connected::{Backoff, Reason};
pub use context::{Change, DeviceConnection, DeviceContext};
pub use devicelink_api::Outcome;
pub use devicelink_mqtt::{
    publisher::WriteRequest,
    write::{Accepts, Property, Refusal, Writes, decode as decode_write},
};
pub use devicelink_references::{ReferenceError, References};
pub use discovery::Discoverer;
pub use found::{Found, Scan};
pub use model::Model;
pub use pace::Pace;
pub use registry::{Adaptor, RuntimeConfig};
pub use steps::Steps;

/// Every adaptor allocates in many small pieces per device, and most at
/// once while its devices start. jemalloc gives the memory of that start
/// back to the system afterwards; with the system allocator the RSS stayed
/// at its peak (docs/benchmarks.md, "One adaptor's MQTT path").
///
/// Built with `RUSTFLAGS="--cfg devicelink_system_allocator"` an adaptor
/// uses the system allocator instead, which heap profilers such as
/// heaptrack see into (docs/benchmarks.md).
#[cfg(not(devicelink_system_allocator))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
