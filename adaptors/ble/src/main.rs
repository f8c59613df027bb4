//! devicelink-adaptor-ble: reads, watches and writes Bluetooth Low Energy
//! peripherals through the node's BlueZ.

use devicelink_adaptor_ble::{device, discovery::BleDiscoverer, metrics::BleMetrics};
use devicelink_api::ble::BluetoothDevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = BleMetrics::default();
    let registered = metrics.clone();
    devicelink_adaptor_runtime::Adaptor::new("ble")
        .with_metrics(move |registry| registered.register(registry))
        .discover(BleDiscoverer)
        .drive::<BluetoothDevice, _, _>(move |ctx| device::run(ctx, metrics.clone()))
        .run()
        .await
}
