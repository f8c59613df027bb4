//! One bridge at work: messages from its MQTT subscriptions become records,
//! and each message is acknowledged to the broker only once Kafka has its
//! record. What Kafka has not taken stays unacknowledged, so the broker
//! delivers it again after a restart or a reconnection (at least once).

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use devicelink_mqtt::wire::{Ack, Client, Dial, Seen};
use futures::{StreamExt, future::BoxFuture, stream::FuturesOrdered};
use rumqttc::QoS;
use tokio::sync::watch;

use crate::{
    devices::Directory,
    record::Recorder,
    sink::{Refused, Sink},
};

/// What a running bridge reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub source: SourceState,
    /// Records Kafka acknowledged.
    pub delivered: u64,
    /// Messages taken from MQTT whose records Kafka has not acknowledged,
    /// and when the oldest of them came.
    pub in_flight: u64,
    pub oldest_in_flight: Option<std::time::Instant>,
    /// Records Kafka refused for good (their messages were acknowledged:
    /// retrying cannot help), and the last refusal.
    pub refused: u64,
    pub last_refusal: Option<String>,
    /// Commands from Kafka answered by their adaptors, and answered by
    /// the bridge (not written, or no answer came).
    pub commands_answered: u64,
    pub commands_refused: u64,
}

/// The MQTT side's connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SourceState {
    #[default]
    Connecting,
    Connected,
    /// Why the last attempt failed.
    Unreachable(String),
}

/// How a bridge reads from its broker.
pub struct Source {
    pub dial: Dial,
    /// The subscriptions' group: every replica's are shared in it.
    pub group: String,
    /// Topic filters, as written.
    pub filters: Vec<String>,
    /// The selected DeviceLinks (none without `source.deviceLinks`): their
    /// status topics are subscribed to as well.
    pub devices: watch::Receiver<Arc<Directory>>,
}

/// Everything to subscribe to now, as written (not yet shared).
fn wanted(filters: &[String], devices: &watch::Receiver<Arc<Directory>>) -> BTreeSet<String> {
    let devices = devices.borrow();
    filters
        .iter()
        .cloned()
        .chain(devices.status_topics().map(str::to_string))
        .collect()
}

/// The subscription of `filter` shared by every replica of a bridge:
/// the broker hands each message to one of them.
pub fn shared(group: &str, filter: &str) -> String {
    format!("$share/{group}/{filter}")
}

/// A message whose record is on its way (none for a message not taken),
/// and how to acknowledge it.
type Pending = BoxFuture<'static, (Option<Result<(i32, i64), Refused>>, Option<(u64, Ack)>)>;

/// Runs until the task is aborted (the bridge changed or went away).
pub async fn run(source: Source, recorder: Recorder, sink: Sink, report: watch::Sender<Progress>) {
    // Requests the client may queue: acknowledgements and subscriptions.
    const QUEUE: usize = 4096;
    let Source {
        dial,
        group,
        filters,
        mut devices,
    } = source;
    let (client, mut connection) = dial.connect(QUEUE);
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    // When each pending message came, in the same order.
    let mut arrivals: VecDeque<Instant> = VecDeque::new();
    // Acknowledgements name packet ids, which are the connection's own:
    // a message received before a reconnection is delivered again by the
    // broker and acknowledged then, never by an id a new message may have.
    let mut connection_number = 0u64;
    // What the broker was asked for on this connection.
    let mut subscribed: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            // Deliveries complete in the order the messages came, and are
            // acknowledged in that order, as MQTT asks.
            Some((result, ack)) = pending.next(), if !pending.is_empty() => {
                arrivals.pop_front();
                settle(&report, result, &arrivals);
                if let Some((number, ack)) = ack
                    && number == connection_number
                {
                    acknowledge(&client, &ack);
                }
            }
            seen = connection.poll() => match seen {
                Ok(Seen::Connected { .. }) => {
                    connection_number += 1;
                    subscribed = wanted(&filters, &devices);
                    subscribe(&client, &group, &subscribed);
                }
                // Connected once the broker has the subscriptions: from
                // then on nothing published is missed.
                Ok(Seen::Subscribed) => {
                    report.send_if_modified(|p| replace(&mut p.source, SourceState::Connected));
                }
                Ok(Seen::Received(message)) => {
                    let ack = message.ack.map(|a| (connection_number, a));
                    let record = {
                        let directory = devices.borrow();
                        let device = directory.by_topic(&message.topic);
                        let taken = device.is_some()
                            || filters.iter().any(|f| rumqttc::matches(&message.topic, f));
                        taken.then(|| recorder.record(&message.topic, message.payload, device))
                    };
                    let delivery = match record {
                        Some(record) => Some(sink.send(record).await),
                        None => {
                            // The broker keeps a session's subscriptions
                            // across restarts: this one is left from a
                            // DeviceLink no longer selected, or a filter
                            // since removed. Not delivered; acknowledged
                            // in turn, and unsubscribed where it was a
                            // DeviceLink's topic.
                            client.try_unsubscribe(&shared(&group, &message.topic));
                            None
                        }
                    };
                    pending.push_back(Box::pin(async move {
                        let delivered = match delivery {
                            Some(delivery) => Some(delivery.await),
                            None => None,
                        };
                        (delivered, ack)
                    }));
                    arrivals.push_back(Instant::now());
                    report.send_modify(|p| waiting(p, &arrivals));
                }
                Ok(_) => {}
                Err(why) => {
                    subscribed.clear();
                    tracing::warn!(%why, "MQTT connection");
                    report.send_if_modified(|p| replace(&mut p.source, SourceState::Unreachable(why)));
                    // The next poll connects again.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            // DeviceLinks selected or let go: their status topics follow
            // (once connected; a connection subscribes to all at its start).
            Ok(()) = devices.changed(), if connection_number > 0 => {
                let now = wanted(&filters, &devices);
                let added = now.difference(&subscribed).cloned().collect();
                subscribe(&client, &group, &added);
                for gone in subscribed.difference(&now) {
                    client.try_unsubscribe(&shared(&group, gone));
                }
                subscribed = now;
            }
        }
    }
}

fn subscribe(client: &Client, group: &str, filters: &BTreeSet<String>) {
    tracing::debug!(?filters, "subscribing");
    let shared: Vec<(String, QoS)> = filters
        .iter()
        .map(|f| (shared(group, f), QoS::AtLeastOnce))
        .collect();
    client.try_subscribe_many(&shared);
}

fn settle(
    report: &watch::Sender<Progress>,
    result: Option<Result<(i32, i64), Refused>>,
    arrivals: &VecDeque<Instant>,
) {
    report.send_modify(|p| {
        waiting(p, arrivals);
        match result {
            None => {}
            Some(Ok(_)) => p.delivered += 1,
            Some(Err(refused)) => {
                tracing::warn!(%refused, "a record was refused; its message is acknowledged");
                p.refused += 1;
                p.last_refusal = Some(refused.to_string());
            }
        }
    });
}

/// The lag: what waits for Kafka, and since when.
fn waiting(progress: &mut Progress, arrivals: &VecDeque<Instant>) {
    progress.in_flight = arrivals.len() as u64;
    progress.oldest_in_flight = arrivals.front().copied();
}

/// Acknowledges. The client's queue is far longer than the messages a
/// broker sends unacknowledged; if it is full anyway, the message is
/// delivered again on the next connection (a duplicate, not a loss). Not
/// waiting for room: this task is also the one that empties the queue.
fn acknowledge(client: &Client, ack: &Ack) {
    if !client.try_ack(ack) {
        tracing::warn!("the MQTT client's queue is full; a message will come again");
    }
}

fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    let changed = *slot != value;
    *slot = value;
    changed
}
