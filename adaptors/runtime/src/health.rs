//! What the adaptor's `/readyz` and `/healthz` answer.
//!
//! Ready means the adaptor has listed its devices and their DeviceLinks and
//! started a task for every device listed, so the operator's AdaptorExisted
//! (which follows the pod's readiness) says the devices are being served.
//! Alive means the loop that owns the devices still turns: it beats on a
//! timer, so a loop stuck on a lock or a blocking call stops beating and the
//! kubelet restarts the pod.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// How often the device loop beats when nothing else happens.
pub(crate) const BEAT: Duration = Duration::from_secs(5);
/// Silence after which the loop counts as stuck: several missed beats, so a
/// busy machine does not restart a healthy adaptor.
const STUCK_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct Health {
    started: Instant,
    devices_listed: AtomicBool,
    links_listed: AtomicBool,
    /// Milliseconds after `started` of the loop's last beat.
    last_beat: AtomicU64,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            started: Instant::now(),
            devices_listed: AtomicBool::new(false),
            links_listed: AtomicBool::new(false),
            last_beat: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// The device watch has listed every device and a task runs for each.
    pub(crate) fn devices_listed(&self) {
        self.devices_listed.store(true, Ordering::Relaxed);
    }

    /// The DeviceLink watch has listed this adaptor's DeviceLinks.
    pub(crate) fn links_listed(&self) {
        self.links_listed.store(true, Ordering::Relaxed);
    }

    /// The device loop is turning.
    pub(crate) fn beat(&self) {
        self.last_beat
            .store(self.since_start().as_millis() as u64, Ordering::Relaxed);
    }

    /// Ok when ready; otherwise what is still awaited.
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        match (
            self.devices_listed.load(Ordering::Relaxed),
            self.links_listed.load(Ordering::Relaxed),
        ) {
            (true, true) => Ok(()),
            (false, true) => Err("devices not listed yet (watch of this node's devices)"),
            (true, false) => Err("DeviceLinks not listed yet (watch of this node's DeviceLinks)"),
            (false, false) => Err("devices and DeviceLinks not listed yet"),
        }
    }

    /// Ok while the device loop beats; otherwise how long it has been quiet.
    pub(crate) fn liveness(&self) -> Result<(), String> {
        let last = Duration::from_millis(self.last_beat.load(Ordering::Relaxed));
        let quiet = self.since_start().saturating_sub(last);
        if quiet > STUCK_AFTER {
            Err(format!(
                "the device loop has not turned for {}s",
                quiet.as_secs()
            ))
        } else {
            Ok(())
        }
    }

    fn since_start(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_both_lists_are_in() {
        let health = Health::default();
        assert!(health.readiness().is_err());
        health.devices_listed();
        assert_eq!(
            health.readiness(),
            Err("DeviceLinks not listed yet (watch of this node's DeviceLinks)")
        );
        health.links_listed();
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn alive_while_beating_and_not_after_a_long_silence() {
        let health = Health::default();
        health.beat();
        assert!(health.liveness().is_ok());
        let stuck = Health {
            started: Instant::now()
                .checked_sub(STUCK_AFTER + Duration::from_secs(1))
                .expect("the machine has been up for a minute"),
            ..Health::default()
        };
        let why = stuck.liveness().unwrap_err();
        assert!(why.contains("has not turned for 61s"), "{why}");
        stuck.beat();
        assert!(stuck.liveness().is_ok());
    }
}
