//! For a watcher of device topics (the console): how to reach the broker of
//! a DeviceLink's MQTT extension and which topics to follow, made by the
//! same code the adaptors publish with, so both always agree on topics and
//! connection settings.

use devicelink_api::mqtt::{MqttClientOptions, MqttMessageOptions, MqttOptions};

use crate::{
    error::{PublisherError, Resolve},
    options::client_options,
    sharing::dial_and_digest,
    topic::{TopicContext, render, write_topic_of},
    wire::{Dial, Version},
};

/// A DeviceLink's MQTT extension as a watcher sees it.
pub struct Observed {
    /// Equal for DeviceLinks whose broker, protocol, credentials, TLS
    /// material and headers are equal: one connection serves them all.
    pub connection: String,
    /// How to connect: a clean session with no will, under `client_id`.
    pub dial: Dial,
    /// Where the adaptor publishes the device's status.
    pub status_topic: String,
    /// Where the adaptor takes writes.
    pub write_topic: String,
    pub version: Version,
}

/// The watcher's view of `options`; `client_id` prefixes the client ID of
/// the connection (followed by a digest of its settings), and `*Ref`
/// values are looked up with `resolve`.
pub fn observe(
    options: &MqttOptions,
    link: &TopicContext,
    resolve: Resolve,
    client_id: &str,
) -> Result<Observed, PublisherError> {
    let (status_topic, write_topic) = device_topics(&options.message, link)?;
    // The same settings make the same connection as an adaptor's shared
    // one (a rotated password is another connection).
    let (mut dial, connection) = dial_and_digest(options, link, resolve)?;
    dial.client_id = format!("{client_id}-{}", connection.short());
    dial.clean = true;
    dial.will = None;
    Ok(Observed {
        connection: connection.to_string(),
        version: dial.version,
        dial,
        status_topic,
        write_topic,
    })
}

/// Where the adaptor of a DeviceLink whose messages `message` configures
/// publishes its status, and where it takes writes.
pub fn device_topics(
    message: &MqttMessageOptions,
    link: &TopicContext,
) -> Result<(String, String), PublisherError> {
    let status_topic = render(&message.topic, message, link)?;
    let write_topic = write_topic_of(message, link, &status_topic);
    Ok((status_topic, write_topic))
}

/// For a reader that must not lose a message (the Kafka bridge): how to
/// reach the broker `client` names as `client_id`, keeping a session (what
/// arrives while the reader is away waits in it) and acknowledging each
/// message only when the reader says it is handled. `owner` stands for the
/// object whose settings these are, as a DeviceLink does for a device.
pub fn durable_reader(
    client: &MqttClientOptions,
    owner: &TopicContext,
    resolve: Resolve,
    client_id: String,
) -> Result<Dial, PublisherError> {
    let options = MqttOptions {
        client: client.clone(),
        message: Default::default(),
    };
    let mut dial = client_options(&options, owner, resolve)?;
    dial.client_id = client_id;
    dial.clean = false;
    dial.will = None;
    dial.manual_acks = true;
    Ok(dial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: serde_json::Value) -> MqttOptions {
        serde_json::from_value(value).unwrap()
    }

    fn link() -> TopicContext {
        TopicContext {
            namespace: "plant".into(),
            name: "fan".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn devicelinks_on_one_broker_share_a_connection_and_keep_their_topics() {
        let none: Resolve = &|_| Err("no references".into());
        let a = options(
            json!({"client": {"server": "tcp://broker:1883", "clientID": "fan-a"},
                               "message": {"topic": "cattle.io/octopus/:namespace/:name"}}),
        );
        let b = options(
            json!({"client": {"server": "tcp://broker:1883", "clientID": "fan-b",
                                          "cleanSession": false},
                               "message": {"topic": "plant/:name/:operator",
                                           "operator": {"write": "status", "read": "set"}}}),
        );
        let (a, b) = (
            observe(&a, &link(), none, "console").unwrap(),
            observe(&b, &link(), none, "console").unwrap(),
        );
        assert_eq!(a.connection, b.connection);
        assert_eq!(a.dial.client_id, format!("console-{}", &a.connection[..12]));
        assert!(b.dial.clean, "the watcher keeps no session");
        assert_eq!(a.status_topic, "cattle.io/octopus/plant/fan");
        assert_eq!(a.write_topic, "cattle.io/octopus/plant/fan/$write");
        assert_eq!(
            (b.status_topic.as_str(), b.write_topic.as_str()),
            ("plant/fan/status", "plant/fan/set")
        );
    }

    #[test]
    fn other_credentials_are_another_connection_even_by_reference() {
        let by_ref = options(json!({"client": {"server": "tcp://broker:1883",
            "basicAuth": {"username": "plant", "passwordRef": {"name": "broker", "item": "password"}}},
            "message": {"topic": ":namespace/:name"}}));
        let first: Resolve = &|_| Ok("one".into());
        let rotated: Resolve = &|_| Ok("two".into());
        let (one, two) = (
            observe(&by_ref, &link(), first, "console").unwrap(),
            observe(&by_ref, &link(), rotated, "console").unwrap(),
        );
        assert_ne!(one.connection, two.connection);
        assert_eq!(
            one.dial.credentials,
            Some(("plant".to_string(), "one".to_string()))
        );
        let missing: Resolve = &|_| Err("secret \"broker\" is not readable".into());
        assert!(observe(&by_ref, &link(), missing, "console").is_err());
    }
}
