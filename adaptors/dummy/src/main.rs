//! devicelink-adaptor-dummy: drives simulated devices, for demos, tests and
//! benchmarks of everything around a device.

mod fan;

use devicelink_api::dummy::DummySpecialDevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    devicelink_adaptor_runtime::run::<DummySpecialDevice, _, _>("dummy", fan::run).await
}
