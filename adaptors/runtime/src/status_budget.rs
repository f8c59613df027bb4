//! The adaptor's budget of device status writes to the API server.
//!
//! Each device writes its status at most once per `--status-interval`, but
//! ten thousand devices doing that would be two thousand writes a second
//! from one pod, more than a small cluster's API server takes besides its
//! other work. So the adaptor as a whole writes at most
//! `--status-writes-per-second`: devices take turns, first come first
//! served, and a device whose turn comes writes its newest status (what
//! changed while it waited is not written in between). Values move on MQTT
//! at the devices' pace either way.
//!
//! The budget also gives way to a busy API server. A status write that
//! takes longer than [`BUSY`] waited in the API server's queue behind other
//! work: DeviceLinks being applied, devices being made, or other clients.
//! Status writes are the adaptor's one kind of write that can wait (the
//! newest value is on MQTT; DeviceConnected does not take turns here), so
//! the budget halves, at most once a second and down to a twentieth, and
//! comes back by a twentieth a second while writes are quick again.

use std::{
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::time::Instant;

/// A status write that takes longer than this says the API server is busy.
pub(crate) const BUSY: Duration = Duration::from_millis(200);
/// The least share of `--status-writes-per-second` the budget gives way to.
const LEAST_SHARE: f64 = 1.0 / 20.0;
/// How much of the budget comes back each second writes are quick.
const RECOVERY: f64 = 1.0 / 20.0;
/// Least time between two changes of the share: the writes in flight when
/// the API server became busy all come back slow, and count once.
const SETTLE: Duration = Duration::from_secs(1);

pub(crate) struct StatusBudget {
    /// Time between two writes at the whole budget.
    spacing: Duration,
    pace: Mutex<Pace>,
    written: Counter<u64, AtomicU64>,
    waiting: Gauge,
    /// The budget now, in writes a second.
    rate: Gauge<f64, AtomicU64>,
}

struct Pace {
    /// When the next write may go.
    next: Instant,
    /// The share of the budget given now (LEAST_SHARE to 1).
    share: f64,
    /// When the share last changed.
    changed: Instant,
}

impl StatusBudget {
    /// A budget of `per_second` writes a second (at least one a minute).
    pub(crate) fn new(per_second: f64) -> StatusBudget {
        let per_second = per_second.max(1.0 / 60.0);
        let rate = Gauge::default();
        rate.set(per_second);
        StatusBudget {
            spacing: Duration::from_secs_f64(1.0 / per_second),
            pace: Mutex::new(Pace {
                next: Instant::now(),
                share: 1.0,
                changed: Instant::now(),
            }),
            written: Counter::default(),
            waiting: Gauge::default(),
            rate,
        }
    }

    /// Takes the next free turn to write; the device writes when it comes
    /// ([`Turn::at`]), and counts as waiting until then or until the turn
    /// is dropped.
    pub(crate) fn reserve(self: &Arc<Self>) -> Turn {
        let at = {
            let mut pace = self.pace.lock().unwrap();
            let slot = pace.next.max(Instant::now());
            pace.next = slot + self.spacing.div_f64(pace.share);
            slot
        };
        self.waiting.inc();
        Turn {
            at,
            budget: self.clone(),
        }
    }

    /// A status write was made, and took `took`.
    pub(crate) fn wrote(&self, took: Duration) {
        self.written.inc();
        let now = Instant::now();
        let mut pace = self.pace.lock().unwrap();
        if now - pace.changed < SETTLE {
            return;
        }
        let share = if took > BUSY {
            (pace.share / 2.0).max(LEAST_SHARE)
        } else {
            (pace.share + RECOVERY).min(1.0)
        };
        if share != pace.share {
            (pace.share, pace.changed) = (share, now);
            self.rate.set(share / self.spacing.as_secs_f64());
        }
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "status_writes",
            "Device status writes to the API server",
            self.written.clone(),
        );
        registry.register(
            "status_writes_waiting",
            "Devices waiting for their turn to write their status (--status-writes-per-second)",
            self.waiting.clone(),
        );
        registry.register(
            "status_write_rate",
            "Device status writes a second the adaptor allows itself now: --status-writes-per-second, less while the API server is busy",
            self.rate.clone(),
        );
    }
}

/// A device's turn to write its status.
pub(crate) struct Turn {
    at: Instant,
    budget: Arc<StatusBudget>,
}

impl Turn {
    /// When the turn comes.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.budget.waiting.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_are_spaced_to_the_budget_first_come_first_served() {
        let budget = Arc::new(StatusBudget::new(10.0));
        let start = Instant::now();
        let turns: Vec<Turn> = (0..5).map(|_| budget.reserve()).collect();
        let at: Vec<u128> = turns.iter().map(|t| (t.at() - start).as_millis()).collect();
        assert_eq!(at, [0, 100, 200, 300, 400]);
        assert_eq!(budget.waiting.get(), 5);
        drop(turns);
        assert_eq!(budget.waiting.get(), 0, "a dropped turn no longer waits");
        // Idle for a while: the next goes at once, not in a burst of the
        // turns it missed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = Instant::now();
        let (first, second) = (budget.reserve(), budget.reserve());
        assert_eq!(first.at(), now);
        assert_eq!((second.at() - now).as_millis(), 100);
    }

    /// The spacing of the next two turns, in ms.
    fn spacing(budget: &Arc<StatusBudget>) -> u128 {
        let (a, b) = (budget.reserve(), budget.reserve());
        ((b.at() - a.at()).as_secs_f64() * 1000.0).round() as u128
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_api_server_halves_the_budget_once_a_second_down_to_a_twentieth() {
        let budget = Arc::new(StatusBudget::new(100.0));
        let slow = BUSY + Duration::from_millis(1);
        tokio::time::sleep(SETTLE).await;
        budget.wrote(slow);
        // The writes in flight with it come back slow too: one halving.
        budget.wrote(slow);
        budget.wrote(slow);
        assert_eq!(budget.rate.get(), 50.0);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(spacing(&budget), 20);
        for _ in 0..6 {
            tokio::time::sleep(SETTLE).await;
            budget.wrote(slow);
        }
        assert_eq!(budget.rate.get(), 5.0, "no less than a twentieth");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(spacing(&budget), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn quick_writes_bring_the_budget_back_a_twentieth_a_second() {
        let budget = Arc::new(StatusBudget::new(100.0));
        tokio::time::sleep(SETTLE).await;
        budget.wrote(Duration::from_secs(2));
        assert_eq!(budget.rate.get(), 50.0);
        let quick = Duration::from_millis(20);
        budget.wrote(quick);
        assert_eq!(budget.rate.get(), 50.0, "not within the same second");
        let mut rates = vec![];
        for _ in 0..12 {
            tokio::time::sleep(SETTLE).await;
            budget.wrote(quick);
            rates.push(budget.rate.get().round() as u32);
        }
        assert_eq!(rates, [55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 100, 100]);
    }
}
