//! devicelink-adaptor-modbus: reads and writes Modbus TCP and RTU devices.

use devicelink_adaptor_modbus::{device, metrics::ModbusMetrics};
use devicelink_api::modbus::ModbusDevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = ModbusMetrics::default();
    let registered = metrics.clone();
    devicelink_adaptor_runtime::run_with_metrics::<ModbusDevice, _, _>(
        "modbus",
        move |registry| registered.register(registry),
        move |ctx| device::run(ctx, metrics.clone()),
    )
    .await
}
