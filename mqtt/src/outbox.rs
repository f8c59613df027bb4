//! A device's outgoing messages, from the moment the device reports until the
//! broker acknowledges them.
//!
//! Why our own buffer in front of the MQTT client: the client forgets what
//! it had in flight when it reconnects with a clean session, and its request
//! channel refuses the newest message when full, while the API promises that
//! up to `messageChannelDepth` messages survive an outage and that the oldest
//! go first. So messages wait here, in order, and are handed to the client
//! only while it is connected, at most `window` at a time; each stays until
//! its acknowledgement (PUBACK for QoS 1, PUBCOMP for QoS 2, the write for
//! QoS 0). After a reconnect without a session, everything not acknowledged
//! is handed over again (at least once, in order). With the File store every
//! message is also on disk until acknowledged.
//!
//! The buffer is bounded by count (`messageChannelDepth`) and by bytes
//! (`messageChannelBytes`): beyond either the oldest messages go, and the
//! status says so (`buffer`) until the buffer has drained.
//!
//! The client reports packet ids only after it has sent a message; messages
//! go out in the order they were handed over, so the n-th unassigned
//! message takes the n-th id reported.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use rumqttc::QoS;
use tokio::sync::Notify;
use tracing::{debug, warn};

pub use crate::message::Message;
use crate::{
    budget::{BufferBudget, Share},
    delivery::StatusSender,
    metrics::MqttMetrics,
    store::{FileStore, Saved},
};

/// `messageChannelBytes` unless the options say otherwise.
pub const DEFAULT_MAX_BYTES: usize = 8 << 20;

/// Hands a message to the connected client without waiting; false if it
/// cannot take it now.
pub type Handoff = Box<dyn Fn(&Message) -> bool + Send + Sync>;

/// Buffers one device's messages; outlives the device's connections (a
/// rotated credential or a new server keeps what is waiting).
pub struct Outbox {
    inner: Mutex<Inner>,
    drained: Notify,
    metrics: MqttMetrics,
    notice: Arc<Notice>,
}

/// What the status says about the buffer, and where it says it.
#[derive(Default)]
struct Notice {
    state: Mutex<Option<StatusSender>>,
    /// Which bound dropped messages since the buffer last drained.
    over: Mutex<Option<String>>,
    /// Why the File store's last save failed, until one works again.
    store_error: Mutex<Option<String>>,
}

impl Notice {
    /// Shows the current notice, if it changed.
    fn refresh(&self) {
        let buffer = notice_text(
            self.over.lock().unwrap().as_deref(),
            self.store_error.lock().unwrap().as_deref(),
        );
        if let Some(state) = self.state.lock().unwrap().as_ref() {
            state.send_if_modified(|s| match s {
                Some(s) if s.buffer != buffer => {
                    s.buffer = buffer;
                    true
                }
                _ => false,
            });
        }
    }
}

struct Entry {
    seq: u64,
    message: Message,
    /// Packet id the client gave it once sent (QoS 1 and 2).
    pkid: Option<u16>,
    queued: Instant,
    /// When it was last handed to the client or sent by it.
    since: Instant,
    /// Given to the File store; control messages such as clearing a
    /// retained will never are.
    stored: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.bytes_metric.dec_by(self.bytes as i64);
        if let Some(budget) = self.joined.take() {
            budget.leave();
        }
    }
}

/// Which bound a buffer reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Depth(usize),
    Bytes(usize),
    Share(Share),
}

/// What a message counts against `messageChannelBytes`.
fn size(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

struct Inner {
    /// Oldest first; `entries[..handed]` are with the client.
    entries: VecDeque<Entry>,
    handed: usize,
    /// Handed-over messages dropped before the client reported their id;
    /// their ids are still to come and belong to nobody.
    orphan_ids: usize,
    depth: usize,
    window: usize,
    /// Bytes held (topics and payloads) and the most allowed.
    bytes: usize,
    max_bytes: usize,
    /// All buffers' bytes, for the metric (shared by the adaptor's).
    bytes_metric: prometheus_client::metrics::gauge::Gauge,
    /// The adaptor's budget, which this buffer may use a share of.
    budget: Option<Arc<BufferBudget>>,
    /// The budget this buffer counts in, once configured.
    joined: Option<Arc<BufferBudget>>,
    /// Which bound made the buffer drop messages since it last drained.
    over: Option<Bound>,
    store: Option<FileStore>,
    next_seq: u64,
    /// The connected client; bumped `generation` on every new connection
    /// so a finished connection's late reports are ignored.
    handoff: Option<Handoff>,
    generation: u64,
}

impl Outbox {
    pub fn new(depth: usize, metrics: MqttMetrics) -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                handed: 0,
                orphan_ids: 0,
                depth: depth.max(1),
                window: window_for(depth),
                bytes: 0,
                max_bytes: DEFAULT_MAX_BYTES,
                bytes_metric: metrics.buffered_bytes.clone(),
                budget: None,
                joined: None,
                over: None,
                store: None,
                next_seq: 1,
                handoff: None,
                generation: 0,
            }),
            drained: Notify::new(),
            metrics,
            notice: Arc::default(),
        }
    }

    /// Takes a share of the adaptor's `budget` once configured (an MQTT
    /// extension uses it).
    pub fn share_budget(&self, budget: Arc<BufferBudget>) {
        self.inner.lock().unwrap().budget = Some(budget);
    }

    /// Where the buffer's state is shown (`buffer` in the MQTT status).
    pub fn report_to(&self, state: StatusSender) {
        *self.notice.state.lock().unwrap() = Some(state);
    }

    /// Told how each save to the File store went: a failure is counted and
    /// shown until a save works again (the message stays in memory).
    fn saved(&self) -> Saved {
        let notice = self.notice.clone();
        let metrics = self.metrics.clone();
        Arc::new(move |result: std::io::Result<()>| {
            let mut error = notice.store_error.lock().unwrap();
            let now = match result {
                Ok(()) => None,
                Err(e) => {
                    metrics.failed.inc();
                    if error.is_none() {
                        warn!(error = %e, "MQTT message not written to the File store; kept in memory only");
                    }
                    Some(e.to_string())
                }
            };
            if *error != now {
                *error = now;
                drop(error);
                notice.refresh();
            }
        })
    }

    /// Shows the buffer's state in the status, if it changed.
    fn show(&self, inner: &Inner) {
        let over = inner.over_text();
        let mut shown = self.notice.over.lock().unwrap();
        if *shown != over {
            *shown = over;
            drop(shown);
            self.notice.refresh();
        }
    }

    /// Shows the buffer's state again (the status was replaced).
    pub fn refresh_notice(&self) {
        self.notice.refresh();
    }

    /// Applies `messageChannelDepth` and the store. Switching to a File
    /// store loads what an earlier run left there (it goes first) and
    /// writes what is waiting in memory; switching away removes the files.
    pub fn configure(&self, depth: usize, max_bytes: usize, store: Option<FileStore>) {
        let mut inner = self.inner.lock().unwrap();
        if inner.joined.is_none()
            && let Some(budget) = inner.budget.clone()
        {
            budget.join();
            inner.joined = Some(budget);
        }
        inner.depth = depth.max(1);
        inner.max_bytes = max_bytes.max(1);
        inner.window = window_for(depth);
        if inner.store != store {
            if let Some(old) = inner.store.take() {
                old.destroy();
            }
            if let Some(new) = &store {
                let loaded = new.load().unwrap_or_else(|e| {
                    warn!(dir = %new.dir().display(), error = %e, "MQTT store unreadable; starting empty");
                    Vec::new()
                });
                if !loaded.is_empty() {
                    debug!(dir = %new.dir().display(), messages = loaded.len(), "resuming stored MQTT messages");
                }
                inner.next_seq = inner
                    .next_seq
                    .max(loaded.last().map_or(0, |(seq, _)| seq + 1));
                for entry in inner.entries.iter_mut() {
                    entry.stored = false;
                }
                let loaded_bytes = loaded.iter().map(|(_, m)| size(m)).sum::<usize>();
                inner.hold(loaded_bytes);
                let restored: Vec<Entry> = loaded
                    .into_iter()
                    .map(|(seq, message)| Entry {
                        seq,
                        message,
                        pkid: None,
                        queued: Instant::now(),
                        since: Instant::now(),
                        stored: true,
                    })
                    .collect();
                self.metrics.buffered.inc_by(restored.len() as i64);
                // Restored messages are older than any in memory; they are
                // not handed over yet, so they go right after the handed.
                let at = inner.handed;
                for (i, entry) in restored.into_iter().enumerate() {
                    inner.entries.insert(at + i, entry);
                }
                // What was in memory (control messages aside) is written
                // now, numbered after the restored ones.
                for i in 0..inner.entries.len() {
                    if inner.entries[i].seq != 0 && !inner.entries[i].stored {
                        let seq = inner.next_seq;
                        inner.next_seq += 1;
                        inner.entries[i].seq = seq;
                        new.save(seq, &inner.entries[i].message, self.saved());
                        inner.entries[i].stored = true;
                    }
                }
            }
            inner.store = store;
        }
        inner.trim(&self.metrics);
        inner.feed();
        self.show(&inner);
    }

    /// Queues a status message; drops the oldest when full.
    pub fn push(&self, message: Message) {
        let mut inner = self.inner.lock().unwrap();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let stored = match &inner.store {
            Some(store) => {
                store.save(seq, &message, self.saved());
                true
            }
            None => false,
        };
        inner.hold(size(&message));
        inner.entries.push_back(Entry {
            seq,
            message,
            pkid: None,
            queued: Instant::now(),
            since: Instant::now(),
            stored,
        });
        self.metrics.buffered.inc();
        inner.trim(&self.metrics);
        inner.feed();
        self.show(&inner);
    }

    /// Queues a control message (kept in memory only) ahead of everything
    /// not yet handed over.
    pub fn push_next(&self, message: Message) {
        let mut inner = self.inner.lock().unwrap();
        let at = inner.handed;
        inner.hold(size(&message));
        inner.entries.insert(
            at,
            Entry {
                seq: 0,
                message,
                pkid: None,
                queued: Instant::now(),
                since: Instant::now(),
                stored: false,
            },
        );
        self.metrics.buffered.inc();
        inner.feed();
    }

    /// A connection was made; hand messages to it. Without a session on the
    /// broker (or on a new client) nothing handed before is still in
    /// flight, so everything not acknowledged goes again. Returns the
    /// generation for the connection's later reports.
    /// Messages larger than `max_packet` (the broker's limit, as a
    /// PUBLISH packet) are dropped and counted as failed: sending one would
    /// only end the connection. Returns the generation for the
    /// connection's later reports, and how many were dropped.
    pub fn connected(
        &self,
        handoff: Handoff,
        resumed_session: bool,
        max_packet: usize,
    ) -> (u64, usize) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        if !resumed_session {
            inner.forget_handed();
        }
        let dropped = inner.drop_larger_than(max_packet, &self.metrics);
        inner.handoff = Some(handoff);
        inner.feed();
        (inner.generation, dropped)
    }

    /// The connection was lost: keep everything, hand nothing over until the
    /// next [`Outbox::connected`].
    pub fn disconnected(&self, generation: u64) {
        let mut inner = self.inner.lock().unwrap();
        if inner.generation == generation {
            inner.handoff = None;
        }
    }

    /// A new client takes over; nothing handed to the old one counts.
    pub fn detach(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.handoff = None;
        inner.forget_handed();
    }

    /// The client sent a publish with packet id `pkid` (0 for QoS 0).
    pub fn sent(&self, generation: u64, pkid: u16) {
        let mut inner = self.inner.lock().unwrap();
        if inner.generation != generation {
            return;
        }
        // A resend of a message still in flight from before a reconnect.
        if pkid != 0
            && inner
                .entries
                .iter()
                .take(inner.handed)
                .any(|e| e.pkid == Some(pkid))
        {
            return;
        }
        if inner.orphan_ids > 0 {
            inner.orphan_ids -= 1;
            return;
        }
        let handed = inner.handed;
        let Some(i) = inner
            .entries
            .iter()
            .take(handed)
            .position(|e| e.pkid.is_none())
        else {
            return; // not one of ours
        };
        if inner.entries[i].message.qos == QoS::AtMostOnce {
            inner.complete(i, true, &self.metrics);
            self.drained_maybe(&mut inner);
            inner.feed();
        } else {
            inner.entries[i].pkid = Some(pkid);
            inner.entries[i].since = Instant::now();
        }
    }

    /// The broker acknowledged packet `pkid` (PUBACK or PUBCOMP); the
    /// topic of the message it was, if one of ours.
    pub fn acknowledged(&self, generation: u64, pkid: u16) -> Option<String> {
        self.finish(generation, pkid, true)
    }

    /// The broker refused packet `pkid` in its acknowledgement (MQTT 5): it
    /// is done, not sent again (it would be refused again), and counted as
    /// failed. The topic of the message it was, if one of ours.
    pub fn refused(&self, generation: u64, pkid: u16) -> Option<String> {
        self.finish(generation, pkid, false)
    }

    fn finish(&self, generation: u64, pkid: u16, delivered: bool) -> Option<String> {
        let mut inner = self.inner.lock().unwrap();
        if inner.generation != generation {
            return None;
        }
        let handed = inner.handed;
        let topic = inner
            .entries
            .iter()
            .take(handed)
            .position(|e| e.pkid == Some(pkid))
            .map(|i| {
                let topic = inner.entries[i].message.topic.clone();
                if !delivered {
                    self.metrics.failed.inc();
                }
                inner.complete(i, delivered, &self.metrics);
                topic
            });
        self.drained_maybe(&mut inner);
        inner.feed();
        topic
    }

    /// Hands over what waits, if the client has room now (its connection
    /// says when room was made).
    pub(crate) fn resume(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.feed();
    }

    /// Drops every message not yet handed over (their device is gone).
    pub fn discard_waiting(&self) {
        let mut inner = self.inner.lock().unwrap();
        let at = inner.handed;
        let gone: Vec<Entry> = inner.entries.drain(at..).collect();
        inner.release(gone.iter().map(|e| size(&e.message)).sum::<usize>());
        self.metrics.buffered.dec_by(gone.len() as i64);
        if let Some(store) = &inner.store {
            for entry in gone.iter().filter(|e| e.stored) {
                store.remove(entry.seq);
            }
        }
        self.drained_maybe(&mut inner);
    }

    /// Forgets everything, on disk too (the device is gone).
    pub fn destroy(&self) {
        let mut inner = self.inner.lock().unwrap();
        self.metrics.buffered.dec_by(inner.entries.len() as i64);
        inner.entries.clear();
        let held = inner.bytes;
        inner.release(held);
        if let Some(budget) = inner.joined.take() {
            budget.leave();
        }
        inner.handed = 0;
        inner.handoff = None;
        if let Some(store) = inner.store.take() {
            store.destroy();
        }
    }

    /// Waits until nothing is left to send or acknowledge.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    pub fn metrics(&self) -> &MqttMetrics {
        &self.metrics
    }

    /// When the oldest message with the client will have waited too long:
    /// `write` to be sent, `wait` to be acknowledged (zero: no limit).
    pub fn stuck_after(
        &self,
        write: std::time::Duration,
        wait: std::time::Duration,
    ) -> Option<(tokio::time::Instant, String)> {
        if write.is_zero() && wait.is_zero() {
            return None;
        }
        let inner = self.inner.lock().unwrap();
        inner
            .entries
            .iter()
            .take(inner.handed)
            .filter_map(|e| match e.pkid {
                None if !write.is_zero() => Some((
                    e.since + write,
                    "a message was not sent within writeTimeout",
                )),
                Some(_) if !wait.is_zero() => Some((
                    e.since + wait,
                    "a message was not acknowledged within waitTimeout",
                )),
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
            .map(|(at, why)| (at.into(), why.to_string()))
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn drained_maybe(&self, inner: &mut Inner) {
        if inner.entries.is_empty() {
            // A device keeps its buffer for as long as it runs, so an empty
            // one keeps no room: a device publishes now and then and the
            // broker acknowledges within milliseconds, so of thousands of
            // devices few hold a message at once, while room kept in each
            // would be 512 bytes a device (four entries, the least a queue
            // grows by) and a backlog's (an outage, a slow start) far more.
            inner.entries = VecDeque::new();
            self.drained.notify_waiters();
            if inner.over.take().is_some() {
                self.show(inner);
            }
        }
    }
}

/// The status's `buffer`: what is being lost, if anything.
fn notice_text(over: Option<&str>, store_error: Option<&str>) -> Option<String> {
    let store = store_error.map(|e| {
        format!("the File store cannot be written ({e}): messages are kept in memory only")
    });
    match (over, store) {
        (Some(o), Some(s)) => Some(format!("{o}; {s}")),
        (Some(o), None) => Some(o.to_string()),
        (None, s) => s,
    }
}

impl Inner {
    /// Hands waiting messages to the client while it is connected and has
    /// room in the window.
    fn feed(&mut self) {
        let Some(handoff) = &self.handoff else {
            return;
        };
        while self.handed < self.window.min(self.entries.len()) {
            // Not taken now (the client's queue is full, or the connection
            // just went down): it waits, and goes when there is room.
            if !handoff(&self.entries[self.handed].message) {
                break;
            }
            self.entries[self.handed].since = Instant::now();
            self.handed += 1;
        }
    }

    /// Keeps at most `depth` messages and `max_bytes`, dropping the oldest.
    fn trim(&mut self, metrics: &MqttMetrics) {
        let share = self.joined.as_ref().and_then(|b| b.share());
        let (max_bytes, bytes_bound) = match share {
            Some(share) if share.bytes < self.max_bytes => (share.bytes, Bound::Share(share)),
            _ => (self.max_bytes, Bound::Bytes(self.max_bytes)),
        };
        loop {
            let over = if self.entries.len() > self.depth {
                Bound::Depth(self.depth)
            } else if self.bytes > max_bytes {
                bytes_bound
            } else {
                break;
            };
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.over = Some(over);
            self.release(size(&oldest.message));
            if self.handed > 0 {
                self.handed -= 1;
                if oldest.pkid.is_none() && self.handoff.is_some() {
                    self.orphan_ids += 1;
                }
            }
            if oldest.stored
                && let Some(store) = &self.store
            {
                store.remove(oldest.seq);
            }
            metrics.buffered.dec();
            metrics.dropped.inc();
        }
    }

    /// Drops the messages not with the client that are larger than
    /// `max_packet`; how many.
    fn drop_larger_than(&mut self, max_packet: usize, metrics: &MqttMetrics) -> usize {
        let before = self.entries.len();
        let handed = self.handed;
        let mut i = handed;
        while i < self.entries.len() {
            if crate::message::publish_size(&self.entries[i].message) > max_packet {
                let entry = self.entries.remove(i).expect("within the entries");
                self.release(size(&entry.message));
                if entry.stored
                    && let Some(store) = &self.store
                {
                    store.remove(entry.seq);
                }
                metrics.buffered.dec();
                metrics.failed.inc();
            } else {
                i += 1;
            }
        }
        before - self.entries.len()
    }

    /// Message `i` is done: it reached the broker (`delivered`), or the
    /// broker refused it.
    fn complete(&mut self, i: usize, delivered: bool, metrics: &MqttMetrics) {
        let Some(entry) = self.entries.remove(i) else {
            return;
        };
        self.release(size(&entry.message));
        self.handed -= 1;
        if entry.stored
            && let Some(store) = &self.store
        {
            store.remove(entry.seq);
        }
        metrics.buffered.dec();
        if entry.seq != 0 && delivered {
            metrics.published.inc();
            metrics
                .publish_latency
                .observe(entry.queued.elapsed().as_secs_f64());
        }
    }

    /// What the status says while the buffer drops messages.
    fn over_text(&self) -> Option<String> {
        let bound = self.over?;
        let why = match bound {
            Bound::Depth(depth) => format!("over messageChannelDepth ({depth} messages)"),
            Bound::Bytes(bytes) => format!("over messageChannelBytes ({bytes} bytes)"),
            Bound::Share(share) => format!(
                "over this device's share of the adaptor's MQTT buffer budget ({} bytes: {} bytes among {} devices), which caps messageChannelBytes ({} bytes)",
                share.bytes, share.budget, share.devices, self.max_bytes
            ),
        };
        Some(format!(
            "{why}: the oldest messages were dropped and more will be until the broker takes them"
        ))
    }

    fn hold(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.bytes_metric.inc_by(bytes as i64);
    }

    fn release(&mut self, bytes: usize) {
        self.bytes -= bytes;
        self.bytes_metric.dec_by(bytes as i64);
    }

    fn forget_handed(&mut self) {
        for entry in self.entries.iter_mut().take(self.handed) {
            entry.pkid = None;
        }
        self.handed = 0;
        self.orphan_ids = 0;
    }
}

/// Messages in flight at once: the client's window, never more than the
/// buffer holds.
pub(crate) fn window_for(depth: usize) -> usize {
    depth.clamp(1, 100)
}

/// Shared by a device's publishers over time.
pub type SharedOutbox = Arc<Outbox>;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32, qos: QoS) -> Message {
        Message {
            topic: "t".into(),
            qos,
            retain: true,
            payload: n.to_string().into_bytes(),
            correlation: None,
        }
    }

    /// A client that records what it was handed.
    fn recording() -> (Handoff, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let handoff: Handoff = Box::new(move |m: &Message| {
            s.lock()
                .unwrap()
                .push(String::from_utf8(m.payload.clone()).unwrap());
            true
        });
        (handoff, seen)
    }

    fn taken(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        std::mem::take(&mut *seen.lock().unwrap())
    }

    #[test]
    fn offline_messages_wait_and_the_oldest_are_dropped_when_full() {
        let metrics = MqttMetrics::default();
        let outbox = Outbox::new(3, metrics.clone());
        for n in 1..=5 {
            outbox.push(message(n, QoS::AtLeastOnce));
        }
        assert_eq!(outbox.len(), 3);
        assert_eq!(metrics.dropped.get(), 2);
        assert_eq!(metrics.buffered.get(), 3);
        let (handoff, seen) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        assert_eq!(taken(&seen), ["3", "4", "5"]);
        for pkid in 1..=3 {
            outbox.sent(generation, pkid);
        }
        outbox.acknowledged(generation, 2);
        outbox.acknowledged(generation, 1);
        assert_eq!(outbox.len(), 1);
        assert_eq!(metrics.published.get(), 2);
    }

    #[test]
    fn unacknowledged_messages_go_again_in_order_after_a_reconnect_without_session() {
        let outbox = Outbox::new(100, MqttMetrics::default());
        let (handoff, seen) = recording();
        let first = outbox.connected(handoff, false, usize::MAX).0;
        for n in 1..=3 {
            outbox.push(message(n, QoS::AtLeastOnce));
        }
        outbox.sent(first, 1);
        outbox.acknowledged(first, 1);
        outbox.sent(first, 2);
        outbox.disconnected(first);
        outbox.push(message(4, QoS::AtLeastOnce));
        assert_eq!(taken(&seen), ["1", "2", "3"]);
        let (handoff, seen) = recording();
        let second = outbox.connected(handoff, false, usize::MAX).0;
        assert_eq!(taken(&seen), ["2", "3", "4"]);
        // The first connection's late report is not about these.
        outbox.acknowledged(first, 2);
        assert_eq!(outbox.len(), 3);
        for pkid in 1..=3 {
            outbox.sent(second, pkid);
            outbox.acknowledged(second, pkid);
        }
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_backlog_gives_its_room_back_once_drained() {
        let outbox = Outbox::new(100, MqttMetrics::default());
        for n in 1..=50 {
            outbox.push(message(n, QoS::AtLeastOnce));
        }
        let room = || outbox.inner.lock().unwrap().entries.capacity();
        assert!(room() >= 50);
        let (handoff, _seen) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        // Handed over a window at a time, acknowledged, until none is left.
        let mut pkid = 0;
        while !outbox.is_empty() {
            pkid += 1;
            outbox.sent(generation, pkid);
            outbox.acknowledged(generation, pkid);
        }
        assert_eq!(room(), 0, "no room kept");
    }

    #[test]
    fn a_resumed_session_resends_by_itself() {
        let outbox = Outbox::new(100, MqttMetrics::default());
        let (handoff, seen) = recording();
        let first = outbox.connected(handoff, false, usize::MAX).0;
        outbox.push(message(1, QoS::AtLeastOnce));
        outbox.sent(first, 7);
        outbox.disconnected(first);
        let (handoff, seen2) = recording();
        let second = outbox.connected(handoff, true, usize::MAX).0;
        assert_eq!(taken(&seen), ["1"]);
        assert!(taken(&seen2).is_empty());
        outbox.sent(second, 7); // the client's resend
        outbox.push(message(2, QoS::AtLeastOnce));
        outbox.sent(second, 8);
        outbox.acknowledged(second, 7);
        outbox.acknowledged(second, 8);
        assert!(outbox.is_empty());
    }

    #[test]
    fn qos_0_is_done_once_written_and_the_window_limits_what_is_handed() {
        let outbox = Outbox::new(1000, MqttMetrics::default());
        let (handoff, seen) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        for n in 0..150 {
            outbox.push(message(n, QoS::AtMostOnce));
        }
        assert_eq!(taken(&seen).len(), 100);
        for _ in 0..100 {
            outbox.sent(generation, 0);
        }
        assert_eq!(taken(&seen).len(), 50);
    }

    #[test]
    fn dropping_a_handed_message_before_its_id_keeps_ids_matched() {
        let outbox = Outbox::new(2, MqttMetrics::default());
        let (handoff, seen) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        outbox.push(message(1, QoS::AtLeastOnce));
        outbox.push(message(2, QoS::AtLeastOnce));
        // Drops 1 while the client has it, and hands 3 into the room.
        outbox.push(message(3, QoS::AtLeastOnce));
        assert_eq!(taken(&seen), ["1", "2", "3"]);
        outbox.sent(generation, 1); // message 1's id: nobody's
        outbox.sent(generation, 2);
        outbox.sent(generation, 3);
        outbox.acknowledged(generation, 3);
        outbox.acknowledged(generation, 1);
        assert_eq!(outbox.len(), 1, "2 waits for its own ack");
        outbox.acknowledged(generation, 2);
        assert!(outbox.is_empty());
    }

    /// The status's `buffer`, as the outbox shows it.
    fn shown(state: &StatusSender) -> Option<String> {
        state.borrow().as_ref().unwrap().buffer.clone()
    }

    #[test]
    fn devices_share_the_adaptors_budget_and_say_when_their_share_caps_them() {
        let metrics = MqttMetrics::default();
        let budget = Arc::new(BufferBudget::new(Some(8192)));
        let outboxes: Vec<Outbox> = (0..4)
            .map(|_| {
                let outbox = Outbox::new(1000, metrics.clone());
                outbox.share_budget(budget.clone());
                // Each asks for 1 GiB.
                outbox.configure(1000, 1 << 30, None);
                outbox
            })
            .collect();
        let state: StatusSender =
            Arc::new(devicelink_cells::latest::channel(Some(Default::default())).0);
        outboxes[0].report_to(state.clone());
        let big = |n: u8| Message {
            payload: vec![n; 1023],
            ..message(0, QoS::AtLeastOnce)
        };
        // One device fills its share (8 KiB among 4: 2 KiB), and no more.
        for n in 1..=10 {
            outboxes[0].push(big(n));
        }
        assert_eq!(outboxes[0].len(), 2);
        assert_eq!(
            shown(&state).unwrap(),
            "over this device's share of the adaptor's MQTT buffer budget (2048 bytes: 8192 bytes among 4 devices), which caps messageChannelBytes (1073741824 bytes): the oldest messages were dropped and more will be until the broker takes them"
        );
        // The others keep theirs.
        for outbox in &outboxes[1..] {
            outbox.push(big(1));
            outbox.push(big(2));
            assert_eq!(outbox.len(), 2);
        }
        assert_eq!(metrics.buffered_bytes.get(), 8 * 1024);
        // A device that goes gives its share back to the others.
        drop(outboxes);
        assert_eq!(budget.share().unwrap().devices, 0);
        assert_eq!(metrics.buffered_bytes.get(), 0);
    }

    #[test]
    fn the_buffer_is_bounded_in_bytes_and_says_when_it_drops() {
        let metrics = MqttMetrics::default();
        let outbox = Outbox::new(1000, metrics.clone());
        let state: StatusSender =
            Arc::new(devicelink_cells::latest::channel(Some(Default::default())).0);
        outbox.report_to(state.clone());
        // 1 KiB messages ("t" and 1023 bytes) in a 4 KiB buffer.
        outbox.configure(1000, 4096, None);
        let big = |n: u8| Message {
            payload: vec![n; 1023],
            ..message(0, QoS::AtLeastOnce)
        };
        for n in 1..=4 {
            outbox.push(big(n));
        }
        assert_eq!((outbox.len(), shown(&state)), (4, None));
        outbox.push(big(5));
        assert_eq!(outbox.len(), 4, "the oldest went");
        assert_eq!(metrics.dropped.get(), 1);
        assert_eq!(
            shown(&state).unwrap(),
            "over messageChannelBytes (4096 bytes): the oldest messages were dropped and more will be until the broker takes them"
        );
        // A message larger than the whole buffer cannot be kept either.
        outbox.push(Message {
            payload: vec![0; 5000],
            ..message(0, QoS::AtLeastOnce)
        });
        assert!(outbox.is_empty());
        // Once the broker takes what there is, the status clears.
        outbox.push(message(6, QoS::AtLeastOnce));
        let (handoff, seen) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        assert_eq!(taken(&seen), ["6"]);
        outbox.sent(generation, 1);
        outbox.acknowledged(generation, 1);
        assert_eq!(shown(&state), None);
    }

    #[test]
    fn the_file_store_keeps_messages_across_outboxes() {
        let dir = std::env::temp_dir().join(format!("devicelink-outbox-{}", std::process::id()));
        let outbox = Outbox::new(10, MqttMetrics::default());
        outbox.configure(
            10,
            DEFAULT_MAX_BYTES,
            Some(FileStore::open(dir.clone()).unwrap()),
        );
        for n in 1..=3 {
            outbox.push(message(n, QoS::AtLeastOnce));
        }
        let (handoff, _) = recording();
        let generation = outbox.connected(handoff, false, usize::MAX).0;
        outbox.sent(generation, 1);
        outbox.acknowledged(generation, 1);
        drop(outbox);
        assert!(crate::store::flush(std::time::Duration::from_secs(30)));

        let again = Outbox::new(10, MqttMetrics::default());
        again.push(message(4, QoS::AtLeastOnce));
        again.configure(
            10,
            DEFAULT_MAX_BYTES,
            Some(FileStore::open(dir.clone()).unwrap()),
        );
        let (handoff, seen) = recording();
        again.connected(handoff, false, usize::MAX);
        assert_eq!(taken(&seen), ["2", "3", "4"]);
        again.destroy();
        assert!(crate::store::flush(std::time::Duration::from_secs(30)));
        assert!(!dir.exists());
    }

    #[test]
    fn messages_over_the_brokers_limit_are_dropped_on_connecting_and_refused_ones_are_not_sent_again()
     {
        let metrics = MqttMetrics::default();
        let outbox = Outbox::new(10, metrics.clone());
        outbox.push(message(1, QoS::AtLeastOnce));
        outbox.push(Message {
            payload: vec![b'x'; 500],
            ..message(0, QoS::AtLeastOnce)
        });
        outbox.push(message(3, QoS::AtLeastOnce));
        let (handoff, seen) = recording();
        let (generation, dropped) = outbox.connected(handoff, false, 100);
        assert_eq!(dropped, 1);
        assert_eq!(taken(&seen), ["1", "3"]);
        outbox.sent(generation, 1);
        outbox.sent(generation, 2);
        assert_eq!(outbox.refused(generation, 1).as_deref(), Some("t"));
        assert_eq!(outbox.acknowledged(generation, 2).as_deref(), Some("t"));
        assert_eq!(outbox.acknowledged(generation, 9), None, "not ours");
        assert!(outbox.is_empty());
        assert_eq!(metrics.failed.get(), 2);
        assert_eq!(metrics.published.get(), 1);
    }
}
