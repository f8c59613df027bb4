//! The MQTT adaptor's metrics: messages taken in from devices and values
//! published to them.

use prometheus_client::{metrics::counter::Counter, registry::Registry};

/// Shared by every device of the adaptor (cheap to clone).
#[derive(Clone, Default)]
pub struct MqttDeviceMetrics {
    pub messages: Counter,
    pub writes: Counter,
}

impl MqttDeviceMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("mqtt_device");
        r.register(
            "messages",
            "Messages received from devices, over all devices",
            self.messages.clone(),
        );
        r.register(
            "writes",
            "Property values published to devices (from the spec and from MQTT writes)",
            self.writes.clone(),
        );
    }

    pub fn message(&self) {
        self.messages.inc();
    }

    pub fn written(&self, values: u64) {
        self.writes.inc_by(values);
    }
}
