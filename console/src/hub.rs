//! Hands every device message to the WebSocket clients that want it.
//!
//! Each client has its own bounded queue: a client that reads slowly loses
//! its oldest messages (and is told how many) instead of slowing the broker
//! connection or the other clients, and its memory stays bounded.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::Serialize;
use tokio::sync::Notify;

/// One message from a device topic, as the stream sends it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamMessage {
    pub topic: String,
    /// The payload as text (UTF-8), or base64 when it is not text.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// When the console received it, RFC 3339.
    pub timestamp: String,
    /// The DeviceLink whose topic it came on.
    pub namespace: String,
    pub name: String,
    /// The payload parsed, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The broker kept it (the device's last status, handed over on
    /// subscribing).
    pub retained: bool,
}

impl StreamMessage {
    pub fn new(
        topic: String,
        payload: &[u8],
        retained: bool,
        (namespace, name): (String, String),
    ) -> StreamMessage {
        use base64::Engine;
        let (data, encoding) = match std::str::from_utf8(payload) {
            Ok(text) => (text.to_string(), None),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(payload),
                Some("base64"),
            ),
        };
        StreamMessage {
            value: serde_json::from_slice(payload).ok(),
            topic,
            data,
            encoding,
            timestamp: k8s_openapi::jiff::Timestamp::now().to_string(),
            namespace,
            name,
            retained,
        }
    }
}

/// Which messages a client asked for.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    /// Only DeviceLinks of this namespace; all when None.
    pub namespace: Option<String>,
    /// Only these DeviceLinks (of `namespace`); all when empty.
    pub names: Vec<String>,
    /// Only topics matching this MQTT filter (`+`, `#`).
    pub topic: Option<String>,
}

impl Interest {
    pub fn wants(&self, m: &StreamMessage) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == m.namespace)
            && (self.names.is_empty() || self.names.contains(&m.name))
            && self
                .topic
                .as_ref()
                .is_none_or(|filter| rumqttc::matches(&m.topic, filter))
    }
}

/// What one client has not read yet.
struct Queue {
    interest: Interest,
    capacity: usize,
    messages: Mutex<VecDeque<Arc<StreamMessage>>>,
    /// Dropped since the client last read.
    dropped: AtomicU64,
    ready: Notify,
}

/// All connected clients.
#[derive(Default)]
pub struct Hub {
    clients: Mutex<HashMap<u64, Arc<Queue>>>,
    next_id: AtomicU64,
    /// Dropped for slow clients, all told (a metric).
    pub dropped_total: AtomicU64,
}

/// A client's end: its messages in order, and how many it missed.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    queue: Arc<Queue>,
}

impl Hub {
    pub fn subscribe(self: &Arc<Self>, interest: Interest, capacity: usize) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue {
            interest,
            capacity: capacity.max(1),
            messages: Mutex::default(),
            dropped: AtomicU64::new(0),
            ready: Notify::new(),
        });
        self.clients.lock().unwrap().insert(id, queue.clone());
        Subscription {
            hub: self.clone(),
            id,
            queue,
        }
    }

    /// Queues `message` for every client that wants it.
    pub fn publish(&self, message: Arc<StreamMessage>) {
        let clients: Vec<Arc<Queue>> = self.clients.lock().unwrap().values().cloned().collect();
        for queue in clients {
            if !queue.interest.wants(&message) {
                continue;
            }
            let mut messages = queue.messages.lock().unwrap();
            if messages.len() >= queue.capacity {
                messages.pop_front();
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
            }
            messages.push_back(message.clone());
            drop(messages);
            queue.ready.notify_one();
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap().len()
    }
}

impl Subscription {
    /// The next message, and how many were dropped before it since the
    /// last one this client read.
    pub async fn next(&self) -> (Arc<StreamMessage>, u64) {
        loop {
            {
                // Under the lock that drops are made under: the count
                // returned is of messages older than this one.
                let mut messages = self.queue.messages.lock().unwrap();
                if let Some(message) = messages.pop_front() {
                    return (message, self.queue.dropped.swap(0, Ordering::Relaxed));
                }
            }
            self.queue.ready.notified().await;
        }
    }

    /// Queues a device's last message for this client alone (when it
    /// connects), counted against its bound like any other; not if a newer
    /// one of that device came meanwhile.
    pub fn offer(&self, message: Arc<StreamMessage>) {
        if self.queue.interest.wants(&message) {
            let mut messages = self.queue.messages.lock().unwrap();
            if messages
                .iter()
                .any(|m| m.namespace == message.namespace && m.name == message.name)
            {
                return;
            }
            if messages.len() >= self.queue.capacity {
                messages.pop_front();
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
            messages.push_back(message);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.clients.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(namespace: &str, name: &str, n: u32) -> Arc<StreamMessage> {
        Arc::new(StreamMessage::new(
            format!("plant/{namespace}/{name}"),
            format!("{{\"n\":{n}}}").as_bytes(),
            false,
            (namespace.to_string(), name.to_string()),
        ))
    }

    #[tokio::test]
    async fn a_slow_client_loses_its_oldest_and_is_told_while_a_fast_one_gets_all() {
        let hub = Arc::new(Hub::default());
        let fast = hub.subscribe(Interest::default(), 4);
        let slow = hub.subscribe(Interest::default(), 4);
        for n in 0..10 {
            hub.publish(message("plant", "fan", n));
            let (got, dropped) = fast.next().await;
            assert_eq!(
                (got.value.as_ref().unwrap()["n"].as_u64(), dropped),
                (Some(n.into()), 0)
            );
        }
        let (first, dropped) = slow.next().await;
        assert_eq!(
            first.value.as_ref().unwrap()["n"],
            6,
            "the newest four are kept"
        );
        assert_eq!(dropped, 6);
        assert_eq!(slow.next().await.1, 0, "told once");
        assert_eq!(hub.dropped_total.load(Ordering::Relaxed), 6);
        drop(slow);
        assert_eq!(hub.clients(), 1);
    }

    #[tokio::test]
    async fn a_client_gets_only_what_it_asked_for() {
        let hub = Arc::new(Hub::default());
        let one = hub.subscribe(
            Interest {
                namespace: Some("plant".into()),
                names: vec!["fan".into()],
                topic: None,
            },
            8,
        );
        let by_topic = hub.subscribe(
            Interest {
                topic: Some("plant/+/pump".into()),
                ..Interest::default()
            },
            8,
        );
        hub.publish(message("shed", "fan", 1));
        hub.publish(message("plant", "pump", 2));
        hub.publish(message("plant", "fan", 3));
        assert_eq!(one.next().await.0.value.as_ref().unwrap()["n"], 3);
        assert_eq!(by_topic.next().await.0.value.as_ref().unwrap()["n"], 2);
    }

    #[test]
    fn a_payload_that_is_not_text_is_sent_as_base64() {
        let m = StreamMessage::new("t".into(), &[0xff, 0x00], true, ("ns".into(), "n".into()));
        assert_eq!((m.data.as_str(), m.encoding), ("/wA=", Some("base64")));
        assert!(m.value.is_none());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["retained"], true);
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
