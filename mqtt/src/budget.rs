//! One adaptor's memory for MQTT messages waiting for their broker, shared
//! fairly among its devices.
//!
//! Each device may ask for a large buffer (`messageChannelBytes`, up to
//! 1 GiB), and devices of many tenants share one adaptor: five devices
//! whose broker never answers could otherwise take the adaptor past its
//! memory limit and every other device down with it. So the adaptor has a
//! budget (by default half its memory limit), and each device with an MQTT
//! extension may hold at most an equal share of it: the budget over the
//! devices using it. A device whose own bound is smaller keeps that.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The adaptor-wide budget; devices join it when their buffer is first
/// configured and leave when it is destroyed or dropped.
#[derive(Debug, Default)]
pub struct BufferBudget {
    /// Bytes all buffers may hold together; 0 for no budget.
    limit: usize,
    devices: AtomicUsize,
}

impl BufferBudget {
    /// A budget of `limit` bytes (None: each device has only its own bound).
    pub fn new(limit: Option<usize>) -> BufferBudget {
        BufferBudget {
            limit: limit.unwrap_or(0),
            devices: AtomicUsize::new(0),
        }
    }

    pub(crate) fn join(&self) {
        self.devices.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.devices.fetch_sub(1, Ordering::Relaxed);
    }

    /// What one device may hold now, and among how many devices the
    /// budget is shared; None without a budget.
    pub fn share(&self) -> Option<Share> {
        (self.limit > 0).then(|| {
            let devices = self.devices.load(Ordering::Relaxed);
            Share {
                bytes: (self.limit / devices.max(1)).max(1),
                budget: self.limit,
                devices,
            }
        })
    }

    /// Bytes all buffers may hold together; None without a budget.
    pub fn limit(&self) -> Option<usize> {
        (self.limit > 0).then_some(self.limit)
    }
}

/// One device's part of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub bytes: usize,
    pub budget: usize,
    pub devices: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_gets_an_equal_share_of_the_budget() {
        let budget = BufferBudget::new(Some(1000));
        budget.join();
        assert_eq!(budget.share().unwrap().bytes, 1000);
        for _ in 0..4 {
            budget.join();
        }
        assert_eq!(
            budget.share(),
            Some(Share {
                bytes: 200,
                budget: 1000,
                devices: 5
            })
        );
        budget.leave();
        assert_eq!(budget.share().unwrap().bytes, 250);
        assert_eq!(BufferBudget::new(None).share(), None);
    }
}
