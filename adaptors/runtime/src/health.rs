//! What the adaptor's `/readyz` and `/healthz` answer.
//!
//! An adaptor runs one loop per device model it drives. Ready means every
//! loop has listed its devices and their DeviceLinks and started a task for
//! every device listed, so the operator's AdaptorExisted (which follows the
//! pod's readiness) says the devices are being served. Alive means every
//! loop still turns: each beats on a timer, so a loop stuck on a lock or a
//! blocking call stops beating and the kubelet restarts the pod.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How often a device loop beats when nothing else happens.
pub(crate) const BEAT: Duration = Duration::from_secs(5);
/// Silence after which a loop counts as stuck: several missed beats, so a
/// busy machine does not restart a healthy adaptor.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// The health of the whole adaptor: its loops.
#[derive(Default)]
pub(crate) struct Health {
    loops: Vec<Arc<LoopHealth>>,
}

/// The health of the loop of one device model.
pub(crate) struct LoopHealth {
    /// The model's kind, to name the loop in answers.
    model: String,
    started: Instant,
    devices_listed: AtomicBool,
    links_listed: AtomicBool,
    /// Milliseconds after `started` of the loop's last beat.
    last_beat: AtomicU64,
}

impl Health {
    /// A loop for `model`, to be reported on by that loop.
    pub(crate) fn add_loop(&mut self, model: &str) -> Arc<LoopHealth> {
        let part = Arc::new(LoopHealth::new(model));
        self.loops.push(part.clone());
        part
    }

    /// Ok when every loop is ready; otherwise what is still awaited.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        let waiting: Vec<String> = self
            .loops
            .iter()
            .filter_map(|l| l.readiness().err())
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    /// Ok while every loop beats; otherwise which does not.
    pub(crate) fn liveness(&self) -> Result<(), String> {
        let stuck: Vec<String> = self
            .loops
            .iter()
            .filter_map(|l| l.liveness().err())
            .collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(stuck.join("; "))
        }
    }
}

impl LoopHealth {
    fn new(model: &str) -> LoopHealth {
        LoopHealth {
            model: model.to_string(),
            started: Instant::now(),
            devices_listed: AtomicBool::new(false),
            links_listed: AtomicBool::new(false),
            last_beat: AtomicU64::new(0),
        }
    }

    /// The device watch has listed every device and a task runs for each.
    pub(crate) fn devices_listed(&self) {
        self.devices_listed.store(true, Ordering::Relaxed);
    }

    /// The DeviceLink watch has listed this loop's DeviceLinks.
    pub(crate) fn links_listed(&self) {
        self.links_listed.store(true, Ordering::Relaxed);
    }

    /// The loop is turning.
    pub(crate) fn beat(&self) {
        self.last_beat
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn readiness(&self) -> Result<(), String> {
        let waiting = match (
            self.devices_listed.load(Ordering::Relaxed),
            self.links_listed.load(Ordering::Relaxed),
        ) {
            (true, true) => return Ok(()),
            (false, true) => "devices",
            (true, false) => "DeviceLinks",
            (false, false) => "devices and DeviceLinks",
        };
        Err(format!(
            "{}: {waiting} of this node not listed yet",
            self.model
        ))
    }

    fn liveness(&self) -> Result<(), String> {
        let last = Duration::from_millis(self.last_beat.load(Ordering::Relaxed));
        let quiet = self.started.elapsed().saturating_sub(last);
        if quiet > STUCK_AFTER {
            Err(format!(
                "{}: the device loop has not turned for {}s",
                self.model,
                quiet.as_secs()
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_every_loop_has_both_lists() {
        let mut health = Health::default();
        let fans = health.add_loop("DummySpecialDevice");
        let robots = health.add_loop("DummyProtocolDevice");
        assert!(health.readiness().is_err());
        fans.devices_listed();
        fans.links_listed();
        robots.devices_listed();
        assert_eq!(
            health.readiness(),
            Err("DummyProtocolDevice: DeviceLinks of this node not listed yet".into())
        );
        robots.links_listed();
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn alive_while_every_loop_beats() {
        let mut health = Health::default();
        let beating = health.add_loop("ModbusDevice");
        beating.beat();
        assert!(health.liveness().is_ok());
        let mut stuck = LoopHealth::new("OPCUADevice");
        stuck.started = Instant::now()
            .checked_sub(STUCK_AFTER + Duration::from_secs(1))
            .expect("the machine has been up for a minute");
        let stuck = Arc::new(stuck);
        health.loops.push(stuck.clone());
        let why = health.liveness().unwrap_err();
        assert!(
            why.starts_with("OPCUADevice: the device loop has not turned for 61s"),
            "{why}"
        );
        stuck.beat();
        assert!(health.liveness().is_ok());
    }
}
