//! devicelink-adaptor-mqtt: reads and writes devices that speak MQTT
//! themselves.

use devicelink_adaptor_mqtt::{device, discovery::MqttDiscoverer, metrics::MqttDeviceMetrics};
use devicelink_api::mqtt_device::MQTTDevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = MqttDeviceMetrics::default();
    let registered = metrics.clone();
    devicelink_adaptor_runtime::Adaptor::new("mqtt")
        .with_metrics(move |registry| registered.register(registry))
        .discover(MqttDiscoverer)
        .drive::<MQTTDevice, _, _>(move |ctx| device::run(ctx, metrics.clone()))
        .run()
        .await
}
