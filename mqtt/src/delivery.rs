//! Whether a device's status messages reach its broker, as the device's
//! status shows it (`status.extension.mqtt.undelivered`) and, through it,
//! its DeviceConnected condition.
//!
//! Two things keep a message from the broker while the connection is up:
//! it is larger than the broker takes (MQTT 5 brokers say their limit when
//! the connection is made: such a message is not sent at all, since
//! sending it would only end the connection and send it again after the
//! reconnect), or the broker refuses it in its acknowledgement (MQTT 5
//! reason codes, e.g. NotAuthorized for a topic its ACL denies). MQTT 3.1.1
//! has neither: a broker that drops a message does not say so.

use std::sync::{
    Arc,
    atomic::{AtomicU8, AtomicUsize, Ordering},
};

use devicelink_api::property::MqttStatus;

use crate::{
    message::{Message, publish_size},
    wire,
};

/// Where a publisher reports its effective settings and connection state
/// (shown as the device's `status.extension.mqtt`); outlives publishers, as
/// a device's publisher is replaced when its options change.
pub type StatusSender = Arc<devicelink_cells::latest::Sender<Option<MqttStatus>>>;
/// Reads a device's MQTT state and waits for it to change.
pub type StatusReceiver = devicelink_cells::latest::Receiver<Option<MqttStatus>>;

fn over_limit(what: &str, limit: usize) -> String {
    format!("{what} not sent: the broker takes packets of at most {limit} bytes")
}

/// Shared by a device's publisher and its connection's driver.
#[derive(Clone)]
pub(crate) struct Delivery {
    state: StatusSender,
    /// One allocation for both, as every device has them.
    shared: Arc<Shared>,
}

struct Shared {
    /// The largest packet the broker takes, as it said when connecting.
    limit: AtomicUsize,
    /// What the latest problem was, so that only its cure clears it.
    problem: AtomicU8,
}

const NONE: u8 = 0;
/// A status too large for the broker; cured by one that fits.
const TOO_LARGE: u8 = 1;
/// A status refused by the broker; cured by one it acknowledges.
const REFUSED: u8 = 2;

impl Delivery {
    pub(crate) fn new(state: StatusSender) -> Delivery {
        Delivery {
            state,
            shared: Arc::new(Shared {
                limit: AtomicUsize::new(wire::MAX_OUTGOING_PACKET),
                problem: AtomicU8::new(NONE),
            }),
        }
    }

    /// A new connection: the broker's limit, if it said one.
    pub(crate) fn connected(&self, max_packet: Option<usize>) {
        let limit = max_packet.map_or(wire::MAX_OUTGOING_PACKET, |m| {
            m.min(wire::MAX_OUTGOING_PACKET)
        });
        self.shared.limit.store(limit, Ordering::Relaxed);
    }

    /// Whether the broker takes `m`.
    pub(crate) fn fits(&self, m: &Message) -> bool {
        publish_size(m) <= self.shared.limit.load(Ordering::Relaxed)
    }

    /// Why `m` is not sent, for the status and the log.
    pub(crate) fn too_large(&self, m: &Message) -> String {
        let size = publish_size(m);
        over_limit(&format!("a message of {size} bytes is"), self.limit())
    }

    /// Why messages that waited for the connection are dropped on it: the
    /// same words as [`Self::too_large`], so the status says one thing
    /// whichever path found the message too large.
    pub(crate) fn too_large_waiting(&self, dropped: usize) -> String {
        over_limit(&format!("{dropped} waiting message(s) are"), self.limit())
    }

    fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// A status message was too large; true if this is news (worth a log line).
    pub(crate) fn not_sent(&self, why: String) -> bool {
        self.set(TOO_LARGE, Some(why))
    }

    /// The broker refused a status message; true if this is news.
    pub(crate) fn refused(&self, reason: &str) -> bool {
        self.set(
            REFUSED,
            Some(format!("the broker refused a status message: {reason}")),
        )
    }

    /// A status message fit the broker's limit.
    pub(crate) fn fit(&self) {
        if self.shared.problem.load(Ordering::Relaxed) == TOO_LARGE {
            self.set(NONE, None);
        }
    }

    /// The broker acknowledged a status message.
    pub(crate) fn acknowledged(&self) {
        if self.shared.problem.load(Ordering::Relaxed) != NONE {
            self.set(NONE, None);
        }
    }

    fn set(&self, problem: u8, why: Option<String>) -> bool {
        self.shared.problem.store(problem, Ordering::Relaxed);
        self.state.send_if_modified(|s| match s {
            Some(s) if s.undelivered != why => {
                s.undelivered = why;
                true
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_api::property::MqttStatus;
    use rumqttc::QoS;

    fn message(bytes: usize) -> Message {
        Message {
            topic: "t".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            payload: vec![b'x'; bytes],
            correlation: None,
        }
    }

    fn delivery() -> Delivery {
        let state = Arc::new(devicelink_cells::latest::channel(Some(MqttStatus::default())).0);
        Delivery::new(state)
    }

    fn undelivered(d: &Delivery) -> Option<String> {
        d.state.borrow().as_ref().unwrap().undelivered.clone()
    }

    #[test]
    fn without_a_broker_limit_anything_mqtt_can_frame_fits() {
        let d = delivery();
        assert!(d.fits(&message(16 * 1024 * 1024)));
        d.connected(None);
        assert!(d.fits(&message(1024 * 1024)));
    }

    #[test]
    fn a_status_over_the_brokers_limit_shows_until_one_fits() {
        let d = delivery();
        d.connected(Some(1000));
        let big = message(2000);
        assert!(!d.fits(&big));
        assert!(d.not_sent(d.too_large(&big)));
        assert!(!d.not_sent(d.too_large(&big)), "the same news once");
        let why = undelivered(&d).unwrap();
        assert!(why.contains("at most 1000 bytes"), "{why}");
        assert!(d.fits(&message(100)));
        d.fit();
        assert_eq!(undelivered(&d), None);
    }

    #[test]
    fn a_refusal_shows_until_the_broker_acknowledges_a_status() {
        let d = delivery();
        assert!(d.refused("NotAuthorized"));
        // A message that fits is not yet one the broker took.
        d.fit();
        assert!(undelivered(&d).unwrap().contains("NotAuthorized"));
        d.acknowledged();
        assert_eq!(undelivered(&d), None);
    }
}
