//! A device's publisher: its status topic, QoS and retain flag, its outbox,
//! its write topic, on a connection to its broker (its own, or one it
//! shares with other devices of the adaptor, see [`crate::sharing`]).
//! Publishing never blocks the device, and a message that does not fit the
//! bounded queue is dropped and counted.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use devicelink_api::{
    mqtt::{
        MqttClientOptions, MqttMessageOptions, MqttOptions, MqttStore, MqttStoreType, PayloadEncode,
    },
    property::MqttStatus,
};
use devicelink_cells::{Mailbox, latest};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    MqttMetrics,
    connection::{Connection, Inbound, Member, Plan, Timing},
    delivery::Delivery,
    message::Message,
    outbox::SharedOutbox,
    sharing::Connections,
    store::FileStore,
    subscriptions::MemberId,
    topic::{TopicContext, render, will_topic, write_topic_of},
    wire::Dial,
};
// Where users of a publisher have always found them.
pub use crate::{
    delivery::{StatusReceiver, StatusSender},
    error::{PublisherError, Resolve},
    inbound::{Received, WRITES_WAITING, WriteRequest, reply_topic},
};

/// What a device keeps across its publishers (a publisher is replaced when
/// the device's options or the values they refer to change).
pub struct DeviceMqtt {
    /// Effective settings and connection state, for the device's status.
    pub state: StatusSender,
    /// Messages not yet acknowledged by the broker.
    pub outbox: SharedOutbox,
    /// The adaptor's data directory (one for all devices); the File store
    /// keeps a device's messages in
    /// `<dataDir>/<directoryPrefix or mqtt>/<namespace>/<name>`.
    pub data_dir: Arc<Path>,
    /// Where writes received on the device's write topic wait for it.
    pub writes: Arc<Mailbox<WriteRequest>>,
    /// The adaptor's shared connections, if it shares them; a device whose
    /// options allow joins the one for its settings.
    pub connections: Option<Arc<Connections>>,
}

impl DeviceMqtt {
    /// A device's MQTT state, with the receiving end of its status.
    pub fn new(metrics: MqttMetrics, data_dir: Arc<Path>) -> (DeviceMqtt, StatusReceiver) {
        let (state, state_rx) = latest::channel(None);
        // A device applies writes one by one; a few may wait.
        let writes = Arc::new(Mailbox::new(WRITES_WAITING));
        let state = Arc::new(state);
        // Resized to messageChannelDepth by the first publisher.
        let outbox = Arc::new(crate::Outbox::new(100, metrics));
        outbox.report_to(state.clone());
        let mqtt = DeviceMqtt {
            state,
            outbox,
            data_dir,
            writes,
            connections: None,
        };
        (mqtt, state_rx)
    }
}

/// Publishes one device's status and receives its writes.
pub struct Publisher {
    on: On,
    topic: String,
    qos: QoS,
    retain: bool,
    encode: PayloadEncode,
    retained_will: Option<String>,
    outbox: SharedOutbox,
    delivery: Delivery,
    quiesce: Duration,
}

/// The connection a publisher is a member of.
enum On {
    Own(Arc<Connection>, MemberId),
    Shared {
        connections: Arc<Connections>,
        digest: crate::sharing::Digest,
        connection: Arc<Connection>,
        id: MemberId,
    },
    /// Left already.
    Nothing,
}

impl Publisher {
    /// Connects (in the background) with the device's MQTT extension
    /// options, to publish its status and take writes; `*Ref` fields are
    /// looked up with `resolve`.
    pub fn start(
        options: &MqttOptions,
        link: &TopicContext,
        resolve: Resolve,
        device: &DeviceMqtt,
    ) -> Result<Self, PublisherError> {
        let topic = render(&options.message.topic, &options.message, link)?;
        let inbound = Inbound::Writes {
            topic: write_topic_of(&options.message, link, &topic),
            sink: device.writes.clone(),
        };
        Publisher::connect(options, link, resolve, device, topic, inbound, None)
    }

    /// Connects (in the background) to an MQTT-native device's broker with
    /// the options of its protocol: subscribes to `filters` (topic, QoS),
    /// hands what arrives on them to `sink`, and publishes to the device
    /// with [`Publisher::publish_to`]. Its client ID, unless the options
    /// name one, differs from the extension's of the same DeviceLink; like
    /// the extension's, it may ride a shared connection
    /// ([`crate::sharing`]), which subscribes once to a topic several of
    /// its devices listen to.
    pub fn start_device(
        options: &MqttOptions,
        link: &TopicContext,
        resolve: Resolve,
        device: &DeviceMqtt,
        filters: Vec<(String, i32)>,
        sink: mpsc::Sender<Received>,
    ) -> Result<Self, PublisherError> {
        let topic = render(&options.message.topic, &options.message, link)?;
        let filters = filters
            .into_iter()
            .map(|(topic, qos)| Ok((topic, qos_of(qos)?)))
            .collect::<Result<_, PublisherError>>()?;
        let inbound = Inbound::Device { filters, sink };
        Publisher::connect(
            options,
            link,
            resolve,
            device,
            topic,
            inbound,
            Some("device"),
        )
    }

    fn connect(
        options: &MqttOptions,
        link: &TopicContext,
        resolve: Resolve,
        device: &DeviceMqtt,
        topic: String,
        inbound: Inbound,
        // Set apart from the extension's connection of the same DeviceLink:
        // its own client ID (unless shared) and File store directory get
        // this suffix.
        second: Option<&str>,
    ) -> Result<Self, PublisherError> {
        let message = &options.message;
        let client = &options.client;
        let qos = qos_of(message.qos_or_default())?;
        let retain = message.retained_or_default();
        let timing = Timing::of(client)?;
        let (mut dial, digest) = crate::sharing::dial_and_digest(options, link, resolve)?;
        if let (None, Some(suffix)) = (&client.client_id, second) {
            dial.client_id = format!("{}-{suffix}", dial.client_id);
        }
        let shared = device
            .connections
            .clone()
            .filter(|_| crate::sharing::shareable(options));
        let will = match shared {
            Some(_) => None,
            None => last_will(message, link, &topic, qos, retain)?,
        };
        // A retained will says the device's adaptor died; once connected
        // again (or when the device goes away) it is no longer true.
        let retained_will = will.as_ref().filter(|w| w.retain).map(|w| w.topic.clone());
        dial.will = will;
        let depth = configure_outbox(client, device, link, second)?;
        let client_id = match &shared {
            Some(connections) => connections.client_id(digest),
            None => dial.client_id.clone(),
        };
        let settings = MqttStatus {
            client_id: Some(client_id),
            topic: Some(topic.clone()),
            write_topic: inbound.write_topic(),
            ..settings_shown(client, qos, retain)
        };
        device.state.send_replace(Some(settings));
        device.outbox.refresh_notice();
        let delivery = Delivery::new(device.state.clone());
        let member = Member {
            outbox: device.outbox.clone(),
            state: device.state.clone(),
            delivery: delivery.clone(),
            status_topic: topic.clone(),
            inbound,
            retained_will: retained_will.clone(),
        };
        let on = match shared {
            Some(connections) => {
                let (connection, id) =
                    connections.join(digest, dial, &client.server, timing, member);
                On::Shared {
                    connections,
                    digest,
                    connection,
                    id,
                }
            }
            None => own_connection(dial, client, timing, depth, member),
        };
        Ok(Publisher {
            on,
            topic,
            qos,
            retain,
            encode: message.payload_encode.unwrap_or_default(),
            retained_will,
            outbox: device.outbox.clone(),
            delivery,
            quiesce: timing.quiesce,
        })
    }

    /// The topic status is published on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues a status message (JSON); never waits. While the broker is
    /// away up to messageChannelDepth messages wait, the oldest dropped
    /// first. One larger than the broker takes is not queued, and the
    /// device's status says so until one fits.
    pub fn publish(&self, json: Vec<u8>) {
        let payload = match self.encode {
            PayloadEncode::Raw => json,
            PayloadEncode::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(json)
                    .into_bytes()
            }
        };
        self.enqueue(Message {
            topic: self.topic.clone(),
            qos: self.qos,
            retain: self.retain,
            payload,
            correlation: None,
        });
    }

    /// Queues a message to an MQTT-native device (a command, a written
    /// value) on `topic`; never waits, and waits for the broker like status
    /// messages do.
    pub fn publish_to(&self, topic: String, qos: i32, retain: bool, payload: Vec<u8>) {
        let qos = qos_of(qos).unwrap_or(QoS::AtLeastOnce);
        self.enqueue(Message {
            topic,
            qos,
            retain,
            payload,
            correlation: None,
        });
    }

    /// Queues `message` if the broker takes one of its size; a status
    /// message that it does not shows on the device until one fits.
    fn enqueue(&self, message: Message) {
        let status = message.topic == self.topic;
        if !self.delivery.fits(&message) {
            let why = self.delivery.too_large(&message);
            if !status || self.delivery.not_sent(why.clone()) {
                warn!(topic = %message.topic, "{why}");
            }
            self.outbox.metrics().failed.inc();
            return;
        }
        if status {
            self.delivery.fit();
        }
        self.outbox.push(message);
    }

    /// Answers a write (never retained, never stored on disk), quoting
    /// its MQTT 5 correlation data if it had some.
    pub fn reply(&self, request: &WriteRequest, payload: Vec<u8>) {
        self.outbox.push_next(Message {
            topic: request.reply_topic.clone(),
            qos: QoS::AtLeastOnce,
            retain: false,
            payload,
            correlation: request.correlation.clone(),
        });
    }

    /// For a device that goes away: drops what has not been sent, removes
    /// its retained status from the broker (an empty retained message on
    /// the topic) and disconnects once the broker has it (within
    /// disconnectQuiesce). False if that did not happen (broker
    /// unreachable). The device's stored messages are its owner's to
    /// remove ([`crate::Outbox::destroy`]).
    pub async fn clear_retained_and_close(mut self) -> bool {
        let within = self.quiesce;
        self.outbox.discard_waiting();
        let clear = |topic: &str| Message {
            topic: topic.to_string(),
            qos: QoS::AtLeastOnce,
            retain: true,
            payload: Vec::new(),
            correlation: None,
        };
        if self.retain {
            self.outbox.push_next(clear(&self.topic));
        }
        if let Some(will) = &self.retained_will {
            self.outbox.push_next(clear(will));
        }
        let drained = tokio::time::timeout(within, self.outbox.drained()).await;
        let closed = self.leave_and_close().await;
        drained.is_ok() && closed
    }

    /// Takes the publisher off its connection; if it was the last member,
    /// waits (a second at most) for the connection to end. False if it
    /// did not end in time.
    async fn leave_and_close(&mut self) -> bool {
        match self.leave() {
            Some(ending) => ending.closed().await,
            None => true,
        }
    }

    /// Takes the publisher off its connection; the connection if it ends.
    fn leave(&mut self) -> Option<Arc<Connection>> {
        match std::mem::replace(&mut self.on, On::Nothing) {
            On::Own(connection, id) => {
                connection.leave(id);
                Some(connection)
            }
            On::Shared {
                connections,
                digest,
                connection,
                id,
            } => connections
                .leave(digest, &connection, id)
                .then_some(connection),
            On::Nothing => None,
        }
    }

    /// The client ID of the connection it is on.
    pub fn client_id(&self) -> Option<&str> {
        match &self.on {
            On::Own(c, _) | On::Shared { connection: c, .. } => Some(c.client_id()),
            On::Nothing => None,
        }
    }
}

impl Publisher {
    /// For an adaptor that stops: gives messages in flight up to
    /// disconnectQuiesce to reach the broker, then disconnects (what is
    /// left stays in the File store, if there is one).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.quiesce, self.outbox.drained()).await;
        self.leave_and_close().await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(ending) = self.leave() {
            ending.abort();
        }
    }
}

impl Timing {
    fn of(client: &MqttClientOptions) -> Result<Self, PublisherError> {
        let duration = |field: &'static str,
                        value: &Option<devicelink_api::duration::Duration>,
                        default: Duration| match value {
            Some(d) => d
                .to_std()
                .ok_or_else(|| PublisherError::Duration(field, d.as_str().to_string())),
            None => Ok(default),
        };
        Ok(Timing {
            connect: duration(
                "connectTimeout",
                &client.connect_timeout,
                Duration::from_secs(30),
            )?,
            ping: duration("pingTimeout", &client.ping_timeout, Duration::from_secs(10))?,
            write: duration("writeTimeout", &client.write_timeout, Duration::ZERO)?,
            wait: duration("waitTimeout", &client.wait_timeout, Duration::ZERO)?,
            quiesce: duration(
                "disconnectQuiesce",
                &client.disconnect_quiesce,
                Duration::from_secs(5),
            )?,
            max_backoff: duration(
                "maxReconnectInterval",
                &client.max_reconnect_interval,
                Duration::from_secs(600),
            )?
            .max(Duration::from_secs(1)),
            auto_reconnect: client.auto_reconnect.unwrap_or(true),
        })
    }
}

/// The File store's directory for one device. `directoryPrefix` is taken
/// below the data directory even when absolute (Octopus's default was
/// `/var/run/octopus/mqtt`), and may not climb out of it.
fn store_dir(
    data_dir: &std::path::Path,
    store: &MqttStore,
    link: &TopicContext,
) -> Result<PathBuf, PublisherError> {
    use std::path::Component;
    let prefix = std::path::Path::new(store.directory_prefix.as_deref().unwrap_or("mqtt"));
    let mut dir = data_dir.to_path_buf();
    for part in prefix.components() {
        match part {
            Component::Normal(p) => dir.push(p),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(PublisherError::Store(format!(
                    "directoryPrefix {:?} may not contain ..",
                    prefix.display()
                )));
            }
        }
    }
    Ok(dir.join(&link.namespace).join(&link.name))
}

/// The device's File store (`client.store` of type File), if it has one;
/// `second` sets a second connection's apart.
fn open_store(
    client: &MqttClientOptions,
    data_dir: &std::path::Path,
    link: &TopicContext,
    second: Option<&str>,
) -> Result<Option<FileStore>, PublisherError> {
    let Some(store) = client
        .store
        .as_ref()
        .filter(|s| s.type_ == Some(MqttStoreType::File))
    else {
        return Ok(None);
    };
    let dir = store_dir(data_dir, store, link)?;
    let dir = match second {
        Some(suffix) => dir.join(suffix),
        None => dir,
    };
    FileStore::open(dir.clone())
        .map(Some)
        .map_err(|e| PublisherError::Store(format!("{}: {e}", dir.display())))
}

/// A connection of the device's own, with `member` on it.
fn own_connection(
    mut dial: Dial,
    client: &MqttClientOptions,
    timing: Timing,
    depth: usize,
    member: Member,
) -> On {
    // Sized from the device's own options: its window of messages in
    // flight, and room for control packets (subscribe, disconnect) besides.
    let window = crate::outbox::window_for(depth);
    dial.inflight = window as u16;
    dial.connect_timeout = timing.connect;
    let connection = Connection::start(Plan {
        dial,
        server: client.server.clone(),
        capacity: window + 8,
        resume_subs: client.resume_subs.unwrap_or(false),
        timing,
    });
    let id = connection.join(member);
    On::Own(connection, id)
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
/// The connection's settings as the device's status shows them, not yet
/// connected.
fn settings_shown(client: &MqttClientOptions, qos: QoS, retain: bool) -> MqttStatus {
    MqttStatus {
        server: Some(client.server.clone()),
        qos: Some(qos as i32),
        retained: Some(retain),
        connected: false,
        ..Default::default()
    }
}

/// Sets the device's outbox to the client options' bounds and File store
/// and takes it off any connection it was on; the depth it bounds.
fn configure_outbox(
    client: &MqttClientOptions,
    device: &DeviceMqtt,
    link: &TopicContext,
    second: Option<&str>,
) -> Result<usize, PublisherError> {
    let depth = client.message_channel_depth.unwrap_or(100).max(1) as usize;
    let store = open_store(client, &device.data_dir, link, second)?;
    let max_bytes = client
        .message_channel_bytes
        .map_or(crate::outbox::DEFAULT_MAX_BYTES, |b| b.max(1) as usize);
    device.outbox.configure(depth, max_bytes, store);
    device.outbox.detach();
    Ok(depth)
}

fn last_will(
    message: &MqttMessageOptions,
    link: &TopicContext,
    status_topic: &str,
    qos: QoS,
    retain: bool,
) -> Result<Option<Message>, PublisherError> {
    use base64::Engine;
    let Some(will) = &message.will else {
        return Ok(None);
    };
    let topic = will_topic(will, message, link, status_topic)?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(&will.content)
        .map_err(|e| PublisherError::Will(e.to_string()))?;
    let qos = match will.qos {
        Some(q) => qos_of(q)?,
        None => qos,
    };
    Ok(Some(Message {
        topic,
        qos,
        retain: will.retained.unwrap_or(retain),
        payload: content,
        correlation: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{options::client_options, wire::Version};
    use devicelink_api::devicelink::ReferenceItem;

    #[test]
    fn answers_go_only_under_the_write_topic() {
        let write = "plant/fan/$write";
        let reply = |t: Option<&str>| reply_topic(write, t.map(String::from));
        assert_eq!(reply(None), "plant/fan/$write/$reply");
        assert_eq!(
            reply(Some("plant/fan/$write/client-7")),
            "plant/fan/$write/client-7"
        );
        // Another device's topic, a sibling that shares the prefix, the
        // write topic itself, wildcards: the default instead.
        for elsewhere in [
            "plant/pump/status",
            "plant/fan/$writer",
            "plant/fan/$write",
            "plant/fan/$write/",
            "plant/fan/$write/#",
        ] {
            assert_eq!(
                reply(Some(elsewhere)),
                "plant/fan/$write/$reply",
                "{elsewhere}"
            );
        }
    }

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
        assert_eq!(&will.payload[..], b"gone");
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
    fn writes_come_on_the_read_operator_topic_or_the_status_topic_plus_write() {
        let m: MqttMessageOptions = serde_json::from_value(serde_json::json!({
            "topic": "plant/:name/:operator",
            "operator": {"read": "set", "write": "status"},
        }))
        .unwrap();
        assert_eq!(
            write_topic_of(&m, &link(), "plant/fan/status"),
            "plant/fan/set"
        );
        let plain = message(serde_json::json!(null));
        assert_eq!(
            write_topic_of(&plain, &link(), "plant/ns/fan"),
            "plant/ns/fan/$write"
        );
    }

    #[test]
    fn protocol_version_picks_the_client_and_other_versions_are_refused_naming_the_field() {
        let dial = |version: i32| {
            let options: MqttOptions = serde_json::from_value(serde_json::json!({
                "client": {"server": "tcp://broker:1883", "protocolVersion": version},
                "message": {"topic": "t"},
            }))
            .unwrap();
            let no_refs = |_: &ReferenceItem| Err(String::new());
            client_options(&options, &link(), &no_refs).map(|d| d.version)
        };
        assert_eq!(dial(4).unwrap(), Version::V4);
        assert_eq!(dial(5).unwrap(), Version::V5);
        let err = dial(6).unwrap_err();
        assert!(err.to_string().contains("protocolVersion 6"), "{err}");
    }

    #[test]
    fn client_ids_of_devicelinks_own_connections_are_refused() {
        let dial = |client_id: Option<&str>| {
            let options: MqttOptions = serde_json::from_value(serde_json::json!({
                "client": {"server": "tcp://broker:1883", "clientID": client_id},
                "message": {"topic": "t"},
            }))
            .unwrap();
            let no_refs = |_: &ReferenceItem| Err(String::new());
            client_options(&options, &link(), &no_refs).map(|d| d.client_id)
        };
        assert_eq!(dial(None).unwrap(), "devicelink-u");
        assert_eq!(dial(Some("line-7-fan")).unwrap(), "line-7-fan");
        let err = dial(Some("devicelink-dummy-edge-0123456789ab")).unwrap_err();
        assert!(
            err.to_string()
                .contains("client.clientID \"devicelink-dummy-edge-0123456789ab\" must not start with devicelink-"),
            "{err}"
        );
    }

    #[test]
    fn content_that_is_not_base64_is_refused_naming_the_field() {
        let m = message(serde_json::json!({"content": "not base64!"}));
        let err = last_will(&m, &link(), "t", QoS::AtLeastOnce, true).unwrap_err();
        assert!(err.to_string().contains("will.content"), "{err}");
    }
}
