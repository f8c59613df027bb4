//! The MQTT client behind a publisher: MQTT 3.1.1 (`rumqttc`) or MQTT 5
//! (`rumqttc::v5`), chosen by `protocolVersion`, seen through one small
//! surface so the publisher, its outbox and its watchdogs are the same for
//! both.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rumqttc::{Outgoing, QoS};

use crate::message::Message;

/// Which MQTT the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocolVersion 4).
    V4,
    /// MQTT 5.
    V5,
}

/// How to reach the broker, as the device's options say; either client is
/// made from it.
pub struct Dial {
    pub version: Version,
    pub client_id: String,
    pub address: String,
    pub port: u16,
    pub transport: rumqttc::Transport,
    /// cleanSession (3.1.1) or clean start without a session kept (5).
    pub clean: bool,
    pub keep_alive: Option<Duration>,
    pub credentials: Option<(String, String)>,
    /// Extra headers on a websocket handshake.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub will: Option<Message>,
    /// Messages in flight at once.
    pub inflight: u16,
    pub connect_timeout: Duration,
    /// Received QoS 1 and 2 messages are acknowledged only when the
    /// receiver says so ([`Client::ack`]): what is not acknowledged stays
    /// the broker's to deliver again.
    pub manual_acks: bool,
}

/// Sends to the broker.
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Drives the connection; yields what happened on it.
// Boxed: the two event loops differ much in size.
pub enum Connection {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What the connection saw, for either protocol.
#[derive(Debug)]
pub enum Seen {
    Connected {
        session_present: bool,
        /// The largest packet the broker takes, if it said (MQTT 5).
        max_packet: Option<usize>,
    },
    /// A publish went out with this packet id (0 for QoS 0).
    Sent(u16),
    /// PUBACK or PUBCOMP for this packet id.
    Acked(u16),
    /// The broker acknowledged this packet id with a failure (MQTT 5's
    /// reason codes: not authorized, packet too large, quota exceeded...).
    Refused(u16, String),
    PingSent,
    PingAnswered,
    /// SUBACK: the broker has the subscriptions of a SUBSCRIBE.
    Subscribed,
    Received(Incoming),
    /// The client said goodbye.
    Disconnecting,
    Other,
}

/// A message from the broker.
#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Retained: the broker kept it and hands it over on a new subscription.
    pub retained: bool,
    /// MQTT 5: where the sender wants the answer, and what to quote.
    pub response_topic: Option<String>,
    pub correlation: Option<Vec<u8>>,
    /// With manual acknowledgements, what [`Client::ack`] takes to
    /// acknowledge it (QoS 1 and 2 only).
    pub ack: Option<Ack>,
}

/// A received message still to be acknowledged: what its
/// acknowledgement names.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    version: Version,
    pkid: u16,
    qos: QoS,
}

/// The largest packet taken from a broker. Far above any write
/// ([`crate::write::MAX_WRITE_BYTES`], refused with an answer) or device
/// message, and low enough that one message cannot take a pod's memory.
/// MQTT 5 tells the broker, which then does not send larger ones; with
/// 3.1.1 a larger one ends the connection (keep the broker's
/// max_packet_size at or below it).
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// The largest packet MQTT can frame (a remaining length of 268,435,455
/// bytes and its fixed header): what is sent is bounded by the API object
/// it comes from, and by the broker when it says its own limit (MQTT 5).
pub const MAX_OUTGOING_PACKET: usize = 268_435_455 + 5;

/// How long a MQTT 5 session outlives its connection when clean is off:
/// as long as the broker allows, as a 3.1.1 persistent session does.
const KEEP_SESSION: u32 = u32::MAX;

impl Dial {
    /// The client (with `capacity` requests queued at most) and its
    /// connection, not yet connected.
    pub fn connect(self, capacity: usize) -> (Client, Connection) {
        let mut network = rumqttc::NetworkOptions::new();
        network.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        match self.version {
            Version::V4 => {
                let mut o = rumqttc::MqttOptions::new(self.client_id, self.address, self.port);
                o.set_transport(self.transport);
                o.set_clean_session(self.clean);
                if let Some(k) = self.keep_alive {
                    o.set_keep_alive(k);
                }
                if let Some((user, password)) = self.credentials {
                    o.set_credentials(user, password);
                }
                if let Some(w) = self.will {
                    o.set_last_will(rumqttc::LastWill::new(w.topic, w.payload, w.qos, w.retain));
                }
                o.set_inflight(self.inflight);
                o.set_manual_acks(self.manual_acks);
                o.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
                if !self.headers.is_empty() {
                    let headers = self.headers;
                    o.set_request_modifier(move |request| with_headers(request, headers.clone()));
                }
                let (client, mut events) = rumqttc::AsyncClient::new(o, capacity);
                events.set_network_options(network);
                (Client::V4(client), Connection::V4(Box::new(events)))
            }
            Version::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(self.client_id, self.address, self.port);
                o.set_transport(self.transport);
                o.set_clean_start(self.clean);
                if !self.clean {
                    o.set_session_expiry_interval(Some(KEEP_SESSION));
                }
                if let Some(k) = self.keep_alive {
                    o.set_keep_alive(k);
                }
                if let Some((user, password)) = self.credentials {
                    o.set_credentials(user, password);
                }
                if let Some(w) = self.will {
                    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        w.topic,
                        w.payload,
                        qos5(w.qos),
                        w.retain,
                        None,
                    ));
                }
                o.set_outgoing_inflight_upper_limit(self.inflight);
                o.set_manual_acks(self.manual_acks);
                // Sent to the broker, which sends nothing larger.
                o.set_max_packet_size(Some(MAX_INCOMING_PACKET as u32));
                if !self.headers.is_empty() {
                    let headers = self.headers;
                    o.set_request_modifier(move |request| with_headers(request, headers.clone()));
                }
                o.set_network_options(network);
                let (client, events) = rumqttc::v5::AsyncClient::new(o, capacity);
                (Client::V5(client), Connection::V5(Box::new(events)))
            }
        }
    }
}

fn with_headers(
    mut request: http::Request<()>,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> std::future::Ready<http::Request<()>> {
    for (name, value) in headers {
        request.headers_mut().append(name, value);
    }
    std::future::ready(request)
}

fn qos5(qos: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Client {
    /// Hands a message over without waiting; false if the client's queue
    /// is full.
    pub fn try_publish(&self, m: &Message) -> bool {
        match self {
            Client::V4(c) => c
                .try_publish(m.topic.clone(), m.qos, m.retain, m.payload.clone())
                .is_ok(),
            Client::V5(c) => {
                let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    correlation_data: m.correlation.clone().map(Into::into),
                    ..Default::default()
                };
                c.try_publish_with_properties(
                    m.topic.clone(),
                    qos5(m.qos),
                    m.retain,
                    m.payload.clone(),
                    properties,
                )
                .is_ok()
            }
        }
    }

    /// Hands a request over without waiting: MQTT 5 carries where to
    /// answer and what to quote with the answer; 3.1.1 has neither, and
    /// the answer comes where the receiver answers by default.
    pub fn try_request(
        &self,
        topic: &str,
        payload: Vec<u8>,
        response_topic: Option<String>,
        correlation: Option<Vec<u8>>,
    ) -> bool {
        match self {
            Client::V4(c) => c
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .is_ok(),
            Client::V5(c) => {
                let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    response_topic,
                    correlation_data: correlation.map(Into::into),
                    ..Default::default()
                };
                c.try_publish_with_properties(
                    topic.to_string(),
                    qos5(QoS::AtLeastOnce),
                    false,
                    payload,
                    properties,
                )
                .is_ok()
            }
        }
    }

    pub fn try_subscribe(&self, topic: &str, qos: QoS) {
        let _ = match self {
            Client::V4(c) => c.try_subscribe(topic, qos).is_ok(),
            Client::V5(c) => c.try_subscribe(topic, qos5(qos)).is_ok(),
        };
    }

    /// Subscribes to several topics with one SUBSCRIBE packet.
    pub fn try_subscribe_many(&self, filters: &[(String, QoS)]) {
        if filters.is_empty() {
            return;
        }
        let _ = match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|(topic, qos)| rumqttc::SubscribeFilter::new(topic.clone(), *qos)),
                )
                .is_ok(),
            Client::V5(c) => c
                .try_subscribe_many(filters.iter().map(|(topic, qos)| {
                    rumqttc::v5::mqttbytes::v5::Filter::new(topic.clone(), qos5(*qos))
                }))
                .is_ok(),
        };
    }

    pub fn try_unsubscribe(&self, topic: &str) {
        let _ = match self {
            Client::V4(c) => c.try_unsubscribe(topic).is_ok(),
            Client::V5(c) => c.try_unsubscribe(topic).is_ok(),
        };
    }

    /// Acknowledges a received message (see [`Dial::manual_acks`]); false
    /// if the client's queue is full.
    pub fn try_ack(&self, ack: &Ack) -> bool {
        // rumqttc acknowledges a publish by its packet id and QoS alone.
        match (self, ack.version) {
            (Client::V4(c), Version::V4) => {
                let mut publish = rumqttc::Publish::new("", ack.qos, Vec::new());
                publish.pkid = ack.pkid;
                c.try_ack(&publish).is_ok()
            }
            (Client::V5(c), Version::V5) => {
                let mut publish =
                    rumqttc::v5::mqttbytes::v5::Publish::new("", qos5(ack.qos), Vec::new(), None);
                publish.pkid = ack.pkid;
                c.try_ack(&publish).is_ok()
            }
            // An ack belongs to the connection that received the message.
            _ => false,
        }
    }

    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        };
    }
}

impl Connection {
    pub async fn poll(&mut self) -> Result<Seen, String> {
        match self {
            Connection::V4(events) => {
                let event = events.poll().await.map_err(|e| e.to_string())?;
                Ok(seen_v4(event))
            }
            Connection::V5(events) => {
                let event = events.poll().await.map_err(ended_by_v5_broker)?;
                Ok(seen_v5(event))
            }
        }
    }

    /// Drops a stuck connection; the next poll connects again.
    pub fn clean(&mut self) {
        match self {
            Connection::V4(events) => events.clean(),
            Connection::V5(events) => events.clean(),
        }
    }
}

/// Why an MQTT 5 connection failed, in words for the status: a broker that
/// ends the connection says why (DISCONNECT's reason code), and a session
/// taken over (0x8E) means another client connected with the same client
/// ID, which the broker allows one connection at a time.
fn ended_by_v5_broker(e: rumqttc::v5::ConnectionError) -> String {
    use rumqttc::v5::{
        ConnectionError, StateError, mqttbytes::v5::DisconnectReasonCode::SessionTakenOver,
    };
    match e {
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            let said = reason_string.map_or(String::new(), |s| format!(" ({s})"));
            if reason_code == SessionTakenOver {
                format!(
                    "the broker ended the connection: another client connected with the same \
                     client ID (SessionTakenOver{said}); a client ID must be unique on its broker"
                )
            } else {
                format!("the broker ended the connection: {reason_code:?}{said}")
            }
        }
        e => e.to_string(),
    }
}

fn outgoing(out: Outgoing) -> Seen {
    match out {
        Outgoing::Publish(pkid) => Seen::Sent(pkid),
        Outgoing::PingReq => Seen::PingSent,
        Outgoing::Disconnect => Seen::Disconnecting,
        _ => Seen::Other,
    }
}

/// What an MQTT 3.1.1 event means to a connection.
fn seen_v4(event: rumqttc::Event) -> Seen {
    use rumqttc::{Event, Packet};
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Seen::Connected {
            session_present: ack.session_present,
            max_packet: None,
        },
        Event::Incoming(Packet::PubAck(ack)) => Seen::Acked(ack.pkid),
        Event::Incoming(Packet::PubComp(ack)) => Seen::Acked(ack.pkid),
        Event::Incoming(Packet::PingResp) => Seen::PingAnswered,
        Event::Incoming(Packet::SubAck(_)) => Seen::Subscribed,
        Event::Incoming(Packet::Publish(p)) => Seen::Received(Incoming {
            ack: (p.qos != QoS::AtMostOnce).then_some(Ack {
                version: Version::V4,
                pkid: p.pkid,
                qos: p.qos,
            }),
            topic: p.topic,
            retained: p.retain,
            payload: p.payload.to_vec(),
            response_topic: None,
            correlation: None,
        }),
        Event::Outgoing(out) => outgoing(out),
        Event::Incoming(_) => Seen::Other,
    }
}

/// What an MQTT 5 event means to a connection: refusals come as reason
/// codes in the acknowledgements.
fn seen_v5(event: rumqttc::v5::Event) -> Seen {
    use rumqttc::v5::{
        Event,
        mqttbytes::v5::{Packet, PubAckReason, PubRecReason},
    };
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Seen::Connected {
            session_present: ack.session_present,
            max_packet: ack
                .properties
                .and_then(|p| p.max_packet_size)
                .map(|n| n as usize),
        },
        Event::Incoming(Packet::PubAck(ack)) => match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Seen::Acked(ack.pkid),
            reason => Seen::Refused(ack.pkid, format!("{reason:?}")),
        },
        // QoS 2: a refusal comes in PUBREC, and ends the exchange.
        Event::Incoming(Packet::PubRec(rec))
            if !matches!(
                rec.reason,
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers
            ) =>
        {
            Seen::Refused(rec.pkid, format!("{:?}", rec.reason))
        }
        Event::Incoming(Packet::PubComp(ack)) => Seen::Acked(ack.pkid),
        Event::Incoming(Packet::PingResp(_)) => Seen::PingAnswered,
        Event::Incoming(Packet::SubAck(_)) => Seen::Subscribed,
        Event::Incoming(Packet::Publish(p)) => Seen::Received(received_v5(p)),
        Event::Outgoing(out) => outgoing(out),
        Event::Incoming(_) => Seen::Other,
    }
}

/// A message an MQTT 5 broker delivered, with its response topic and
/// correlation data.
fn received_v5(p: rumqttc::v5::mqttbytes::v5::Publish) -> Incoming {
    use rumqttc::v5::mqttbytes::QoS as V5QoS;
    let qos = match p.qos {
        V5QoS::AtMostOnce => None,
        V5QoS::AtLeastOnce => Some(QoS::AtLeastOnce),
        V5QoS::ExactlyOnce => Some(QoS::ExactlyOnce),
    };
    let ack = qos.map(|qos| Ack {
        version: Version::V5,
        pkid: p.pkid,
        qos,
    });
    let (response_topic, correlation) = match p.properties {
        Some(props) => (
            props.response_topic,
            props.correlation_data.map(|c| c.to_vec()),
        ),
        None => (None, None),
    };
    Incoming {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        retained: p.retain,
        payload: p.payload.to_vec(),
        response_topic,
        correlation,
        ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::{ConnectionError, StateError, mqttbytes::v5::DisconnectReasonCode};

    fn ended(reason_code: DisconnectReasonCode, reason_string: Option<&str>) -> String {
        ended_by_v5_broker(ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string: reason_string.map(String::from),
        }))
    }

    #[test]
    fn a_broker_that_ends_the_connection_is_quoted_and_a_takeover_explained() {
        let taken = ended(DisconnectReasonCode::SessionTakenOver, None);
        assert!(
            taken.contains("another client connected with the same client ID (SessionTakenOver)"),
            "{taken}"
        );
        assert_eq!(
            ended(DisconnectReasonCode::AdministrativeAction, Some("kicked")),
            "the broker ended the connection: AdministrativeAction (kicked)"
        );
    }
}
