//! devicelink-adaptor-dummy: drives simulated devices, for demos, tests and
//! benchmarks of everything around a device.

mod fan;

use devicelink_api::dummy::DummySpecialDevice;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    devicelink_adaptor_runtime::run::<DummySpecialDevice, _, _>("dummy", fan::run).await
}
