//! One MQTT message as devicelink sends it, and the size of the packet
//! that carries it.

use rumqttc::QoS;

/// One MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub payload: Vec<u8>,
    /// MQTT 5 correlation data, for the answer to a request that had some
    /// (never stored: answers are not).
    pub correlation: Option<Vec<u8>>,
}

/// The size of the PUBLISH packet that carries `m`: the fixed header, the
/// topic, the packet id, MQTT 5's properties (correlation data) and the
/// payload; a few bytes over, never under.
pub fn publish_size(m: &Message) -> usize {
    let properties = 4 + m.correlation.as_ref().map_or(0, |c| 3 + c.len());
    5 + 2 + m.topic.len() + 2 + properties + m.payload.len()
}
