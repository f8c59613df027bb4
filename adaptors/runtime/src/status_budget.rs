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

/// How long a device waiting for its turn is left before it looks again:
/// when the budget comes back, turns come sooner than the device was told.
pub(crate) const LOOK_AGAIN_WITHIN: Duration = Duration::from_secs(5);

pub(crate) struct StatusBudget {
    /// Time between two writes at the whole budget.
    spacing: Duration,
    pace: Mutex<Pace>,
    written: Counter<u64, AtomicU64>,
    waiting: Gauge,
    /// The budget now, in writes a second.
    rate: Gauge<f64, AtomicU64>,
}

/// Turns are numbered tickets, and a ticket's time is worked out from the
/// spacing in force when it is asked for: a device that took its turn while
/// the budget was low does not keep the low budget's time once it is back.
struct Pace {
    /// The ticket whose turn is at `base_at`.
    base_ticket: u64,
    base_at: Instant,
    /// The ticket the next reservation gets.
    next_ticket: u64,
    /// The share of the budget given now (LEAST_SHARE to 1).
    share: f64,
    /// When the share last changed.
    changed: Instant,
}

impl Pace {
    fn at(&self, ticket: u64, spacing: Duration) -> Instant {
        let ahead = ticket.saturating_sub(self.base_ticket) as f64;
        self.base_at + spacing.div_f64(self.share).mul_f64(ahead)
    }
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
                base_ticket: 0,
                base_at: Instant::now(),
                next_ticket: 0,
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
        let ticket = {
            let mut pace = self.pace.lock().unwrap();
            let ticket = pace.next_ticket;
            pace.next_ticket += 1;
            let now = Instant::now();
            if pace.at(ticket, self.spacing) < now {
                // Idle for a while: this one goes now, not after a burst of
                // the turns nobody took.
                (pace.base_ticket, pace.base_at) = (ticket, now);
            }
            ticket
        };
        self.waiting.inc();
        Turn {
            ticket,
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
            // The ticket whose turn it is now goes on from now at the new
            // spacing.
            if now > pace.base_at {
                let passed = (now - pace.base_at).as_secs_f64();
                let served = (passed / self.spacing.div_f64(pace.share).as_secs_f64()) as u64;
                pace.base_ticket = (pace.base_ticket + served).min(pace.next_ticket);
                pace.base_at = now;
            }
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
    ticket: u64,
    budget: Arc<StatusBudget>,
}

impl Turn {
    /// When the turn comes, at the budget in force now.
    pub(crate) fn at(&self) -> Instant {
        let pace = self.budget.pace.lock().unwrap();
        pace.at(self.ticket, self.budget.spacing)
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

    #[tokio::test(start_paused = true)]
    async fn turns_taken_while_the_budget_was_low_come_sooner_once_it_is_back() {
        let budget = Arc::new(StatusBudget::new(100.0));
        for _ in 0..5 {
            tokio::time::sleep(SETTLE).await;
            budget.wrote(BUSY * 2);
        }
        assert_eq!(budget.rate.get(), 5.0);
        let start = Instant::now();
        let turns: Vec<Turn> = (0..100).map(|_| budget.reserve()).collect();
        let last = |turns: &[Turn]| (turns[99].at() - start).as_secs_f64();
        assert_eq!(last(&turns).round(), 20.0, "99 turns 200 ms apart");
        // A second on, writes are quick: the budget goes to 10 a second,
        // and the turns not yet come are 100 ms apart from then.
        tokio::time::sleep(SETTLE).await;
        budget.wrote(BUSY / 2);
        assert_eq!(budget.rate.get(), 10.0);
        assert_eq!(
            last(&turns).round(),
            10.0,
            "five served, 94 to go at 100 ms"
        );
        assert!(turns[0].at() <= Instant::now(), "the first is still due");
    }
}
