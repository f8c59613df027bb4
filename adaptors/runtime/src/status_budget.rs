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
    sync::{Mutex, atomic::AtomicU64},
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

    /// Waits for this device's turn to write.
    pub(crate) async fn turn(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap();
            let slot = (*next).max(Instant::now());
            *next = slot + self.spacing;
            slot
        };
        self.waiting.inc();
        tokio::time::sleep_until(slot).await;
        self.waiting.dec();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_are_spaced_to_the_budget_first_come_first_served() {
        let budget = std::sync::Arc::new(StatusBudget::new(10.0));
        let start = Instant::now();
        let mut turns = Vec::new();
        for _ in 0..5 {
            let budget = budget.clone();
            turns.push(tokio::spawn(async move {
                budget.turn().await;
                Instant::now() - start
            }));
        }
        let mut at = Vec::new();
        for t in turns {
            at.push(t.await.unwrap().as_millis());
        }
        assert_eq!(at, [0, 100, 200, 300, 400]);
        // Idle for a while: the next goes at once, not in a burst of the
        // turns it missed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        budget.turn().await;
        budget.turn().await;
        assert_eq!((Instant::now() - before).as_millis(), 100);
    }
}
