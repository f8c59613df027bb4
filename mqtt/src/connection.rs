//! A connection to a broker and the devices whose messages it carries.
//!
//! A device whose options ask for something that belongs to one connection
//! (its own client ID, a will, a persistent session) has a connection of
//! its own. Devices of one adaptor whose connection settings are equal may
//! share one ([`crate::sharing`]). Either way a connection is driven the
//! same way: each device (a member) keeps its own outbox, topics, QoS,
//! write topic and delivery state; the connection hands their messages to
//! one client, routes the broker's reports back to the member they belong
//! to, and tells every member when it connects or fails.
//!
//! The client reports a packet id only once a message is sent, in the
//! order messages were handed over; so the connection notes, for every
//! message handed over, whose it is, and gives the n-th report to the n-th
//! member noted (each member's outbox then matches it to its own message).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use devicelink_cells::Mailbox;
use rumqttc::QoS;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::{debug, warn};

use crate::{
    delivery::{Delivery, StatusSender},
    inbound::{Received, WRITES_WAITING, WriteRequest, reply_topic},
    message::Message,
    outbox::{Handoff, SharedOutbox},
    subscriptions::{MemberId, Subscriptions},
    wire::{self, Seen},
};

/// What a connection does with the messages the broker sends a member.
pub(crate) enum Inbound {
    /// The MQTT extension: writes to the device arrive on its write topic.
    Writes {
        topic: String,
        sink: Arc<Mailbox<WriteRequest>>,
    },
    /// An MQTT-native device: its own messages, on the topics (filters)
    /// given with their QoS.
    Device {
        filters: Vec<(String, QoS)>,
        sink: mpsc::Sender<Received>,
    },
}

impl Inbound {
    /// The topic writes arrive on, for the status.
    pub(crate) fn write_topic(&self) -> Option<String> {
        match self {
            Inbound::Writes { topic, .. } => Some(topic.clone()),
            Inbound::Device { .. } => None,
        }
    }

    pub(crate) fn subscriptions(&self) -> Vec<(String, QoS)> {
        match self {
            Inbound::Writes { topic, .. } => vec![(topic.clone(), QoS::AtLeastOnce)],
            Inbound::Device { filters, .. } => filters.clone(),
        }
    }
}

/// One device on a connection.
pub(crate) struct Member {
    pub outbox: SharedOutbox,
    pub state: StatusSender,
    pub delivery: Delivery,
    /// Where its status goes: acknowledgements of it say it is delivered.
    pub status_topic: String,
    pub inbound: Inbound,
    /// A retained will on the broker, cleared once connected (own
    /// connections only: a shared one has no will).
    pub retained_will: Option<String>,
}

/// The session and timing options, defaults applied; equal for the members
/// of a shared connection (they are part of its settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub connect: Duration,
    /// Zero: no limit.
    pub ping: Duration,
    pub write: Duration,
    pub wait: Duration,
    pub quiesce: Duration,
    pub max_backoff: Duration,
    pub auto_reconnect: bool,
}

/// How often a connection with many members looks for a stuck message
/// (writeTimeout, waitTimeout); one member is looked at on every event.
const STUCK_CHECK: Duration = Duration::from_millis(250);

/// Requests kept free in a connection's queue for subscriptions and the
/// goodbye, whatever its members hand over.
const CONTROL_ROOM: usize = 64;

/// Filters per SUBSCRIBE packet when many members subscribe at once.
const FILTERS_PER_SUBSCRIBE: usize = 100;

struct Joined {
    member: Member,
    /// The outbox generation of the current connection, while connected.
    generation: Option<u64>,
}

/// The connection's members and whether it is up.
#[derive(Default)]
struct Roster {
    next: MemberId,
    members: HashMap<MemberId, Joined>,
    /// The members' write topics and device filters, and who takes what
    /// arrives on them.
    subscriptions: Subscriptions,
    /// The broker's packet limit while connected.
    live: Option<Option<usize>>,
}

/// Whose messages the client has, in the order it will report them sent.
#[derive(Default)]
struct Order {
    /// Handovers are taken (the connection is up).
    open: bool,
    /// Handed over, not yet reported sent.
    unsent: VecDeque<MemberId>,
    /// Sent, not yet acknowledged: by packet id.
    in_flight: HashMap<u16, MemberId>,
    /// Members whose handover found the queue full; fed again as it drains.
    starved: Vec<MemberId>,
    starved_set: HashSet<MemberId>,
}

/// A connection and its members; driven by a task of its own.
pub(crate) struct Connection {
    client: wire::Client,
    client_id: String,
    server: String,
    /// Requests the client's queue holds.
    capacity: usize,
    resume_subs: bool,
    timing: Timing,
    roster: Mutex<Roster>,
    order: Arc<Mutex<Order>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// How to make a connection.
pub(crate) struct Plan {
    pub dial: wire::Dial,
    pub server: String,
    pub capacity: usize,
    pub resume_subs: bool,
    pub timing: Timing,
}

impl Connection {
    /// Starts connecting (in the background); members join with
    /// [`Connection::join`].
    pub(crate) fn start(plan: Plan) -> Arc<Connection> {
        let client_id = plan.dial.client_id.clone();
        let (client, event_loop) = plan.dial.connect(plan.capacity);
        let connection = Arc::new(Connection {
            client,
            client_id,
            server: plan.server,
            capacity: plan.capacity,
            resume_subs: plan.resume_subs,
            timing: plan.timing,
            roster: Mutex::default(),
            order: Arc::default(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(connection.clone().drive(event_loop));
        *connection.task.lock().unwrap() = Some(task);
        connection
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Adds a member; if the connection is up, its messages flow and its
    /// write topic is subscribed at once.
    pub(crate) fn join(&self, member: Member) -> MemberId {
        let mut roster = self.roster.lock().unwrap();
        let id = roster.next;
        roster.next += 1;
        let subscribe = roster
            .subscriptions
            .add(id, &member.inbound.subscriptions());
        let live = roster.live;
        roster.members.insert(
            id,
            Joined {
                member,
                generation: None,
            },
        );
        if let Some(max_packet) = live {
            self.subscribe(subscribe);
            let joined = roster.members.get_mut(&id).expect("just inserted");
            joined.generation = Some(self.hand_over(id, &joined.member, max_packet, false));
            set_connected(&joined.member.state, true, None);
        }
        id
    }

    /// Takes a member off; its messages not yet acknowledged stay in its
    /// outbox. True if it was the last one (the connection then ends).
    pub(crate) fn leave(&self, id: MemberId) -> bool {
        let mut roster = self.roster.lock().unwrap();
        let Some(joined) = roster.members.remove(&id) else {
            return roster.members.is_empty();
        };
        joined.member.outbox.detach();
        // Filters no other member asks for; with the last member the
        // connection ends, which ends them all.
        let unsubscribe = roster
            .subscriptions
            .remove(id, &joined.member.inbound.subscriptions());
        let last = roster.members.is_empty();
        if roster.live.is_some() && !last {
            for filter in unsubscribe {
                self.client.try_unsubscribe(&filter);
            }
        }
        if last {
            self.client.try_disconnect();
        }
        last
    }

    /// Waits up to a second for the connection to end (after the last
    /// member left), then stops it.
    pub(crate) async fn closed(&self) -> bool {
        let task = self.task.lock().unwrap().take();
        let Some(mut task) = task else {
            return true;
        };
        let ended = tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_ok();
        task.abort();
        ended
    }

    /// Stops the connection's task now.
    pub(crate) fn abort(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Gives the member's outbox a handover to this client and returns the
    /// outbox's generation for this connection.
    fn hand_over(
        &self,
        id: MemberId,
        member: &Member,
        max_packet: Option<usize>,
        resumed: bool,
    ) -> u64 {
        // A member joining a live connection learns the broker's limit here too.
        member.delivery.connected(max_packet);
        let (generation, dropped) = member.outbox.connected(
            self.handoff(id),
            resumed,
            max_packet.unwrap_or(wire::MAX_OUTGOING_PACKET),
        );
        if dropped > 0 {
            let why = member.delivery.too_large_waiting(dropped);
            warn!(server = %self.server, "{why}");
            member.delivery.not_sent(why);
        }
        generation
    }

    /// Hands one member's messages to the client, noting whose they are.
    fn handoff(&self, id: MemberId) -> Handoff {
        let (client, order) = (self.client.clone(), self.order.clone());
        let limit = self.capacity.saturating_sub(CONTROL_ROOM).max(1);
        Box::new(move |m: &Message| {
            let mut order = order.lock().unwrap();
            if !order.open {
                return false;
            }
            // Held while handing over, so that the queue's order is the
            // order noted here.
            if order.unsent.len() < limit && client.try_publish(m) {
                order.unsent.push_back(id);
                return true;
            }
            if order.starved_set.insert(id) {
                order.starved.push(id);
            }
            false
        })
    }

    fn subscribe(&self, filters: Vec<(String, QoS)>) {
        for chunk in filters.chunks(FILTERS_PER_SUBSCRIBE) {
            self.client.try_subscribe_many(chunk);
        }
    }

    /// Polls the connection; after a failure waits 1 s, doubling up to
    /// maxReconnectInterval (or stops if autoReconnect is false and a
    /// connection had been made).
    async fn drive(self: Arc<Self>, mut event_loop: wire::Connection) {
        let mut backoff = Duration::from_secs(1);
        let mut up = false;
        let mut ever_connected = false;
        // Sent ping not yet answered.
        let mut ping_sent: Option<Instant> = None;
        let mut stuck = StuckCheck::default();
        loop {
            // Only a live connection can be stuck; while (re)connecting the
            // messages it had in flight wait for the next one.
            let deadline = if up {
                self.deadline(ping_sent, &mut stuck)
            } else {
                None
            };
            let polled = tokio::select! {
                polled = event_loop.poll() => polled,
                why = sleep_until_some(deadline) => match why {
                    Some(why) => {
                        // The connection is stuck; drop it (what clean() is for).
                        event_loop.clean();
                        Err(why)
                    }
                    None => continue,
                },
            };
            match polled {
                Ok(Seen::Connected {
                    session_present,
                    max_packet,
                }) => {
                    debug!(server = %self.server, client_id = %self.client_id, ?max_packet, "connected to MQTT broker");
                    backoff = Duration::from_secs(1);
                    ping_sent = None;
                    // A session the broker kept is only ours to resume if
                    // this client sent what is in it.
                    let resumed = session_present && ever_connected;
                    self.connected(max_packet, session_present, resumed, ever_connected);
                    ever_connected = true;
                    up = true;
                }
                Ok(Seen::Sent(pkid)) => self.sent(pkid),
                Ok(Seen::Acked(pkid)) => self.finished(pkid, None),
                Ok(Seen::Refused(pkid, reason)) => self.finished(pkid, Some(reason)),
                Ok(Seen::PingSent) => {
                    ping_sent.get_or_insert_with(Instant::now);
                }
                Ok(Seen::PingAnswered) => ping_sent = None,
                Ok(Seen::Received(p)) => self.route(p),
                Ok(Seen::Disconnecting) => return,
                Ok(_) => {}
                Err(e) => {
                    // No more handovers; whatever reached the client's queue
                    // since it failed joins what it keeps for the next
                    // connection (all of it dropped if that has no session).
                    self.order.lock().unwrap().open = false;
                    event_loop.clean();
                    self.disconnected(up);
                    up = false;
                    ping_sent = None;
                    if ever_connected && !self.timing.auto_reconnect {
                        let why = format!(
                            "{e}; autoReconnect is false, so the connection stays down until the device's settings change"
                        );
                        warn!(server = %self.server, "{why}");
                        self.tell_all(false, Some(why));
                        return;
                    }
                    warn!(server = %self.server, client_id = %self.client_id, error = %e, retry_in = ?backoff, "MQTT connection failed");
                    self.tell_all(false, Some(e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.timing.max_backoff);
                }
            }
        }
    }

    /// The connection is up: every member's messages flow, write topics are
    /// subscribed, retained wills cleared.
    fn connected(
        &self,
        max_packet: Option<usize>,
        session_present: bool,
        resumed: bool,
        reconnect: bool,
    ) {
        let mut roster = self.roster.lock().unwrap();
        roster.live = Some(max_packet);
        {
            let mut order = self.order.lock().unwrap();
            if !session_present {
                // The client dropped what it kept from before: nothing
                // noted is still to be sent or acknowledged.
                order.unsent.clear();
                order.in_flight.clear();
            }
            order.starved.clear();
            order.starved_set.clear();
            order.open = true;
        }
        let subscriptions = if resumed && self.resume_subs {
            Vec::new()
        } else {
            roster.subscriptions.all()
        };
        // Subscribed before any member's message is handed over: a client
        // that sees a device's first status may write to it at once, and
        // the broker drops a write that comes before the subscription (as
        // join does for a member of a live connection).
        self.subscribe(subscriptions);
        for (id, joined) in roster.members.iter_mut() {
            let member = &joined.member;
            set_connected(&member.state, true, None);
            if reconnect {
                member.outbox.metrics().reconnects.inc();
            }
            if let Some(will) = &member.retained_will {
                member.outbox.push_next(Message {
                    topic: will.clone(),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    payload: Vec::new(),
                    correlation: None,
                });
            }
            joined.generation = Some(self.hand_over(*id, member, max_packet, resumed));
        }
    }

    /// The connection is down: members keep their messages for the next.
    fn disconnected(&self, was_up: bool) {
        let mut roster = self.roster.lock().unwrap();
        roster.live = None;
        if !was_up {
            return;
        }
        for joined in roster.members.values_mut() {
            if let Some(g) = joined.generation.take() {
                joined.member.outbox.disconnected(g);
            }
        }
    }

    fn tell_all(&self, connected: bool, error: Option<String>) {
        let roster = self.roster.lock().unwrap();
        for joined in roster.members.values() {
            set_connected(&joined.member.state, connected, error.clone());
        }
    }

    /// The client sent a publish: the oldest noted member's, unless it is
    /// one still in flight sent again (a resumed session).
    fn sent(&self, pkid: u16) {
        let (id, starved) = {
            let mut order = self.order.lock().unwrap();
            let resent = (pkid != 0).then(|| order.in_flight.get(&pkid).copied());
            let id = match resent.flatten() {
                Some(id) => id,
                None => {
                    let Some(id) = order.unsent.pop_front() else {
                        return;
                    };
                    if pkid != 0 {
                        order.in_flight.insert(pkid, id);
                    }
                    id
                }
            };
            // Room in the queue again: those who found it full go on.
            let starved = match order.starved.pop() {
                Some(s) => {
                    order.starved_set.remove(&s);
                    Some(s)
                }
                None => None,
            };
            (id, starved)
        };
        let roster = self.roster.lock().unwrap();
        if let Some(joined) = roster.members.get(&id)
            && let Some(g) = joined.generation
        {
            joined.member.outbox.sent(g, pkid);
        }
        if let Some(joined) = starved.and_then(|s| roster.members.get(&s)) {
            joined.member.outbox.resume();
        }
    }

    /// The broker acknowledged (or, with a reason, refused) packet `pkid`.
    fn finished(&self, pkid: u16, refused: Option<String>) {
        let Some(id) = self.order.lock().unwrap().in_flight.remove(&pkid) else {
            return;
        };
        let roster = self.roster.lock().unwrap();
        let Some(joined) = roster.members.get(&id) else {
            return;
        };
        let Some(g) = joined.generation else {
            return;
        };
        let member = &joined.member;
        match refused {
            None => {
                if member.outbox.acknowledged(g, pkid).as_ref() == Some(&member.status_topic) {
                    member.delivery.acknowledged();
                }
            }
            Some(reason) => {
                if let Some(topic) = member.outbox.refused(g, pkid) {
                    if topic != member.status_topic {
                        warn!(server = %self.server, %topic, %reason, "the broker refused a message");
                    } else if member.delivery.refused(&reason) {
                        warn!(server = %self.server, %topic, %reason, "the broker refused a status message");
                    }
                }
            }
        }
    }

    /// Hands a message from the broker to whoever takes it: a write on a
    /// member's write topic, or a device's message on one of its topics.
    fn route(&self, p: wire::Incoming) {
        let mut roster = self.roster.lock().unwrap();
        let recipients = roster.subscriptions.recipients(&p.topic, p.retained);
        for joined in recipients.iter().filter_map(|id| roster.members.get(id)) {
            match &joined.member.inbound {
                Inbound::Writes { .. } => take_write(&joined.member, &p),
                Inbound::Device { sink, .. } => {
                    let received = Received {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                    };
                    if sink.try_send(received).is_err() {
                        warn!(topic = %p.topic, "the device's messages arrive faster than they are taken in; one dropped");
                    }
                }
            }
        }
    }

    /// When the connection counts as stuck: a ping unanswered for
    /// pingTimeout, or a message not written within writeTimeout or not
    /// acknowledged within waitTimeout. `None` with no reason: look again.
    fn deadline(
        &self,
        ping_sent: Option<Instant>,
        stuck: &mut StuckCheck,
    ) -> Option<(Instant, Option<String>)> {
        let ping = ping_sent.filter(|_| !self.timing.ping.is_zero()).map(|at| {
            (
                at + self.timing.ping,
                Some("no ping response within pingTimeout".to_string()),
            )
        });
        let message = if self.timing.write.is_zero() && self.timing.wait.is_zero() {
            None
        } else {
            Some(stuck.next(self))
        };
        ping.into_iter().chain(message).min_by_key(|(at, _)| *at)
    }
}

/// The oldest stuck message over all members. With one member it is
/// looked at on every event; with many, every [`STUCK_CHECK`] (each look
/// costs one lock per member).
#[derive(Default)]
struct StuckCheck {
    looked: Option<Instant>,
}

impl StuckCheck {
    fn next(&mut self, connection: &Connection) -> (Instant, Option<String>) {
        let now = Instant::now();
        let roster = connection.roster.lock().unwrap();
        let many = roster.members.len() > 1;
        if many && self.looked.is_some_and(|at| now < at + STUCK_CHECK) {
            return (self.looked.unwrap() + STUCK_CHECK, None);
        }
        self.looked = Some(now);
        let (write, wait) = (connection.timing.write, connection.timing.wait);
        let oldest = roster
            .members
            .values()
            .filter_map(|j| j.member.outbox.stuck_after(write, wait))
            .min_by_key(|(at, _)| *at);
        match oldest {
            Some((at, why)) if !many || at <= now + STUCK_CHECK => (at, Some(why)),
            _ if many => (now + STUCK_CHECK, None),
            _ => (now + Duration::from_secs(3600), None),
        }
    }
}

/// A write for one member: to its device, or refused whole at once.
fn take_write(member: &Member, p: &wire::Incoming) {
    let Inbound::Writes { topic, sink } = &member.inbound else {
        return;
    };
    let request = WriteRequest {
        payload: p.payload.clone(),
        reply_topic: reply_topic(topic, p.response_topic.clone()),
        correlation: p.correlation.clone(),
    };
    if p.retained {
        // Retained: the broker hands it over on every new subscription, so
        // it would be applied again after every reconnect, however stale.
        debug!(%topic, "a retained write is not applied");
        refuse_write(
            member,
            &request,
            "is retained: a retained write would be applied again on every reconnect; publish writes with retain false",
        );
        return;
    }
    if let Err(request) = sink.offer(request) {
        warn!(%topic, "writes arrive faster than the device takes them; one refused");
        refuse_write(
            member,
            &request,
            &format!(
                "arrived while {WRITES_WAITING} writes were waiting for the device; send it again"
            ),
        );
    }
}

/// Refuses a write whole, before the device sees it.
fn refuse_write(member: &Member, request: &WriteRequest, reason: &str) {
    let refused = [crate::write::Refusal::whole(reason)];
    member.outbox.push_next(Message {
        topic: request.reply_topic.clone(),
        qos: QoS::AtLeastOnce,
        retain: false,
        payload: crate::write::answer(Err(&refused)),
        correlation: request.correlation.clone(),
    });
}

fn set_connected(state: &StatusSender, connected: bool, error: Option<String>) {
    state.send_if_modified(|s| {
        let Some(s) = s.as_mut() else { return false };
        let changed = s.connected != connected || (error.is_some() && s.last_error != error);
        s.connected = connected;
        if error.is_some() {
            s.last_error = error;
        }
        changed
    });
}

async fn sleep_until_some(deadline: Option<(Instant, Option<String>)>) -> Option<String> {
    match deadline {
        Some((at, why)) => {
            tokio::time::sleep_until(at).await;
            why
        }
        None => std::future::pending().await,
    }
}
