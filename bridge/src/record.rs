//! One MQTT message as the Kafka record the bridge makes of it: the topic
//! and headers the mapping gives, the key the sink asks for, and headers
//! saying where the message came from.

use devicelink_api::kafka_bridge::{KafkaSink, RecordKey};

use crate::{devices::Device, mapping::Mapping};

/// The header that carries the MQTT topic a record's message came on.
pub const MQTT_TOPIC_HEADER: &str = "mqtt.topic";
/// The header that carries the KafkaBridge (`namespace/name`) that made it.
pub const BRIDGE_HEADER: &str = "devicelink.bridge";
/// Headers of a DeviceLink's status: its namespace, name and UID, and the
/// client ID and username its MQTT extension gives (where it gives them).
pub const NAMESPACE_HEADER: &str = "devicelink.namespace";
pub const NAME_HEADER: &str = "devicelink.name";
pub const UID_HEADER: &str = "devicelink.uid";
pub const CLIENT_ID_HEADER: &str = "mqtt.clientID";
pub const USERNAME_HEADER: &str = "mqtt.username";

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    /// Mapped headers first, in level order, then [`MQTT_TOPIC_HEADER`],
    /// [`BRIDGE_HEADER`] and, for a DeviceLink's status, its own.
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

/// How a bridge turns messages into records.
#[derive(Debug)]
pub struct Recorder {
    mapping: Option<Mapping>,
    default_topic: String,
    key: RecordKey,
    bridge: String,
}

impl Recorder {
    /// `bridge` is the KafkaBridge's `namespace/name`.
    pub fn new(mapping: Option<Mapping>, sink: &KafkaSink, bridge: String) -> Recorder {
        Recorder {
            mapping,
            default_topic: sink.topic.clone(),
            key: sink.key.unwrap_or(RecordKey::DeviceLinkUid),
            bridge,
        }
    }

    /// The record of a message on `mqtt_topic`, the status of `device`
    /// where it is one.
    pub fn record(&self, mqtt_topic: &str, payload: Vec<u8>, device: Option<&Device>) -> Record {
        let routed = self.mapping.as_ref().and_then(|m| m.route(mqtt_topic));
        let (topic, mut headers) = match routed {
            Some(routed) => (
                routed.topic.to_string(),
                routed
                    .headers
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                    .collect(),
            ),
            None => (self.default_topic.clone(), Vec::new()),
        };
        headers.push((MQTT_TOPIC_HEADER.into(), mqtt_topic.as_bytes().to_vec()));
        headers.push((BRIDGE_HEADER.into(), self.bridge.as_bytes().to_vec()));
        if let Some(device) = device {
            let known = [
                (NAMESPACE_HEADER, Some(&device.namespace)),
                (NAME_HEADER, Some(&device.name)),
                (UID_HEADER, Some(&device.uid)),
                (CLIENT_ID_HEADER, device.client_id.as_ref()),
                (USERNAME_HEADER, device.username.as_ref()),
            ];
            for (name, value) in known {
                if let Some(value) = value {
                    headers.push((name.into(), value.as_bytes().to_vec()));
                }
            }
        }
        let key = match (self.key, device) {
            (RecordKey::DeviceLinkUid, Some(device)) => Some(device.uid.as_bytes().to_vec()),
            (RecordKey::DeviceLinkUid | RecordKey::MqttTopic, _) => {
                Some(mqtt_topic.as_bytes().to_vec())
            }
            (RecordKey::None, _) => None,
        };
        Record {
            topic,
            key,
            headers,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sink(value: serde_json::Value) -> KafkaSink {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn without_a_mapping_every_message_goes_to_the_sink_topic_keyed_by_its_mqtt_topic() {
        let recorder = Recorder::new(
            None,
            &sink(json!({"bootstrapServers": ["k:9092"], "topic": "devices"})),
            "plant/feed".into(),
        );
        assert_eq!(
            recorder.record("/plant/fan/status", b"{}".to_vec(), None),
            Record {
                topic: "devices".into(),
                key: Some(b"/plant/fan/status".to_vec()),
                headers: vec![
                    ("mqtt.topic".into(), b"/plant/fan/status".to_vec()),
                    ("devicelink.bridge".into(), b"plant/feed".to_vec()),
                ],
                payload: b"{}".to_vec(),
            }
        );
    }

    #[test]
    fn mapped_headers_come_first_and_a_keyless_sink_gives_no_key() {
        let mapping: devicelink_api::kafka_bridge::TopicMapping = serde_json::from_value(json!({
            "routes": [{"pattern": "^line", "policy": "line"}],
            "policies": [{"name": "line", "topicIndex": 0,
                          "topics": [{"pattern": ".", "topic": "lines"}],
                          "headers": {"1": "machine"}}],
        }))
        .unwrap();
        let recorder = Recorder::new(
            Some(Mapping::compile(&mapping).unwrap()),
            &sink(json!({"bootstrapServers": ["k:9092"], "topic": "devices", "key": "None"})),
            "plant/feed".into(),
        );
        let record = recorder.record("line1/press", b"1".to_vec(), None);
        assert_eq!(record.topic, "lines");
        assert_eq!(record.key, None);
        assert_eq!(
            record.headers[0],
            ("machine".to_string(), b"press".to_vec())
        );
        assert_eq!(record.headers.len(), 3);
        // Not routed: the sink's topic, with the default headers only.
        assert_eq!(
            recorder.record("hall/door", Vec::new(), None).topic,
            "devices"
        );
    }

    #[test]
    fn a_devicelinks_status_is_keyed_by_its_uid_and_says_whose_it_is() {
        let device = Device {
            namespace: "plant".into(),
            name: "fan".into(),
            uid: "u-1".into(),
            status_topic: "plant/fan".into(),
            write_topic: "plant/fan/$write".into(),
            client_id: None,
            username: Some("line".into()),
        };
        let by_default = Recorder::new(
            None,
            &sink(json!({"bootstrapServers": ["k:9092"], "topic": "devices"})),
            "plant/feed".into(),
        );
        let record = by_default.record("plant/fan", b"{}".to_vec(), Some(&device));
        assert_eq!(record.key, Some(b"u-1".to_vec()));
        let named: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            named[2..],
            [
                ("devicelink.namespace", &b"plant"[..]),
                ("devicelink.name", b"fan"),
                ("devicelink.uid", b"u-1"),
                ("mqtt.username", b"line"),
            ]
        );
        let by_topic = Recorder::new(
            None,
            &sink(json!({"bootstrapServers": ["k:9092"], "topic": "devices", "key": "MqttTopic"})),
            "plant/feed".into(),
        );
        assert_eq!(
            by_topic.record("plant/fan", Vec::new(), Some(&device)).key,
            Some(b"plant/fan".to_vec())
        );
    }
}
