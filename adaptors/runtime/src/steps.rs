//! Devices driven as steps: protocol code that never waits (a simulation,
//! a computed value) is a state the runtime calls when something is due,
//! instead of a task of its own per device. One task steps every device of
//! a model: it holds each device's context and state and a heap of due
//! ticks, and is rung when a device's spec changes, a write arrives or the
//! device goes. At ten thousand devices a task each took about 1.1 KiB a
//! device (the task, its futures and its timer); a stepped device is its
//! context and its state.
//!
//! A step must not block or wait: it holds up the other devices of its
//! model. Protocol code that does I/O is driven with
//! [`crate::Adaptor::drive`], a task per device.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use tracing::error;

use crate::{
    Reason,
    context::{Change, DeviceContext},
    health::{self, LoopHealth},
    model::Model,
};

/// A device's protocol code as steps. Each call gets the device's context
/// (to report its status, set DeviceConnected, answer writes) and must
/// return without waiting.
pub trait Steps: Sized + Send + 'static {
    /// The device model it drives.
    type Model: Model;

    /// A device starts (or starts again after a panic): its first state.
    fn start(ctx: &DeviceContext<Self::Model>) -> Self;

    /// Its spec (or a value it refers to) changed, or a write arrived
    /// ([`DeviceContext::decode_write`], [`DeviceContext::answer_write`]).
    fn changed(&mut self, ctx: &DeviceContext<Self::Model>, change: Change<Self::Model>);

    /// Time between two ticks; `None` for no ticks. Asked after every
    /// call: a new period starts counting from then, the same period goes
    /// on as it was.
    fn period(&self) -> Option<Duration>;

    /// The period has passed since the last tick (or since it was set).
    fn tick(&mut self, ctx: &DeviceContext<Self::Model>);
}

/// A device's place in its stepper.
pub(crate) type DeviceId = u64;

/// Hands devices of model `K` to their stepper, and rings it for one.
pub(crate) struct Doorbell<K: Model> {
    rung: Arc<Rung>,
    adopt: mpsc::UnboundedSender<(DeviceId, DeviceContext<K>)>,
}

#[derive(Default)]
struct Rung {
    ids: Mutex<Vec<DeviceId>>,
    notify: Notify,
}

impl Rung {
    fn ring(&self, id: DeviceId) {
        self.ids.lock().unwrap().push(id);
        self.notify.notify_one();
    }
}

impl<K: Model> Doorbell<K> {
    /// Hands a new device to the stepper, as `id`.
    pub(crate) fn adopt(&self, id: DeviceId, ctx: DeviceContext<K>) {
        let rung = self.rung.clone();
        ctx.on_write(move || rung.ring(id));
        // Refused only once the stepper stopped: so has the adaptor.
        let _ = self.adopt.send((id, ctx));
    }

    /// What rings the stepper for device `id`, to keep with the device.
    pub(crate) fn bell(&self, id: DeviceId) -> Bell {
        Bell {
            rung: self.rung.clone(),
            id,
        }
    }
}

/// Rings a stepped device's stepper for it.
pub(crate) struct Bell {
    rung: Arc<Rung>,
    id: DeviceId,
}

impl Bell {
    /// Something of the device changed: its spec, or it was removed.
    pub(crate) fn ring(&self) {
        self.rung.ring(self.id);
    }
}

/// One device in the stepper.
struct Stepped<S: Steps> {
    ctx: DeviceContext<S::Model>,
    /// `None` from a panic until it starts again.
    state: Option<S>,
    /// When its next tick (or its start after a panic) is due.
    due: Option<Instant>,
    /// Panics in a row, for the wait before the next start.
    panics: u8,
}

/// Steps every device of one model, until the doorbell is dropped.
pub(crate) fn start<S: Steps>(health: Arc<LoopHealth>) -> Doorbell<S::Model> {
    let (adopt, adopted) = mpsc::unbounded_channel();
    let rung = Arc::new(Rung::default());
    let stepper = Stepper::<S> {
        devices: HashMap::new(),
        due: BinaryHeap::new(),
        rung: rung.clone(),
        health,
    };
    tokio::spawn(stepper.run(adopted));
    Doorbell { rung, adopt }
}

struct Stepper<S: Steps> {
    devices: HashMap<DeviceId, Stepped<S>>,
    /// Due ticks, earliest first; an entry whose time is no longer its
    /// device's `due` is stale and skipped.
    due: BinaryHeap<Reverse<(Instant, DeviceId)>>,
    rung: Arc<Rung>,
    health: Arc<LoopHealth>,
}

impl<S: Steps> Stepper<S> {
    async fn run(
        mut self,
        mut adopted: mpsc::UnboundedReceiver<(DeviceId, DeviceContext<S::Model>)>,
    ) {
        // It lists nothing: ready as soon as it runs.
        self.health.devices_listed();
        self.health.links_listed();
        let mut beat = tokio::time::interval(health::BEAT);
        loop {
            self.health.beat();
            let next = self.due.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                biased;
                device = adopted.recv() => match device {
                    Some((id, ctx)) => self.adopt(id, ctx),
                    None => break,
                },
                () = self.rung.notify.notified() => {
                    let ids = std::mem::take(&mut *self.rung.ids.lock().unwrap());
                    for id in ids {
                        self.look_at(id);
                        tokio::task::consume_budget().await;
                    }
                }
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.tick_due().await;
                }
                _ = beat.tick() => {}
            }
        }
    }

    fn adopt(&mut self, id: DeviceId, ctx: DeviceContext<S::Model>) {
        let mut stepped = Stepped {
            ctx,
            state: None,
            due: None,
            panics: 0,
        };
        stepped.begin();
        self.schedule(id, stepped.due);
        self.devices.insert(id, stepped);
        // Whatever changed while it was on its way.
        self.look_at(id);
    }

    /// Device `id` was rung: hands it what changed, or lets it go.
    fn look_at(&mut self, id: DeviceId) {
        let Some(stepped) = self.devices.get_mut(&id) else {
            return;
        };
        let before = stepped.due;
        let removed = loop {
            if stepped.ctx.removed() {
                break true;
            }
            if stepped.state.is_none() {
                // Waiting to start again: its writes wait in its mailbox
                // (looked at once it has started), its new spec is read
                // when it starts.
                break false;
            }
            match stepped.ctx.next_change() {
                Err(_) => break true,
                Ok(None) => break false,
                Ok(Some(change)) => stepped.changed(change),
            }
        };
        let due = stepped.due;
        if removed {
            self.devices.remove(&id);
        } else if due != before {
            self.schedule(id, due);
        }
    }

    /// Ticks (or starts again) every device whose time has come.
    async fn tick_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(stepped) = self.devices.get_mut(&id) else {
                continue;
            };
            if stepped.due != Some(at) {
                continue; // rescheduled since
            }
            let starting = stepped.state.is_none();
            stepped.tick();
            let due = stepped.due;
            self.schedule(id, due);
            if starting {
                self.look_at(id); // what arrived while it waited
            }
            tokio::task::consume_budget().await;
        }
    }

    fn schedule(&mut self, id: DeviceId, due: Option<Instant>) {
        if let Some(at) = due {
            self.due.push(Reverse((at, id)));
        }
    }
}

impl<S: Steps> Stepped<S> {
    /// Starts its state (again).
    fn begin(&mut self) {
        let ctx = &self.ctx;
        match std::panic::catch_unwind(AssertUnwindSafe(|| S::start(ctx))) {
            Ok(state) => {
                self.state = Some(state);
                self.ticks_from_now();
            }
            Err(payload) => self.panicked(payload),
        }
    }

    fn changed(&mut self, change: Change<S::Model>) {
        let Some(state) = self.state.as_mut() else {
            return; // not asked for while it waits to start (look_at)
        };
        let before = state.period();
        let ctx = &self.ctx;
        match std::panic::catch_unwind(AssertUnwindSafe(|| state.changed(ctx, change))) {
            // A new period counts from now; the same one goes on.
            Ok(()) if state.period() != before => self.ticks_from_now(),
            Ok(()) => {}
            Err(payload) => self.panicked(payload),
        }
    }

    fn tick(&mut self) {
        let Some(state) = self.state.as_mut() else {
            // Its wait after a panic is over: a new run, with a new context
            // so that nothing the panic left half done is used again.
            self.ctx = self.ctx.renew();
            self.begin();
            return;
        };
        let ctx = &self.ctx;
        match std::panic::catch_unwind(AssertUnwindSafe(|| state.tick(ctx))) {
            Ok(()) => {
                self.panics = 0;
                self.ticks_from_now();
            }
            Err(payload) => self.panicked(payload),
        }
    }

    /// The next tick one period from now, if the state ticks.
    fn ticks_from_now(&mut self) {
        let period = self.state.as_ref().and_then(S::period);
        self.due = period.map(|p| Instant::now() + p.max(SHORTEST_PERIOD));
    }

    fn panicked(&mut self, payload: Box<dyn std::any::Any + Send>) {
        self.state = None;
        let wait = wait_after(self.panics);
        self.panics = self.panics.saturating_add(1);
        let panic = crate::supervise::what(payload);
        let device = self.ctx.key();
        error!(%device, %panic, retry_in = ?wait, "the device's steps panicked; starting it again");
        self.ctx
            .set_connected(Reason::InternalError.outcome(format!(
                "the adaptor's steps for this device failed ({panic}); started again in {}s",
                wait.as_secs()
            )));
        self.due = Some(Instant::now() + wait);
    }
}

/// Ticks come no closer together than this, whatever a state asks: a
/// period of zero would keep the stepper from its other devices.
const SHORTEST_PERIOD: Duration = Duration::from_millis(10);

/// The longest wait before a device whose steps panicked starts again.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The wait after `panics` panics in a row before this one: Backoff's
/// schedule (1 s doubling to 10 s), kept as a count of panics, a byte a
/// device instead of a Backoff's 32.
fn wait_after(panics: u8) -> Duration {
    Duration::from_secs(1 << panics.min(4)).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{self, Kept, tests::fan};
    use devicelink_api::dummy::{DummySpecialDevice, Gear};
    use devicelink_cells::latest;
    use devicelink_mqtt::inbound::WriteRequest;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn health() -> Arc<LoopHealth> {
        crate::health::Health::default().add_loop("DummySpecialDevice steps")
    }

    /// Counts its ticks; a fast fan ticks every second, a slow one every
    /// three.
    struct Counter {
        ticks: u32,
        gear: Gear,
        writes: u32,
    }

    impl Counter {
        fn report(&self, ctx: &DeviceContext<DummySpecialDevice>) {
            ctx.report(&serde_json::json!({
                "ticks": self.ticks, "gear": self.gear, "writes": self.writes,
            }));
        }
    }

    impl Steps for Counter {
        type Model = DummySpecialDevice;

        fn start(ctx: &DeviceContext<DummySpecialDevice>) -> Self {
            let counter = Counter {
                ticks: 0,
                gear: ctx.device().spec.gear,
                writes: 0,
            };
            counter.report(ctx);
            counter
        }

        fn changed(
            &mut self,
            ctx: &DeviceContext<DummySpecialDevice>,
            change: Change<DummySpecialDevice>,
        ) {
            match change {
                Change::Spec(device) => self.gear = device.spec.gear,
                Change::Write(_) => self.writes += 1,
            }
            self.report(ctx);
        }

        fn period(&self) -> Option<Duration> {
            Some(match self.gear {
                Gear::Fast => Duration::from_secs(1),
                _ => Duration::from_secs(3),
            })
        }

        fn tick(&mut self, ctx: &DeviceContext<DummySpecialDevice>) {
            self.ticks += 1;
            self.report(ctx);
        }
    }

    fn reported(report: &crate::writer::Report) -> serde_json::Value {
        serde_json::from_str(&report.seen().0.expect("a status reported")).unwrap()
    }

    /// A fan handed to a new stepper of `S` as device `id`: the sender of
    /// its spec, its report, its handles and the stepper's doorbell.
    fn stepped<S: Steps<Model = DummySpecialDevice>>(
        id: DeviceId,
    ) -> (
        latest::Sender<context::Spec<DummySpecialDevice>>,
        Arc<crate::writer::Report>,
        Arc<context::Handles>,
        Doorbell<DummySpecialDevice>,
    ) {
        let doorbell = start::<S>(health());
        let (spec, ctx, report) = context::test_context(fan());
        let handles = context::handles_of(&ctx);
        doorbell.adopt(id, ctx);
        (spec, report, handles, doorbell)
    }

    fn write() -> WriteRequest {
        WriteRequest {
            payload: b"{}".to_vec(),
            reply_topic: "fan/set/$reply".into(),
            correlation: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stepped_device_ticks_takes_changes_and_writes_and_goes_when_removed() {
        let (spec, report, handles, doorbell) = stepped::<Counter>(7);
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(
            reported(&report),
            serde_json::json!({"ticks": 3, "gear": "fast", "writes": 0})
        );

        // A slower gear: its period counts from the change.
        let mut slow = fan();
        slow.spec.gear = Gear::Slow;
        slow.metadata.generation = Some(4);
        spec.send_modify(|s| s.device = Kept::new(slow));
        doorbell.bell(7).ring();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(reported(&report)["gear"], "slow");
        tokio::time::sleep(Duration::from_millis(2_800)).await;
        assert_eq!(
            reported(&report)["ticks"],
            3,
            "not ticked before its period"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(reported(&report)["ticks"], 4);

        // A write rings the stepper by itself.
        assert!(handles.mqtt.writes.offer(write()).is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(reported(&report)["writes"], 1);

        report.close();
        doorbell.bell(7).ring();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            Arc::strong_count(&handles),
            1,
            "the stepper let go of the removed device"
        );
    }

    #[test]
    fn a_panicking_device_waits_as_a_supervised_task_does() {
        let mut backoff = crate::Backoff::new();
        for panics in 0..8 {
            assert_eq!(
                wait_after(panics),
                backoff.after_failure(),
                "after {panics}"
            );
        }
    }

    static FRAGILE_STARTS: AtomicUsize = AtomicUsize::new(0);
    static FRAGILE_WRITES: AtomicUsize = AtomicUsize::new(0);

    /// Panics on the first tick of its first run.
    struct Fragile;

    impl Steps for Fragile {
        type Model = DummySpecialDevice;

        fn start(ctx: &DeviceContext<DummySpecialDevice>) -> Self {
            FRAGILE_STARTS.fetch_add(1, Ordering::SeqCst);
            ctx.set_connected(Reason::Healthy.outcome(""));
            Fragile
        }

        fn changed(
            &mut self,
            _: &DeviceContext<DummySpecialDevice>,
            change: Change<DummySpecialDevice>,
        ) {
            if matches!(change, Change::Write(_)) {
                FRAGILE_WRITES.fetch_add(1, Ordering::SeqCst);
            }
        }

        fn period(&self) -> Option<Duration> {
            Some(Duration::from_secs(1))
        }

        fn tick(&mut self, _: &DeviceContext<DummySpecialDevice>) {
            assert!(FRAGILE_STARTS.load(Ordering::SeqCst) > 1, "bad tick");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_step_is_reported_and_the_device_started_again() {
        let (_spec, report, handles, _doorbell) = stepped::<Fragile>(1);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let outcome = report.seen().1.expect("DeviceConnected set");
        assert_eq!(outcome.reason, "InternalError");
        assert!(
            outcome.message.contains("bad tick") && outcome.message.contains("again in 1s"),
            "{}",
            outcome.message
        );
        assert_eq!(FRAGILE_STARTS.load(Ordering::SeqCst), 1);
        // A write while it waits to start again is kept for it.
        assert!(handles.mqtt.writes.offer(write()).is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(FRAGILE_WRITES.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(FRAGILE_STARTS.load(Ordering::SeqCst), 2, "started again");
        assert_eq!(FRAGILE_WRITES.load(Ordering::SeqCst), 1, "the write taken");
        assert_eq!(report.seen().1.unwrap().reason, "Healthy");
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert_eq!(report.seen().1.unwrap().reason, "Healthy", "ticks again");
    }
}
