//! What the MQTT extension counts, summed over every device of an adaptor
//! (per-device labels would make 10,000 devices 10,000 series).

use prometheus_client::{
    metrics::{
        counter::Counter,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Shared by every publisher of the process; cloning shares the values.
#[derive(Clone, Debug)]
pub struct MqttMetrics {
    /// Messages the broker acknowledged (QoS 0: written to the connection).
    pub published: Counter,
    /// Messages that could not be handed to the client or stored on disk,
    /// or that the broker would not take.
    pub failed: Counter,
    /// Messages waiting in devices' buffers (for a broker, or for an ack).
    pub buffered: Gauge,
    /// Their bytes (topics and payloads), what the buffer budget bounds.
    pub buffered_bytes: Gauge,
    /// Messages dropped because a device's buffer (messageChannelDepth) was full.
    pub dropped: Counter,
    /// Connections made again after one was lost.
    pub reconnects: Counter,
    /// From queueing a message to the broker's acknowledgement.
    pub publish_latency: Histogram,
    /// Shared connections open (sharing.rs).
    pub shared_connections: Gauge,
    /// Devices on them.
    pub shared_connection_devices: Gauge,
}

impl Default for MqttMetrics {
    fn default() -> Self {
        MqttMetrics {
            published: Counter::default(),
            failed: Counter::default(),
            buffered: Gauge::default(),
            buffered_bytes: Gauge::default(),
            dropped: Counter::default(),
            reconnects: Counter::default(),
            // 0.5 ms to about 4 min: a local broker answers in a millisecond,
            // a message buffered through an outage waits minutes.
            publish_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 20)),
            shared_connections: Gauge::default(),
            shared_connection_devices: Gauge::default(),
        }
    }
}

impl MqttMetrics {
    /// Adds the metrics to `registry` (under its prefix, `mqtt_*`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("mqtt");
        r.register(
            "published",
            "Messages the broker acknowledged (QoS 0: written to the connection)",
            self.published.clone(),
        );
        r.register(
            "failed",
            "Messages that could not be handed to the MQTT client or written to the File store, or that the broker would not take (too large, or refused)",
            self.failed.clone(),
        );
        r.register(
            "buffered",
            "Messages waiting for the broker or for its acknowledgement",
            self.buffered.clone(),
        );
        r.register(
            "buffered_bytes",
            "Bytes (topics and payloads) of the messages waiting in devices' buffers; all devices' together stay within the adaptor's MQTT buffer budget",
            self.buffered_bytes.clone(),
        );
        r.register(
            "dropped",
            "Messages dropped, oldest first, because a device's buffer was full (messageChannelDepth, messageChannelBytes, or its share of the adaptor's buffer budget)",
            self.dropped.clone(),
        );
        r.register(
            "reconnects",
            "Connections to a broker made again after one was lost",
            self.reconnects.clone(),
        );
        r.register(
            "publish_latency_seconds",
            "Time from queueing a message to the broker's acknowledgement",
            self.publish_latency.clone(),
        );
        r.register(
            "shared_connections",
            "Broker connections shared by devices whose connection settings are equal",
            self.shared_connections.clone(),
        );
        r.register(
            "shared_connection_devices",
            "Devices whose messages go through a shared connection",
            self.shared_connection_devices.clone(),
        );
    }
}
