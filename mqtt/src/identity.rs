//! The broker the cluster's operator manages (the chart's own), and the
//! identity an adaptor or the console has on it.
//!
//! On that broker no one connects anonymously: the operator gives each
//! adaptor pod and the console a username and password of their own
//! (rotated) and grants each only its devices' topics. A DeviceLink whose
//! server is that broker and that gives no `basicAuth` is connected with
//! that identity; a DeviceLink with `basicAuth` keeps its own.

use std::sync::OnceLock;

use devicelink_api::{
    devicelink::ReferenceItem,
    mqtt::{BROKER_IDENTITY_REFERENCE, MqttClientOptions, MqttOptions},
};

use crate::{
    error::{PublisherError, Resolve},
    topic::{TopicContext, render, will_topic, write_topic_of},
};

/// The addresses (scheme family, host, port) the managed broker is reached
/// at, e.g. its Service's short and full DNS names.
static MANAGED: OnceLock<Vec<Address>> = OnceLock::new();

#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    tls: bool,
    host: String,
    port: u16,
}

fn address(server: &str) -> Option<Address> {
    let url = url::Url::parse(server).ok()?;
    let tls = match url.scheme() {
        "tcp" | "ws" => false,
        "ssl" | "tls" | "tcps" | "wss" => true,
        _ => return None,
    };
    let port = url.port().unwrap_or(match url.scheme() {
        "tcp" => 1883,
        "ws" => 80,
        "wss" => 443,
        _ => 8883,
    });
    Some(Address {
        tls,
        host: url.host_str()?.trim_end_matches('.').to_ascii_lowercase(),
        port,
    })
}

/// Names the managed broker's servers (once, at start). A server that is
/// not a URL is an error, so a typo in a flag does not silently leave every
/// device without an identity.
pub fn set_managed_broker(servers: &[String]) -> Result<(), String> {
    let mut addresses = Vec::new();
    for s in servers.iter().filter(|s| !s.is_empty()) {
        addresses.push(address(s).ok_or_else(|| {
            format!("managed broker {s:?} is not a tcp://, ssl://, tls://, ws:// or wss:// URL")
        })?);
    }
    let _ = MANAGED.set(addresses);
    Ok(())
}

/// Whether `server` is the managed broker.
pub fn is_managed(server: &str) -> bool {
    let Some(managed) = MANAGED.get() else {
        return false;
    };
    address(server).is_some_and(|a| managed.contains(&a))
}

/// Whether a device with these client options connects with the identity
/// the operator gave its adaptor: it is on the managed broker and brings no
/// credentials of its own.
pub fn uses_identity(client: &MqttClientOptions) -> bool {
    client.basic_auth.is_none() && is_managed(&client.server)
}

/// The identity's username and password, from the device's resolved
/// references.
pub(crate) fn credentials(resolve: Resolve) -> Result<(String, String), PublisherError> {
    let item = |item: &str| {
        resolve(&ReferenceItem {
            name: BROKER_IDENTITY_REFERENCE.into(),
            item: item.into(),
        })
        .map_err(PublisherError::Identity)
    };
    Ok((item("username")?, item("password")?))
}

/// The topics of one device's MQTT extension that its adaptor's identity
/// needs on the broker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceTopics {
    /// Where its status goes (retained).
    pub status: String,
    /// Where its will goes, if it has one.
    pub will: Option<String>,
    /// Where writes to it arrive; answers go one level below.
    pub write: String,
}

/// The topics `options` give a DeviceLink, rendered as its adaptor renders
/// them.
pub fn device_topics(
    options: &MqttOptions,
    link: &TopicContext,
) -> Result<DeviceTopics, PublisherError> {
    let message = &options.message;
    let status = render(&message.topic, message, link)?;
    let will = match &message.will {
        Some(will) => Some(will_topic(will, message, link, &status)?),
        None => None,
    };
    let write = write_topic_of(message, link, &status);
    Ok(DeviceTopics {
        status,
        will,
        write,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_broker_under_other_spellings_is_managed() {
        let managed = [
            address("tcp://devicelink-mqtt.devicelink:1883").unwrap(),
            address("tcp://devicelink-mqtt.devicelink.svc.cluster.local").unwrap(),
        ];
        let is = |s: &str| address(s).is_some_and(|a| managed.contains(&a));
        assert!(is("tcp://devicelink-mqtt.devicelink"));
        assert!(is("tcp://DEVICELINK-MQTT.devicelink:1883/"));
        assert!(is(
            "tcp://devicelink-mqtt.devicelink.svc.cluster.local.:1883"
        ));
        assert!(!is("tcp://devicelink-mqtt.devicelink:1884"));
        assert!(!is("ssl://devicelink-mqtt.devicelink:1883"));
        assert!(!is("tcp://elsewhere:1883"));
        assert!(!is("not a url"));
    }

    #[test]
    fn topics_are_those_the_publisher_uses() {
        let options: MqttOptions = serde_json::from_value(serde_json::json!({
            "client": {"server": "tcp://b:1883"},
            "message": {"topic": "cattle.io/octopus/:namespace/:name",
                        "will": {"content": "b2Zm"}}}))
        .unwrap();
        let link = TopicContext {
            namespace: "plant".into(),
            name: "fan".into(),
            uid: "u".into(),
        };
        let t = device_topics(&options, &link).unwrap();
        assert_eq!(t.status, "cattle.io/octopus/plant/fan");
        assert_eq!(t.will.as_deref(), Some("cattle.io/octopus/plant/fan/$will"));
        assert_eq!(t.write, "cattle.io/octopus/plant/fan/$write");
    }
}
