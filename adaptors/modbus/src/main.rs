//! devicelink-adaptor-modbus: reads and writes Modbus TCP and RTU devices.

use devicelink_adaptor_modbus::device;
use devicelink_api::modbus::ModbusDevice;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    devicelink_adaptor_runtime::run::<ModbusDevice, _, _>("modbus", device::run).await
}
