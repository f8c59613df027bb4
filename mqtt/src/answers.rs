//! For writers outside the adaptors (the console, the Kafka bridge): where
//! a device's answer to their write comes, and handing each answer to the
//! write that waits for it.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rumqttc::QoS;
use tokio::sync::oneshot;

use crate::wire::{Client, Incoming, Version};

/// Writes to devices over one connection, each waiting for its answer.
pub struct Requests {
    version: Version,
    /// The tail of this writer's answer topics (MQTT 5): its client ID.
    reply_to: String,
    answers: Answers,
    /// Answer topics subscribed to, to subscribe again on every connection.
    reply_topics: Mutex<HashSet<String>>,
}

/// What became of a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// The answer's payload.
    Answered(Vec<u8>),
    /// The client's queue of requests was full: nothing was sent.
    NotSent,
    /// Sent, and no answer came on this topic in time.
    NoAnswer(String),
}

impl Requests {
    /// Writes over a connection of `version` whose client ID is `reply_to`.
    pub fn new(version: Version, reply_to: String) -> Requests {
        Requests {
            version,
            reply_to,
            answers: Answers::default(),
            reply_topics: Mutex::default(),
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Publishes `payload` on `write_topic` over `client` and waits up to
    /// `within` for the adaptor's answer ([`answer_route`] says where it
    /// comes). The answer topic is subscribed to first, on the same
    /// connection, so the broker has the subscription when the answer
    /// comes.
    pub async fn request(
        &self,
        client: &Client,
        write_topic: &str,
        payload: Vec<u8>,
        within: Duration,
    ) -> Requested {
        let (reply_topic, correlation) = answer_route(write_topic, self.version, &self.reply_to);
        let answered = self.answers.expect(&reply_topic, correlation.clone());
        if self
            .reply_topics
            .lock()
            .unwrap()
            .insert(reply_topic.clone())
        {
            client.try_subscribe(&reply_topic, QoS::AtLeastOnce);
        }
        let response_topic = correlation.is_some().then(|| reply_topic.clone());
        let sent = client.try_request(write_topic, payload, response_topic, correlation);
        let answer = match sent {
            true => tokio::time::timeout(within, answered)
                .await
                .ok()
                .and_then(Result::ok),
            false => None,
        };
        self.answers.forget_abandoned(&reply_topic);
        match (sent, answer) {
            (false, _) => Requested::NotSent,
            (true, Some(answer)) => Requested::Answered(answer),
            (true, None) => Requested::NoAnswer(reply_topic),
        }
    }

    /// Hands `m` to the write waiting for it; false if it is no answer.
    pub fn hand_over(&self, m: &Incoming) -> bool {
        self.answers.hand_over(m)
    }

    /// Subscribes `client` again to every answer topic (a new connection
    /// with a clean session has none).
    pub fn resubscribe(&self, client: &Client) {
        let topics: Vec<(String, QoS)> = self
            .reply_topics
            .lock()
            .unwrap()
            .iter()
            .map(|t| (t.clone(), QoS::AtLeastOnce))
            .collect();
        client.try_subscribe_many(&topics);
    }
}

/// Where a writer's answers come and what tells them apart: with MQTT 5 a
/// topic of the writer's own under the write topic and correlation data
/// the answer quotes; with 3.1.1 the write topic's default answer topic
/// and nothing (so one write at a time per device).
pub fn answer_route(
    write_topic: &str,
    version: Version,
    writer: &str,
) -> (String, Option<Vec<u8>>) {
    match version {
        Version::V5 => (
            format!("{write_topic}/$reply/{writer}"),
            Some(next_correlation()),
        ),
        Version::V4 => (format!("{write_topic}/$reply"), None),
    }
}

/// Correlation data no other write of this process has.
pub fn next_correlation() -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let started = *STARTED;
    format!("{started:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes()
}

static STARTED: std::sync::LazyLock<u128> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
});

/// Writes waiting for their answer, by the topic the answer comes on.
#[derive(Default)]
pub struct Answers {
    waiting: Mutex<HashMap<String, Vec<Waiter>>>,
}

struct Waiter {
    /// What the answer quotes (MQTT 5); None takes the next answer.
    correlation: Option<Vec<u8>>,
    answer: oneshot::Sender<Vec<u8>>,
}

impl Answers {
    /// Waits for the answer on `topic` quoting `correlation` (the next one
    /// there without it). Call before publishing the write.
    pub fn expect(&self, topic: &str, correlation: Option<Vec<u8>>) -> oneshot::Receiver<Vec<u8>> {
        let (answer, answered) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap()
            .entry(topic.to_string())
            .or_default()
            .push(Waiter {
                correlation,
                answer,
            });
        answered
    }

    /// Hands `m` to the write waiting for it; false if `m` did not come on
    /// a topic answers are awaited on.
    pub fn hand_over(&self, m: &Incoming) -> bool {
        let mut waiting = self.waiting.lock().unwrap();
        let Some(waiters) = waiting.get_mut(&m.topic) else {
            return false;
        };
        if let Some(i) = waiters
            .iter()
            .position(|w| w.correlation.is_none() || w.correlation == m.correlation)
        {
            let _ = waiters.remove(i).answer.send(m.payload.clone());
        }
        true
    }

    /// Forgets the writes on `topic` that stopped waiting (timed out).
    pub fn forget_abandoned(&self, topic: &str) {
        if let Some(waiters) = self.waiting.lock().unwrap().get_mut(topic) {
            waiters.retain(|w| !w.answer.is_closed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(topic: &str, correlation: Option<&[u8]>, payload: &[u8]) -> Incoming {
        Incoming {
            topic: topic.into(),
            payload: payload.to_vec(),
            retained: false,
            response_topic: None,
            correlation: correlation.map(<[u8]>::to_vec),
            ack: None,
        }
    }

    #[test]
    fn each_answer_goes_to_the_write_it_quotes() {
        let answers = Answers::default();
        let mut first = answers.expect("t/$reply/w", Some(b"1".to_vec()));
        let mut second = answers.expect("t/$reply/w", Some(b"2".to_vec()));
        assert!(answers.hand_over(&incoming("t/$reply/w", Some(b"2"), b"two")));
        assert!(answers.hand_over(&incoming("t/$reply/w", Some(b"1"), b"one")));
        assert_eq!(first.try_recv().unwrap(), b"one");
        assert_eq!(second.try_recv().unwrap(), b"two");
        assert!(!answers.hand_over(&incoming("t/status", None, b"{}")));
    }

    #[test]
    fn without_correlation_answers_go_in_turn_and_routes_follow_the_version() {
        let answers = Answers::default();
        let mut first = answers.expect("t/$reply", None);
        answers.hand_over(&incoming("t/$reply", None, b"a"));
        assert_eq!(first.try_recv().unwrap(), b"a");
        let (topic, correlation) = answer_route("t", Version::V4, "me");
        assert_eq!((topic.as_str(), correlation), ("t/$reply", None));
        let (topic, correlation) = answer_route("t", Version::V5, "me");
        assert_eq!(topic, "t/$reply/me");
        assert_ne!(correlation, answer_route("t", Version::V5, "me").1);
    }
}
