//! What comes in on a device's connection: messages an MQTT-native device
//! published, and writes on its write topic with where their answers go.

use crate::topic::is_publishable;

/// A message an MQTT-native device published, on one of the topics its
/// connection subscribes to.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// How many writes may wait for a device that applies them one by one;
/// one more is refused (answered on its reply topic).
pub const WRITES_WAITING: usize = 16;

/// A write received on the device's write topic.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub payload: Vec<u8>,
    /// Where the answer goes: the MQTT 5 response topic the writer gave,
    /// or `<write topic>/$reply`.
    pub reply_topic: String,
    /// MQTT 5 correlation data the writer gave, quoted in the answer.
    pub correlation: Option<Vec<u8>>,
}

/// Where a write's answer goes: the writer's MQTT 5 response topic if it
/// lies under the write topic (`<write topic>/...`), else
/// `<write topic>/$reply`. Answers are never published elsewhere: a
/// response topic is chosen by whoever writes, and could otherwise be
/// another device's status topic.
pub fn reply_topic(write_topic: &str, response_topic: Option<String>) -> String {
    response_topic
        .filter(|t| is_publishable(t))
        .filter(|t| {
            t.strip_prefix(write_topic)
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
        })
        .unwrap_or_else(|| format!("{write_topic}/$reply"))
}
