//! One writer for all devices of a model: what the adaptor writes to the
//! API server about its devices. That is each device's status
//! (status_writer.rs), its DeviceLink's DeviceConnected condition
//! (link_status.rs), and the count of writes from MQTT it refused on the
//! DeviceLink (refused_writes.rs). (The operator records Events of both.)
//!
//! A device has a [`Report`]: what its writes are made of and when they
//! are due, as data. A device puts its report on the writer's queue when
//! something in it changes; the writer works out what is due, keeps a
//! timer for what is due later, and makes at most [`WRITES_AT_ONCE`]
//! writes at once, one at a time for each device. A device that waits
//! (nearly all of them, nearly all the time) costs its report, not a task
//! with a future the size of the writes it might make.
//!
//! The status is written only when it changed, at most once per
//! `--status-interval` for the device and within the adaptor's budget
//! (status_budget.rs), always the newest when its turn comes. (Per-sample
//! status writes have taken API servers down; samples go to MQTT.) The
//! condition and refused writes are not held back by the status: they are
//! rare and say what a user waits for.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use devicelink_api::{Outcome, property::MqttStatus};
use devicelink_cells::latest;
use futures::{StreamExt, stream::FuturesUnordered};
use kube::{Api, Client};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::{
    connected::with_delivery,
    link::Link,
    link_status,
    model::Model,
    refused_writes::{self, Counted, Refused},
    status_budget::{self, StatusBudget, Turn},
    status_writer::{self, Written},
};

/// Most API writes the writer makes at once; the others wait their turn
/// in a queue (a device's place in it, not a write's future). Enough to
/// keep a busy API server's pipeline full (a write can take a good part of
/// a second while thousands of devices start), few enough that their
/// connections and futures cost little.
pub(crate) const WRITES_AT_ONCE: usize = 64;

/// What the writer needs to write: where, as whom, and how often.
pub(crate) struct Settings {
    pub(crate) client: Client,
    /// Field manager of status writes.
    pub(crate) manager: Arc<str>,
    /// Least time between two status writes of one device.
    pub(crate) status_interval: Duration,
    pub(crate) budget: Arc<StatusBudget>,
}

/// The writer of one model's devices: a task, and the queue devices put
/// their reports on. Dropping it stops the task.
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Arc<Report>>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer of devices of model `K`.
    pub(crate) fn start<K: Model>(settings: Settings) -> Writer {
        let (queue, queued) = mpsc::unbounded_channel();
        let desk = Desk::<K> {
            settings,
            queued,
            timers: BinaryHeap::new(),
            urgent: VecDeque::new(),
            waiting: VecDeque::new(),
            writing: FuturesUnordered::new(),
            model: PhantomData,
        };
        Writer {
            queue,
            task: tokio::spawn(desk.run()),
        }
    }

    /// The report of device `namespace/name`, whose MQTT connection state
    /// (part of its status, and of its condition) is `mqtt`.
    pub(crate) fn report(
        &self,
        namespace: String,
        name: String,
        mqtt: latest::Receiver<Option<MqttStatus>>,
    ) -> Arc<Report> {
        let report = Arc::new(Report {
            namespace,
            name,
            state: Mutex::new(State::new(mqtt.clone())),
            queue: self.queue.clone(),
        });
        // A change of the MQTT state marks the status and the condition,
        // from whoever changes it: no future waits on it for each device.
        // Weak: the report holds the state's receiver.
        let weak = Arc::downgrade(&report);
        mqtt.on_change(move || {
            if let Some(report) = weak.upgrade() {
                report.change(|s| {
                    (s.status_changed, s.condition_stale) = (true, true);
                    true
                });
            }
        });
        report
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one device's writes are made of, and where they stand. Its
/// device's task and the registry fill it; the writer empties it.
pub(crate) struct Report {
    namespace: String,
    /// The device's (and its DeviceLink's) name.
    name: String,
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<Arc<Report>>,
}

#[cfg(test)]
impl Report {
    /// A report no writer takes from, for tests of what holds one.
    pub(crate) fn detached(mqtt: latest::Receiver<Option<MqttStatus>>) -> Arc<Report> {
        Arc::new(Report {
            namespace: "ns".into(),
            name: "n".into(),
            state: Mutex::new(State::new(mqtt)),
            queue: mpsc::unbounded_channel().0,
        })
    }

    /// The status last reported and what DeviceConnected should say.
    pub(crate) fn seen(&self) -> (Option<String>, Option<Outcome>) {
        let state = self.state.lock().unwrap();
        (
            state.reported.as_deref().map(Into::into),
            state.connected.clone(),
        )
    }
}

/// `namespace/name`.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

struct State {
    /// The status the device task reported last, as JSON text, held at
    /// its length: the text was written with room to grow, up to twice
    /// its size, and it is kept for every device.
    reported: Option<Box<str>>,
    /// What the device task says of DeviceConnected.
    connected: Option<Outcome>,
    /// The DeviceLink as last seen.
    link: Option<Arc<Link>>,
    /// The device's MQTT connection state.
    mqtt: latest::Receiver<Option<MqttStatus>>,
    /// Refused writes not yet counted on the DeviceLink.
    refused: Option<Refused>,
    /// A digest of the status last written, not its text: the reported
    /// text is kept already, and this is for every device.
    written: Option<u64>,
    /// The status changed since it was last written.
    status_changed: bool,
    /// The condition may no longer say what it should.
    condition_stale: bool,
    status_rests_until: Instant,
    turn: Option<Turn>,
    refusals_quiet_until: Instant,
    /// The earliest timer the writer holds for it.
    timer: Option<Instant>,
    /// On the writer's queue, or waiting for a free write: not put there
    /// twice.
    queued: bool,
    waiting: bool,
    /// Waiting among the devices whose condition is due.
    waiting_urgent: bool,
    /// One of its writes is being made.
    writing: bool,
    /// The device is gone: nothing more is written.
    gone: bool,
}

/// A write to make, with what it is made of. (One is in hand at a time,
/// moved into its write's future: boxing the large variant would only add
/// an allocation.)
#[allow(clippy::large_enum_variant)]
enum Work {
    Condition(Arc<Link>, Outcome, Option<MqttStatus>),
    Refused(Arc<Link>, Refused),
    /// The status's digest and text.
    Status(u64, String),
}

/// What is next for a device: a write now, or a look again later.
#[allow(clippy::large_enum_variant)] // As Work.
enum Due {
    Now(Work),
    Later(Instant),
    Nothing,
}

/// What became of a write.
enum Done {
    Condition,
    Refused(Counted),
    Status(u64, Written),
}

impl State {
    fn new(mqtt: latest::Receiver<Option<MqttStatus>>) -> State {
        let now = Instant::now();
        State {
            reported: None,
            connected: None,
            link: None,
            mqtt,
            refused: None,
            written: None,
            status_changed: false,
            condition_stale: true,
            status_rests_until: now,
            turn: None,
            refusals_quiet_until: now,
            timer: None,
            queued: false,
            waiting: false,
            waiting_urgent: false,
            writing: false,
            gone: false,
        }
    }

    /// Whether DeviceConnected is to be written now.
    fn condition_due(&self) -> bool {
        self.condition_stale && self.link.is_some() && self.connected.is_some()
    }

    /// What is due at `now`, in order: the condition, the count of
    /// refused writes, the status (taking a turn in the budget once it may write).
    fn due(&mut self, now: Instant, budget: &Arc<StatusBudget>) -> Due {
        if self.condition_stale {
            self.condition_stale = false;
            if let (Some(link), Some(outcome)) = (&self.link, &self.connected) {
                let mqtt = self.mqtt.borrow().clone();
                return Due::Now(Work::Condition(link.clone(), outcome.clone(), mqtt));
            }
        }
        let mut later: Option<Instant> = None;
        if self.refused.is_some() {
            if now < self.refusals_quiet_until {
                later = Some(self.refusals_quiet_until);
            } else if let Some(link) = &self.link {
                let refused = self.refused.take().expect("checked above");
                return Due::Now(Work::Refused(link.clone(), refused));
            }
        }
        if self.status_changed && self.turn.is_none() && now >= self.status_rests_until {
            self.turn = Some(budget.reserve());
        }
        let status_at = match &self.turn {
            Some(turn) if turn.at() <= now => {
                self.turn = None;
                self.status_changed = false;
                // The newest, including what changed while it waited.
                let mqtt = self.mqtt.borrow().clone();
                let status = status_writer::current(self.reported.as_deref(), mqtt.as_ref())
                    .map(|s| (digest(&s), s));
                if let Some((now, status)) = status.filter(|(d, _)| self.written != Some(*d)) {
                    return Due::Now(Work::Status(now, status));
                }
                None
            }
            // Looked at again within a while, whatever it was told: the
            // budget may have come back since.
            Some(turn) => Some(turn.at().min(now + status_budget::LOOK_AGAIN_WITHIN)),
            None => self.status_changed.then_some(self.status_rests_until),
        };
        match later.into_iter().chain(status_at).min() {
            Some(at) => Due::Later(at),
            None => Due::Nothing,
        }
    }

    /// A write of it was made.
    fn done(&mut self, done: Done, status_interval: Duration) {
        let now = Instant::now();
        match done {
            Done::Condition => {}
            Done::Refused(Counted::Yes) => {
                self.refusals_quiet_until = now + refused_writes::AT_MOST_EVERY;
            }
            Done::Refused(Counted::No(unwritten)) => {
                Refused::put_back(&mut self.refused, unwritten);
                self.refusals_quiet_until = now + refused_writes::AGAIN_AFTER_CONFLICT;
            }
            Done::Status(digest, written) => {
                match written {
                    Written::Yes => self.written = Some(digest),
                    Written::Gone => {}
                    Written::No => self.status_changed = true,
                }
                self.status_rests_until = now + status_interval;
            }
        }
    }
}

impl Report {
    /// A sample's status (JSON text): written when it differs from the last.
    pub(crate) fn report(self: &Arc<Self>, text: String) {
        self.change(|s| {
            let changed = s.reported.as_deref() != Some(text.as_str());
            if changed {
                s.reported = Some(text.into_boxed_str());
                s.status_changed = true;
            }
            changed
        });
    }

    /// What DeviceConnected should say.
    pub(crate) fn set_connected(self: &Arc<Self>, outcome: Outcome) {
        self.change(|s| {
            let changed = s.connected.as_ref() != Some(&outcome);
            if changed {
                s.connected = Some(outcome);
                s.condition_stale = true;
            }
            changed
        });
    }

    /// The DeviceLink as now seen: its condition is looked at again (a
    /// write that lost to another writer is made again on the new version).
    pub(crate) fn set_link(self: &Arc<Self>, link: Arc<Link>) {
        self.change(|s| {
            s.link = Some(link);
            s.condition_stale = true;
            true
        });
    }

    /// A write from MQTT was refused, and why: added to the DeviceLink's
    /// count with the others of the next ten seconds.
    pub(crate) fn refused(self: &Arc<Self>, why: String) {
        self.change(|s| {
            Refused::add(&mut s.refused, why);
            true
        });
    }

    /// The device is gone: nothing more of it is written.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap().gone = true;
    }

    /// Whether [`Report::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().unwrap().gone
    }

    /// Applies `change`; if it changed anything, the report goes on the
    /// writer's queue (once).
    fn change(self: &Arc<Self>, change: impl FnOnce(&mut State) -> bool) {
        let mut state = self.state.lock().unwrap();
        if change(&mut state) && !state.queued && !state.gone {
            state.queued = true;
            drop(state);
            let _ = self.queue.send(self.clone());
        }
    }
}

type Writing = Pin<Box<dyn Future<Output = (Arc<Report>, Done)> + Send>>;

/// The writer's task and everything it owns.
struct Desk<K> {
    settings: Settings,
    queued: mpsc::UnboundedReceiver<Arc<Report>>,
    /// When to look at a device again, soonest first.
    timers: BinaryHeap<Reverse<Timer>>,
    /// Devices whose DeviceConnected is due, waiting for a free write:
    /// they go first (what a user waits for, against a status that only
    /// says a value again).
    urgent: VecDeque<Arc<Report>>,
    /// Devices with something else to write, waiting for a free write.
    waiting: VecDeque<Arc<Report>>,
    writing: FuturesUnordered<Writing>,
    model: PhantomData<K>,
}

struct Timer {
    at: Instant,
    report: Arc<Report>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl<K: Model> Desk<K> {
    async fn run(mut self) {
        loop {
            let next_timer = self.timers.peek().map(|Reverse(t)| t.at);
            tokio::select! {
                Some(report) = self.queued.recv() => {
                    report.state.lock().unwrap().queued = false;
                    self.look_at(report);
                }
                Some((report, done)) = self.writing.next() => {
                    {
                        let mut state = report.state.lock().unwrap();
                        state.writing = false;
                        state.done(done, self.settings.status_interval);
                    }
                    self.look_at(report);
                }
                () = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.timers_due();
                }
                else => return,
            }
            self.start_waiting();
        }
    }

    /// Looks at the devices whose timers are due.
    fn timers_due(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
            let Reverse(Timer { at, report }) = self.timers.pop().expect("peeked");
            let mut state = report.state.lock().unwrap();
            // Only the timer it holds: an earlier one replaced later ones.
            if state.timer == Some(at) {
                state.timer = None;
                drop(state);
                self.look_at(report);
            }
        }
    }

    /// Starts what is due for a device, or has it wait for a free write,
    /// or sets a timer for when something will be due.
    fn look_at(&mut self, report: Arc<Report>) {
        let mut state = report.state.lock().unwrap();
        let urgent = state.condition_due();
        if state.waiting && urgent && !state.waiting_urgent {
            // Became urgent while waiting among the others: it goes ahead
            // (its older place is passed over once it has been served).
            state.waiting_urgent = true;
            drop(state);
            self.urgent.push_back(report);
            return;
        }
        if state.gone || state.writing || state.waiting {
            return; // Looked at again when its write is made or starts.
        }
        let full = self.writing.len() >= WRITES_AT_ONCE;
        if full || (!urgent && !self.urgent.is_empty()) {
            // Looked at when a write is free, whatever it then needs.
            state.waiting = true;
            state.waiting_urgent = urgent;
            drop(state);
            match urgent {
                true => self.urgent.push_back(report),
                false => self.waiting.push_back(report),
            }
            return;
        }
        match state.due(Instant::now(), &self.settings.budget) {
            Due::Now(work) => {
                state.writing = true;
                drop(state);
                self.writing.push(self.write(report, work));
            }
            // Only a timer sooner than the one it holds.
            Due::Later(at) if state.timer.is_none_or(|t| at < t) => {
                state.timer = Some(at);
                drop(state);
                self.timers.push(Reverse(Timer { at, report }));
            }
            Due::Later(_) | Due::Nothing => {}
        }
    }

    /// Devices that waited for a free write, in turn, while there is one:
    /// those whose condition is due first.
    fn start_waiting(&mut self) {
        while self.writing.len() < WRITES_AT_ONCE {
            let Some(report) = self.urgent.pop_front().or_else(|| self.waiting.pop_front()) else {
                return;
            };
            {
                let mut state = report.state.lock().unwrap();
                (state.waiting, state.waiting_urgent) = (false, false);
            }
            self.look_at(report);
        }
    }

    /// The write of `work`, boxed: only writes being made have a future.
    fn write(&self, report: Arc<Report>, work: Work) -> Writing {
        let settings = &self.settings;
        let (client, manager) = (settings.client.clone(), settings.manager.clone());
        let budget = settings.budget.clone();
        Box::pin(async move {
            let namespace = report.namespace.as_str();
            let done = match work {
                Work::Condition(link, outcome, mqtt) => {
                    let outcome = with_delivery(outcome, mqtt.as_ref());
                    link_status::update(&api(&client, namespace), &link, outcome).await;
                    Done::Condition
                }
                Work::Refused(link, refused) => {
                    let links = api(&client, namespace);
                    Done::Refused(refused_writes::count(&links, &link, refused).await)
                }
                Work::Status(digest, status) => {
                    let started = Instant::now();
                    let (name, manager) = (&report.name, &manager);
                    let written =
                        status_writer::write::<K>(&client, namespace, name, manager, &status).await;
                    budget.wrote(started.elapsed());
                    Done::Status(digest, written)
                }
            };
            (report, done)
        })
    }
}

/// The API of kind `T` in `namespace`. (Made for each write: each is a few
/// hundred bytes, kept for every device otherwise.)
fn api<T>(client: &Client, namespace: &str) -> Api<T>
where
    T: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    T::DynamicType: Default,
{
    Api::namespaced(client.clone(), namespace)
}

fn digest(status: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    status.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, Response, StatusCode};
    use devicelink_api::dummy::DummySpecialDevice;
    use kube::client::Body;
    use serde_json::{Value, json};

    type ApiServer = tower_test::mock::Handle<Request<Body>, Response<Body>>;
    type Respond = tower_test::mock::SendResponse<Response<Body>>;

    fn status_path(name: &str) -> String {
        format!(
            "/apis/devices.edge.cattle.io/v1alpha1/namespaces/ns/dummyspecialdevices/{name}/status"
        )
    }

    /// A writer of fans on a mocked API server.
    fn start(status_interval: Duration) -> (ApiServer, Writer) {
        let (service, server) = tower_test::mock::pair();
        let writer = Writer::start::<DummySpecialDevice>(Settings {
            client: Client::new(service, "default"),
            manager: "m".into(),
            status_interval,
            budget: Arc::new(StatusBudget::new(100.0)),
        });
        (server, writer)
    }

    /// The report of fan `ns/name`, with the sender of its MQTT state.
    fn fan(writer: &Writer, name: &str) -> (Arc<Report>, latest::Sender<Option<MqttStatus>>) {
        let (mqtt, mqtt_rx) = latest::channel(None);
        (writer.report("ns".into(), name.into(), mqtt_rx), mqtt)
    }

    /// The next request: its method, path and body, and its answer.
    async fn next(server: &mut ApiServer) -> (String, String, Value, Respond) {
        let (request, respond) = server.next_request().await.expect("the writer is alive");
        let (method, path) = (
            request.method().to_string(),
            request.uri().path().to_string(),
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (method, path, body, respond)
    }

    /// Answers `respond` with `status` and `body`.
    fn answer(respond: Respond, status: StatusCode, body: &Value) {
        respond.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    /// Answers the next request, which must write the status of fan
    /// `name`, as the API server would; the status written.
    async fn status_written(server: &mut ApiServer, name: &str) -> Value {
        let (method, path, sent, respond) = next(server).await;
        assert_eq!((method.as_str(), path), ("PATCH", status_path(name)));
        let stored = json!({
            "apiVersion": "devices.edge.cattle.io/v1alpha1",
            "kind": "DummySpecialDevice",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"protocol": {"location": "attic"}},
            "status": sent["status"],
        });
        answer(respond, StatusCode::OK, &stored);
        sent["status"].clone()
    }

    /// Whether a request comes within `wait`.
    async fn quiet(server: &mut ApiServer, wait: Duration) -> bool {
        tokio::time::timeout(wait, server.next_request())
            .await
            .is_err()
    }

    fn speed(n: i64) -> String {
        json!({"rotatingSpeed": n}).to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_is_written_when_it_changed_at_most_once_per_interval_and_the_newest() {
        let (mut server, writer) = start(Duration::from_secs(5));
        let (fan, mqtt) = fan(&writer, "fan");
        let start = Instant::now();
        fan.report(speed(1));
        assert_eq!(
            status_written(&mut server, "fan").await,
            json!({"rotatingSpeed": 1})
        );

        // Two changes within the interval: one write once it is over, of
        // the newest.
        fan.report(speed(2));
        fan.report(speed(3));
        assert_eq!(
            status_written(&mut server, "fan").await,
            json!({"rotatingSpeed": 3})
        );
        assert!(Instant::now() - start >= Duration::from_secs(5));

        // The same again is not written.
        fan.report(speed(3));
        assert!(
            quiet(&mut server, Duration::from_secs(30)).await,
            "an unchanged status was written again"
        );

        // The MQTT connection's state is part of the status.
        mqtt.send_replace(Some(MqttStatus {
            connected: true,
            ..Default::default()
        }));
        let written = status_written(&mut server, "fan").await;
        assert_eq!(written["rotatingSpeed"], 3);
        assert_eq!(written["extension"]["mqtt"]["connected"], true, "{written}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_status_write_is_made_again_after_the_interval() {
        let (mut server, writer) = start(Duration::from_secs(5));
        let (fan, _mqtt) = fan(&writer, "fan");
        fan.report(speed(7));
        let (_, _, _, respond) = next(&mut server).await;
        let failure = json!({"kind": "Status", "code": 500, "message": "etcd"});
        answer(respond, StatusCode::INTERNAL_SERVER_ERROR, &failure);
        let failed = Instant::now();
        assert_eq!(
            status_written(&mut server, "fan").await,
            json!({"rotatingSpeed": 7})
        );
        assert!(Instant::now() - failed >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_whose_write_hangs_does_not_hold_back_another() {
        let (mut server, writer) = start(Duration::from_secs(5));
        let (slow, _slow_mqtt) = fan(&writer, "slow");
        let (quick, _quick_mqtt) = fan(&writer, "quick");
        slow.report(speed(1));
        let (_, path, _, _unanswered) = next(&mut server).await;
        assert_eq!(path, status_path("slow"));
        // The slow fan's write is never answered; the quick one writes on.
        for n in 1..=3 {
            quick.report(speed(n));
            assert_eq!(
                status_written(&mut server, "quick").await,
                json!({"rotatingSpeed": n})
            );
        }
        // Nor does the slow fan write again while its write is out.
        slow.report(speed(2));
        assert!(
            quiet(&mut server, Duration::from_secs(30)).await,
            "a second write of the same device was made at once"
        );
    }

    /// A fan's DeviceLink at `version`, with `refused` writes counted.
    fn link(version: &str, refused: i64) -> Arc<Link> {
        Arc::new(Link::from(
            serde_json::from_value::<devicelink_api::DeviceLink>(json!({
                "metadata": {"name": "fan", "namespace": "ns", "uid": "u1",
                             "resourceVersion": version},
                "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                         "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                                   "kind": "DummySpecialDevice"},
                         "template": {}},
                "status": {"refusedWrites": {"count": refused}},
            }))
            .unwrap(),
        ))
    }

    /// The next request, which must count refused writes on the fan's
    /// DeviceLink: the resourceVersion it was made at and what it counts.
    async fn refusals_counted(server: &mut ApiServer) -> (String, Value, Respond) {
        let (method, path, sent, respond) = next(server).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            (
                "PATCH",
                "/apis/edge.cattle.io/v1alpha1/namespaces/ns/devicelinks/fan/status"
            )
        );
        let version = sent["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        (
            version.to_string(),
            sent["status"]["refusedWrites"].clone(),
            respond,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn refused_writes_are_counted_at_most_every_ten_seconds_and_none_is_lost() {
        let (mut server, writer) = start(Duration::from_secs(5));
        let (fan, _mqtt) = fan(&writer, "fan");
        fan.refused("one".into());
        fan.refused("two".into());
        // Kept until the DeviceLink is known, then counted in one write.
        assert!(
            quiet(&mut server, Duration::from_secs(1)).await,
            "refusals counted without their DeviceLink"
        );
        fan.set_link(link("7", 5));
        let (version, counted, respond) = refusals_counted(&mut server).await;
        assert_eq!(version, "7");
        assert_eq!(
            (&counted["count"], &counted["lastMessage"]),
            (&json!(7), &json!("two"))
        );
        // Someone wrote the DeviceLink first: counted again on the newest
        // version, with what was refused meanwhile.
        answer(
            respond,
            StatusCode::CONFLICT,
            &json!({"kind": "Status", "code": 409}),
        );
        fan.refused("three".into());
        fan.set_link(link("8", 5));
        let (version, counted, respond) = refusals_counted(&mut server).await;
        assert_eq!(version, "8");
        assert_eq!(
            (&counted["count"], &counted["lastMessage"]),
            (&json!(8), &json!("three"))
        );
        let stored = json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
            "metadata": {"name": "fan", "namespace": "ns", "resourceVersion": "9"},
            "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                     "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                               "kind": "DummySpecialDevice"},
                     "template": {}}});
        answer(respond, StatusCode::OK, &stored);
        let written = Instant::now();

        fan.set_link(link("9", 8));
        fan.refused("four".into());
        let (version, counted, _) = refusals_counted(&mut server).await;
        assert!(Instant::now() - written >= refused_writes::AT_MOST_EVERY);
        assert_eq!(version, "9");
        assert_eq!(
            (&counted["count"], &counted["lastMessage"]),
            (&json!(9), &json!("four"))
        );
    }

    /// Fan `name`'s DeviceLink with every stage before DeviceConnected
    /// done: its condition is the adaptor's to write.
    fn ready_link(name: &str) -> Arc<Link> {
        let stages = [
            "NodeExisted",
            "ModelExisted",
            "AdaptorExisted",
            "DeviceCreated",
        ]
        .map(|t| json!({"type": t, "status": "True"}));
        Arc::new(Link::from(
            serde_json::from_value::<devicelink_api::DeviceLink>(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": name,
                             "resourceVersion": "1"},
                "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                         "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                                   "kind": "DummySpecialDevice"},
                         "template": {}},
                "status": {"conditions": stages},
            }))
            .unwrap(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_condition_is_written_before_statuses_that_waited_longer() {
        let (mut server, writer) = start(Duration::from_secs(5));
        // Every write the writer makes at once is out, unanswered.
        let mut busy = Vec::new();
        let mut out = Vec::new();
        for i in 0..WRITES_AT_ONCE {
            let (fan, mqtt) = fan(&writer, &format!("busy-{i}"));
            fan.report(speed(1));
            out.push(next(&mut server).await.3);
            busy.push((fan, mqtt));
        }
        // Statuses wait first, then one device's DeviceConnected.
        let mut waiting = Vec::new();
        for i in 0..3 {
            let (fan, mqtt) = fan(&writer, &format!("status-{i}"));
            fan.report(speed(1));
            waiting.push((fan, mqtt));
        }
        let (connecting, _mqtt) = fan(&writer, "connecting");
        connecting.set_link(ready_link("connecting"));
        connecting.set_connected(Outcome::ok("Connected"));
        tokio::time::sleep(Duration::from_secs(1)).await;

        // One write is free: the condition takes it.
        answer(out.pop().unwrap(), StatusCode::OK, &json!({}));
        let (method, path, sent, _) = next(&mut server).await;
        assert_eq!(
            (method.as_str(), path.as_str()),
            (
                "PATCH",
                "/apis/edge.cattle.io/v1alpha1/namespaces/ns/devicelinks/connecting/status"
            ),
            "a status went before the DeviceConnected that was due: {sent}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_written_for_a_device_that_is_gone() {
        let (mut server, writer) = start(Duration::from_secs(5));
        let (fan, _mqtt) = fan(&writer, "fan");
        fan.close();
        fan.report(speed(1));
        assert!(
            quiet(&mut server, Duration::from_secs(30)).await,
            "a gone device's status was written"
        );
    }

    /// Each device has its report for as long as it runs: memory per
    /// device. Prints its size (docs/benchmarks.md quotes it).
    #[test]
    fn what_a_waiting_device_costs_stays_small() {
        let sizes = [("report", std::mem::size_of::<Report>())];
        eprintln!("per-device state, bytes: {sizes:?}");
        for (what, size) in sizes {
            assert!(size <= 512, "the {what} takes {size} bytes");
        }
    }
}
