//! How fast one device takes writes from MQTT. A writer that floods one
//! device must not keep it (and, on a shared serial line, its neighbours)
//! busy with writes: past a burst, writes are refused with an answer until
//! the pace drops.

use std::time::{Duration, Instant};

/// Writes a device takes in a row before the pace counts.
pub const BURST: f64 = 10.0;
/// Writes a second a device takes once its burst is spent.
pub const PER_SECOND: f64 = 5.0;

/// A token bucket: full at `BURST`, refilled at `PER_SECOND`.
#[derive(Debug, Clone)]
pub struct WriteRate {
    tokens: f64,
    last: Instant,
}

impl WriteRate {
    pub fn new(now: Instant) -> WriteRate {
        WriteRate {
            tokens: BURST,
            last: now,
        }
    }

    /// Whether a write arriving `now` is taken (it uses up a token).
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * PER_SECOND).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Why a write was not taken, for its answer.
    pub fn refusal() -> String {
        format!(
            "arrived faster than the device takes writes ({BURST} in a row, then {PER_SECOND} a second): send it again in {} ms",
            Duration::from_secs_f64(1.0 / PER_SECOND).as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_taken_then_the_pace_counts() {
        let start = Instant::now();
        let mut rate = WriteRate::new(start);
        let taken = (0..15).filter(|_| rate.take(start)).count();
        assert_eq!(taken, 10, "the burst, and no more at once");
        // A fifth of a second brings one more.
        assert!(rate.take(start + Duration::from_millis(200)));
        assert!(!rate.take(start + Duration::from_millis(200)));
        // A quiet while fills it again, never beyond the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| rate.take(later)).count(), 10);
    }
}
