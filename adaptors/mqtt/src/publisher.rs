//! A device's connection to its broker.
//!
//! Each device gets its own client: its options (server, credentials, will,
//! client ID) are its own. The event loop runs in a task that reconnects with
//! exponential backoff; publishing never blocks the device, and a message
//! that does not fit the bounded queue is dropped and counted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use devicelink_api::{
    devicelink::ReferenceItem,
    mqtt::{MqttMessageOptions, MqttOptions},
    property::MqttStatus,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions as ClientOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::topic::{Topic, TopicContext, is_publishable};

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("spec.extension.mqtt.client.server {0:?}: {1}")]
    Server(String, String),
    #[error(
        "spec.extension.mqtt.message.topic renders to {0:?}, which cannot be published to (empty, or has + or #)"
    )]
    Topic(String),
    #[error("spec.extension.mqtt.message.qos {0} is not 0, 1 or 2")]
    Qos(i32),
    #[error("spec.extension.mqtt.client.{0} {1:?} is not a duration such as 30s or 1m")]
    Duration(&'static str, String),
    #[error("spec.extension.mqtt.client.{0}: {1}")]
    Reference(&'static str, String),
    #[error("spec.extension.mqtt.message.will.content is not base64: {0}")]
    Will(String),
    #[error("spec.extension.mqtt.client.{0}: {1}")]
    Tls(&'static str, String),
    #[error("spec.extension.mqtt.client.httpHeaders[{0:?}]: {1}")]
    Header(String, String),
    #[error(
        "spec.extension.mqtt.client.protocolVersion {0}: this adaptor speaks MQTT 3.1.1 (4) only so far; set 4 or leave it out"
    )]
    ProtocolVersion(i32),
}

/// Looks up the value of a `*Ref` field in the DeviceLink's references.
pub type Resolve<'a> = &'a dyn Fn(&ReferenceItem) -> Result<String, String>;

/// Where a publisher reports its effective settings and connection state
/// (shown as the device's `status.extension.mqtt`); outlives publishers, as
/// a device's publisher is replaced when its options change.
pub type StatusSender = Arc<tokio::sync::watch::Sender<Option<MqttStatus>>>;

/// Publishes one device's status.
pub struct Publisher {
    client: AsyncClient,
    topic: String,
    qos: QoS,
    retain: bool,
    retained_will: Option<String>,
    dropped: Arc<AtomicU64>,
    event_loop: JoinHandle<()>,
}

impl Publisher {
    /// Connects (in the background) with the device's MQTT options; `*Ref`
    /// fields are looked up with `resolve`.
    pub fn start(
        options: &MqttOptions,
        link: &TopicContext,
        resolve: Resolve,
        state: StatusSender,
    ) -> Result<Self, PublisherError> {
        let message = &options.message;
        let topic = render(&message.topic, message, link)?;
        let qos = qos_of(message.qos_or_default())?;
        let retain = message.retained_or_default();
        let mut client_options = client_options(options, link, resolve)?;
        let will = last_will(message, link, &topic, qos, retain)?;
        // A retained will says the device's adaptor died; once connected
        // again (or when the device goes away) it is no longer true.
        let retained_will = will.as_ref().filter(|w| w.retain).map(|w| w.topic.clone());
        if let Some(will) = will {
            client_options.set_last_will(will);
        }
        let depth = options.client.message_channel_depth.unwrap_or(100).max(1) as usize;
        let max_backoff = match &options.client.max_reconnect_interval {
            Some(d) => d.to_std().ok_or_else(|| {
                PublisherError::Duration("maxReconnectInterval", d.as_str().to_string())
            })?,
            None => Duration::from_secs(600),
        };
        state.send_replace(Some(MqttStatus {
            server: Some(options.client.server.clone()),
            client_id: Some(client_options.client_id()),
            topic: Some(topic.clone()),
            qos: Some(qos as i32),
            retained: Some(retain),
            connected: false,
            ..Default::default()
        }));
        let (client, event_loop) = AsyncClient::new(client_options, depth);
        let server = options.client.server.clone();
        let event_loop = tokio::spawn(drive(
            event_loop,
            client.clone(),
            retained_will.clone(),
            state,
            server,
            max_backoff,
        ));
        Ok(Publisher {
            client,
            topic,
            qos,
            retain,
            retained_will,
            dropped: Arc::default(),
            event_loop,
        })
    }

    /// The topic status is published on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues a message; never waits. Returns false if the queue was full.
    pub fn publish(&self, payload: Vec<u8>) -> bool {
        match self
            .client
            .try_publish(self.topic.clone(), self.qos, self.retain, payload)
        {
            Ok(()) => true,
            Err(e) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                debug!(topic = %self.topic, error = %e, dropped = n, "MQTT queue full; message dropped");
                false
            }
        }
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// For a device that goes away: removes its retained status from the
    /// broker (an empty retained message on the topic) and disconnects.
    /// False if that did not happen within `within` (broker unreachable).
    pub async fn clear_retained_and_close(mut self, within: Duration) -> bool {
        let client = self.client.clone();
        let (topic, qos, retain) = (self.topic.clone(), self.qos, self.retain);
        let will = self.retained_will.clone();
        let work = async move {
            if retain {
                client.publish(topic, qos, true, Vec::new()).await?;
            }
            if let Some(will) = will {
                client.publish(will, qos, true, Vec::new()).await?;
            }
            // Sent after the publish on the same connection; the event
            // loop ends once it is out.
            client.disconnect().await?;
            Ok::<_, rumqttc::ClientError>(())
        };
        let queued = tokio::time::timeout(within, work).await;
        let closed = tokio::time::timeout(within, &mut self.event_loop).await;
        matches!(queued, Ok(Ok(()))) && closed.is_ok()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

/// How the publisher reaches its broker.
enum Transport {
    Tcp,
    Tls,
    Unix,
    Ws,
    Wss,
}

/// `httpHeaders`, checked: added to the websocket handshake request.
fn http_headers(
    headers: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, PublisherError> {
    let mut out = Vec::new();
    for (name, values) in headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PublisherError::Header(name.clone(), e.to_string()))?;
        for value in values {
            let value = http::HeaderValue::from_str(value)
                .map_err(|e| PublisherError::Header(name.clone(), e.to_string()))?;
            out.push((header.clone(), value));
        }
    }
    Ok(out)
}

/// A setting given inline or by reference to `spec.references` (`field`
/// names the reference field in errors).
pub(crate) fn pick(
    field: &'static str,
    inline: &Option<String>,
    by_ref: &Option<ReferenceItem>,
    resolve: Resolve,
) -> Result<Option<String>, PublisherError> {
    match (inline, by_ref) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(r)) => resolve(r)
            .map(Some)
            .map_err(|e| PublisherError::Reference(field, e)),
        (None, None) => Ok(None),
    }
}

/// Renders a topic template of the message options for publishing.
fn render(
    template: &str,
    message: &MqttMessageOptions,
    link: &TopicContext,
) -> Result<String, PublisherError> {
    let topic = Topic::new(
        template,
        link,
        message.path.as_deref(),
        message.operator.as_ref().and_then(|o| o.read.as_deref()),
        message.operator.as_ref().and_then(|o| o.write.as_deref()),
    )
    .for_publish();
    if !is_publishable(&topic) {
        return Err(PublisherError::Topic(topic));
    }
    Ok(topic)
}

fn qos_of(qos: i32) -> Result<QoS, PublisherError> {
    match qos {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        other => Err(PublisherError::Qos(other)),
    }
}

/// The will the broker publishes when the device's connection dies without
/// a goodbye: on `will.topic` (a template like the message topic) or the
/// status topic followed by `/$will`, with the message's qos and retained
/// unless the will sets its own.
fn last_will(
    message: &MqttMessageOptions,
    link: &TopicContext,
    status_topic: &str,
    qos: QoS,
    retain: bool,
) -> Result<Option<LastWill>, PublisherError> {
    use base64::Engine;
    let Some(will) = &message.will else {
        return Ok(None);
    };
    let topic = match &will.topic {
        Some(template) => render(template, message, link)?,
        None => format!("{status_topic}/$will"),
    };
    let content = base64::engine::general_purpose::STANDARD
        .decode(&will.content)
        .map_err(|e| PublisherError::Will(e.to_string()))?;
    let qos = match will.qos {
        Some(q) => qos_of(q)?,
        None => qos,
    };
    Ok(Some(LastWill::new(
        topic,
        content,
        qos,
        will.retained.unwrap_or(retain),
    )))
}

/// Polls the connection; on errors waits 1 s, doubling up to `max_backoff`.
async fn drive(
    mut event_loop: rumqttc::EventLoop,
    client: AsyncClient,
    retained_will: Option<String>,
    state: StatusSender,
    server: String,
    max_backoff: Duration,
) {
    let mut backoff = Duration::from_secs(1);
    let set = |connected: bool, error: Option<String>| {
        state.send_if_modified(|s| {
            let Some(s) = s.as_mut() else { return false };
            let changed = s.connected != connected || (error.is_some() && s.last_error != error);
            s.connected = connected;
            if error.is_some() {
                s.last_error = error;
            }
            changed
        });
    };
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                debug!(%server, "connected to MQTT broker");
                set(true, None);
                backoff = Duration::from_secs(1);
                if let Some(will) = &retained_will {
                    let _ = client.try_publish(will.clone(), QoS::AtLeastOnce, true, Vec::new());
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                warn!(%server, error = %e, retry_in = ?backoff, "MQTT connection failed");
                set(false, Some(e.to_string()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff.max(Duration::from_secs(1)));
            }
        }
    }
}

fn client_options(
    options: &MqttOptions,
    link: &TopicContext,
    resolve: Resolve,
) -> Result<ClientOptions, PublisherError> {
    let client = &options.client;
    // Refused rather than silently speaking 3.1.1 to a broker set up for 5.
    if let Some(version) = client.protocol_version.filter(|v| *v != 4) {
        return Err(PublisherError::ProtocolVersion(version));
    }
    let bad = |why: &str| PublisherError::Server(client.server.clone(), why.to_string());
    let url = url::Url::parse(&client.server).map_err(|e| bad(&e.to_string()))?;
    let host =
        || Ok::<_, PublisherError>(url.host_str().ok_or_else(|| bad("no host"))?.to_string());
    // (address, port, transport); a unix socket's address is its path.
    let (address, port, transport) = match url.scheme() {
        "tcp" => (host()?, url.port().unwrap_or(1883), Transport::Tcp),
        "ssl" | "tls" | "tcps" => (host()?, url.port().unwrap_or(8883), Transport::Tls),
        "unix" if !url.path().is_empty() => (url.path().to_string(), 0, Transport::Unix),
        // Websockets dial the whole URL (its path is the broker's endpoint).
        "ws" => (
            client.server.clone(),
            url.port_or_known_default().unwrap_or(80),
            Transport::Ws,
        ),
        "wss" => (
            client.server.clone(),
            url.port_or_known_default().unwrap_or(443),
            Transport::Wss,
        ),
        "unix" => return Err(bad("no socket path; write unix:///path/to/socket")),
        other => {
            return Err(bad(&format!(
                "scheme {other} is not supported; use tcp, ssl, tls, tcps, ws, wss or unix"
            )));
        }
    };
    // Stable across restarts, unique per DeviceLink.
    let client_id = client
        .client_id
        .clone()
        .unwrap_or_else(|| format!("devicelink-{}", link.uid));
    let mut out = ClientOptions::new(client_id, address, port);
    out.set_clean_session(client.clean_session.unwrap_or(true));
    if let Some(keep_alive) = &client.keep_alive {
        let d = keep_alive.to_std().ok_or_else(|| {
            PublisherError::Duration("keepAlive", keep_alive.as_str().to_string())
        })?;
        out.set_keep_alive(d.max(Duration::from_secs(1)));
    }
    if let Some(auth) = &client.basic_auth {
        // The API server requires one of each pair.
        let user = pick(
            "basicAuth.usernameRef",
            &auth.username,
            &auth.username_ref,
            resolve,
        )?;
        let password = pick(
            "basicAuth.passwordRef",
            &auth.password,
            &auth.password_ref,
            resolve,
        )?;
        out.set_credentials(user.unwrap_or_default(), password.unwrap_or_default());
    }
    match transport {
        Transport::Tcp => {}
        Transport::Tls => {
            let config = crate::tls::client_config(client.tls_config.as_ref(), resolve)?;
            out.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
            ));
        }
        Transport::Unix => {
            out.set_transport(rumqttc::Transport::unix());
        }
        Transport::Ws => {
            out.set_transport(rumqttc::Transport::Ws);
        }
        Transport::Wss => {
            let config = crate::tls::client_config(client.tls_config.as_ref(), resolve)?;
            out.set_transport(rumqttc::Transport::wss_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
            ));
        }
    }
    if matches!(transport, Transport::Ws | Transport::Wss) && !client.http_headers.is_empty() {
        let headers = http_headers(&client.http_headers)?;
        out.set_request_modifier(move |mut request: http::Request<()>| {
            for (name, value) in &headers {
                request.headers_mut().append(name.clone(), value.clone());
            }
            std::future::ready(request)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(will: serde_json::Value) -> MqttMessageOptions {
        serde_json::from_value(serde_json::json!({
            "topic": "plant/:namespace/:name",
            "will": will,
        }))
        .unwrap()
    }

    fn link() -> TopicContext {
        TopicContext {
            namespace: "ns".into(),
            name: "fan".into(),
            uid: "u".into(),
        }
    }

    #[test]
    fn will_defaults_to_the_status_topic_and_message_settings() {
        let m = message(serde_json::json!({"content": "Z29uZQ=="}));
        let will = last_will(&m, &link(), "plant/ns/fan", QoS::AtLeastOnce, true)
            .unwrap()
            .unwrap();
        assert_eq!(will.topic, "plant/ns/fan/$will");
        assert_eq!(&will.message[..], b"gone");
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
    }

    #[test]
    fn will_topic_is_a_template_and_its_own_settings_win() {
        let m = message(serde_json::json!({
            "topic": "wills/:name", "content": "", "qos": 0, "retained": false,
        }));
        let will = last_will(&m, &link(), "plant/ns/fan", QoS::AtLeastOnce, true)
            .unwrap()
            .unwrap();
        assert_eq!(will.topic, "wills/fan");
        assert_eq!(will.qos, QoS::AtMostOnce);
        assert!(!will.retain);
    }

    #[test]
    fn mqtt_5_is_refused_until_it_is_spoken_naming_the_field() {
        let options: MqttOptions = serde_json::from_value(serde_json::json!({
            "client": {"server": "tcp://broker:1883", "protocolVersion": 5},
            "message": {"topic": "t"},
        }))
        .unwrap();
        let no_refs = |_: &ReferenceItem| Err(String::new());
        let err = client_options(&options, &link(), &no_refs).unwrap_err();
        assert!(err.to_string().contains("protocolVersion 5"), "{err}");
    }

    #[test]
    fn content_that_is_not_base64_is_refused_naming_the_field() {
        let m = message(serde_json::json!({"content": "not base64!"}));
        let err = last_will(&m, &link(), "t", QoS::AtLeastOnce, true).unwrap_err();
        assert!(err.to_string().contains("will.content"), "{err}");
    }
}
