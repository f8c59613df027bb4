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

use std::{
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::time::Instant;

pub(crate) struct StatusBudget {
    /// Time between two writes.
    spacing: Duration,
    /// When the next write may go.
    next: Mutex<Instant>,
    written: Counter<u64, AtomicU64>,
    waiting: Gauge,
}

impl StatusBudget {
    /// A budget of `per_second` writes a second (at least one a minute).
    pub(crate) fn new(per_second: f64) -> StatusBudget {
        let per_second = per_second.max(1.0 / 60.0);
        StatusBudget {
            spacing: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
            written: Counter::default(),
            waiting: Gauge::default(),
        }
    }

    /// Takes the next free turn to write; the device writes when it comes
    /// ([`Turn::at`]), and counts as waiting until then or until the turn
    /// is dropped.
    pub(crate) fn reserve(self: &Arc<Self>) -> Turn {
        let at = {
            let mut next = self.next.lock().unwrap();
            let slot = (*next).max(Instant::now());
            *next = slot + self.spacing;
            slot
        };
        self.waiting.inc();
        Turn {
            at,
            budget: self.clone(),
        }
    }

    /// A status write was made.
    pub(crate) fn wrote(&self) {
        self.written.inc();
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
}
