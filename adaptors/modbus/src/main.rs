//! devicelink-adaptor-modbus: reads and writes Modbus TCP and RTU devices.

use devicelink_adaptor_modbus::{device, discovery::ModbusDiscoverer, metrics::ModbusMetrics};
use devicelink_api::modbus::ModbusDevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = ModbusMetrics::default();
    let registered = metrics.clone();
    devicelink_adaptor_runtime::Adaptor::new("modbus")
        .with_metrics(move |registry| registered.register(registry))
        .discover(ModbusDiscoverer::new(metrics.clone()))
        .drive::<ModbusDevice, _, _>(move |ctx| device::run(ctx, metrics.clone()))
        .run()
        .await
}
