//! The pace of a discovery scan: its requests, one at a time at the
//! discovery's rate, for all of its probes together, so a scan never asks
//! more of a network or of a device than the discovery allows.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::sync::Mutex;

/// Turns for a scan's requests, connects included.
pub struct Pace {
    ticks: Mutex<tokio::time::Interval>,
    turns: AtomicU64,
}

impl Pace {
    pub fn new(per_second: u32) -> Pace {
        let period = Duration::from_secs(1) / per_second.max(1);
        let mut ticks = tokio::time::interval(period);
        // A probe that was slow does not earn a burst afterwards.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pace {
            ticks: Mutex::new(ticks),
            turns: AtomicU64::new(0),
        }
    }

    /// Waits for the next request's turn.
    pub async fn turn(&self) {
        self.ticks.lock().await.tick().await;
        self.turns.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns given so far: the requests made, connects included.
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }
}
