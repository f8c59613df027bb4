//! Finding devices that speak MQTT (docs/discovery.md): the adaptor
//! listens on the discovery's broker, anonymously, to its topic filters
//! for a while; each topic heard whose message is a JSON object is a
//! find, with the fields of its latest message (paths, types, an example)
//! from which an MQTTDevice's properties are proposed.

use std::{collections::BTreeMap, time::Duration};

use devicelink_adaptor_runtime::{Discoverer, Found, References, Scan};
use devicelink_api::discovery::{
    DeviceDiscoverySpec, DiscoveredProtocol, MessageField, MqttDiscovery,
};
use futures::{FutureExt, future::BoxFuture};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Map, Value};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

/// Fields recorded per topic: a device's message is a handful.
const MAX_FIELDS: usize = 64;
/// Longest example kept of a field's value.
const MAX_EXAMPLE: usize = 64;

/// Listens for the MQTT sections of discoveries.
#[derive(Default)]
pub struct MqttDiscoverer;

impl Discoverer for MqttDiscoverer {
    fn protocol(&self) -> DiscoveredProtocol {
        DiscoveredProtocol::Mqtt
    }

    fn scan<'a>(
        &'a self,
        spec: &'a DeviceDiscoverySpec,
        sign_in: &'a References,
    ) -> BoxFuture<'a, Scan> {
        async move {
            match &spec.mqtt {
                Some(mqtt) => listen(mqtt, sign_in).await,
                None => Scan::default(),
            }
        }
        .boxed()
    }
}

/// One scan: connect (as the discovery's user, if it names one),
/// subscribe, keep the latest JSON object of each topic until `listen` is
/// over, disconnect.
async fn listen(settings: &MqttDiscovery, sign_in: &References) -> Scan {
    let Some((host, port)) = broker_address(&settings.server) else {
        warn!(server = %settings.server, "not tcp://<address>:<port>; not listened to");
        return Scan::default();
    };
    let login = match login(settings, sign_in) {
        Ok(login) => login,
        Err(why) => {
            return Scan {
                unreached: vec![format!("{}: {why}", settings.server)],
                ..Scan::default()
            };
        }
    };
    // A client ID of its own: taking a device's or an adaptor's would
    // disconnect it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut options = MqttOptions::new(format!("devicelink-discovery-{nanos:08x}"), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    let (client, mut events) = AsyncClient::new(options, 64);
    for filter in &settings.topics {
        if let Err(e) = client.subscribe(filter, QoS::AtMostOnce).await {
            warn!(filter, error = %e, "cannot subscribe");
        }
    }
    let most = settings.max_topics();
    let mut heard: BTreeMap<String, Vec<MessageField>> = BTreeMap::new();
    let mut unreached = Vec::new();
    let deadline = Instant::now() + settings.listen();
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => break,
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let known = heard.contains_key(&message.topic);
                    if !known && heard.len() >= most {
                        continue;
                    }
                    if let Ok(Value::Object(object)) = serde_json::from_slice(&message.payload) {
                        heard.insert(message.topic.clone(), fields(&object));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(server = %settings.server, error = %e, "the broker connection ended");
                    unreached.push(format!("{}: {e}", settings.server));
                    break;
                }
            },
        }
    }
    let _ = client.try_disconnect();
    Scan {
        finds: heard
            .into_iter()
            .map(|(topic, fields)| Found {
                identity: BTreeMap::from([("topic".to_string(), topic.clone())]),
                address: topic,
                fields,
                ..Found::default()
            })
            .collect(),
        addresses: 1,
        requests: 1 + settings.topics.len() as u64,
        unreached,
    }
}

/// The user name and password of `basicAuth`, if the discovery gives one,
/// or why they cannot be read.
fn login(
    settings: &MqttDiscovery,
    sign_in: &References,
) -> Result<Option<(String, String)>, String> {
    let Some(auth) = &settings.basic_auth else {
        return Ok(None);
    };
    let username = sign_in
        .inline_or_ref(&auth.username, &auth.username_ref)
        .map_err(|e| format!("spec.mqtt.basicAuth.usernameRef: {e}"))?
        .unwrap_or_default();
    let password = sign_in
        .text(&auth.password_ref)
        .map_err(|e| format!("spec.mqtt.basicAuth.passwordRef: {e}"))?;
    Ok(Some((username, password)))
}

/// The host and port of `tcp://<address>:<port>`.
fn broker_address(server: &str) -> Option<(String, u16)> {
    let rest = server.strip_prefix("tcp://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The leaves of a JSON object by dotted path (a dot inside a key is
/// `\.`), nested objects walked into, at most [`MAX_FIELDS`].
fn fields(object: &Map<String, Value>) -> Vec<MessageField> {
    let mut out = Vec::new();
    walk(object, "", &mut out);
    out
}

fn walk(object: &Map<String, Value>, prefix: &str, out: &mut Vec<MessageField>) {
    for (key, value) in object {
        if out.len() >= MAX_FIELDS {
            return;
        }
        let path = format!("{prefix}{}", key.replace('.', "\\."));
        let type_ = match value {
            Value::Object(inner) => {
                walk(inner, &format!("{path}."), out);
                continue;
            }
            Value::Null => continue,
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "int",
            Value::Number(_) => "float",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        };
        let mut example = value.to_string();
        if example.len() > MAX_EXAMPLE {
            let cut = example.floor_char_boundary(MAX_EXAMPLE);
            example.truncate(cut);
            example.push('…');
        }
        out.push(MessageField {
            path,
            type_: type_.into(),
            example,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_described_by_its_leaves() {
        let message = serde_json::json!({
            "temperature": 21.5, "on": true, "count": 7, "name": "hall",
            "power": {"watts": 1200, "phase.a": 400},
            "history": [1, 2], "unset": null,
        });
        let mut described: Vec<(String, String)> = fields(message.as_object().unwrap())
            .into_iter()
            .map(|f| (f.path, f.type_))
            .collect();
        described.sort();
        let want = [
            ("count", "int"),
            ("history", "array"),
            ("name", "string"),
            ("on", "boolean"),
            ("power.phase\\.a", "int"),
            ("power.watts", "int"),
            ("temperature", "float"),
        ];
        assert_eq!(described, want.map(|(p, t)| (p.to_string(), t.to_string())));
    }

    #[test]
    fn a_broker_address_is_read() {
        assert_eq!(
            broker_address("tcp://10.0.0.5:1883"),
            Some(("10.0.0.5".into(), 1883))
        );
        assert_eq!(
            broker_address("tcp://[fd00::5]:1883"),
            Some(("fd00::5".into(), 1883))
        );
        assert_eq!(broker_address("ssl://10.0.0.5:8883"), None);
    }
}
