//! devicelink-adaptor-modbus: reads and writes Modbus TCP and RTU devices.

use devicelink_adaptor_modbus::{device, metrics::ModbusMetrics};
use devicelink_api::modbus::ModbusDevice;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let metrics = ModbusMetrics::default();
    let registered = metrics.clone();
    devicelink_adaptor_runtime::run_with_metrics::<ModbusDevice, _, _>(
        "modbus",
        move |registry| registered.register(registry),
        move |ctx| device::run(ctx, metrics.clone()),
    )
    .await
}
