//! The Modbus adaptor's metrics: requests by operation and outcome, their
//! duration, and poll cycles (requests per cycle shows the coalescing).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// read or write.
    pub operation: &'static str,
    /// ok, or the DeviceConnected reason of the failure.
    pub outcome: &'static str,
}

/// Shared by every device of the adaptor (cheap to clone).
#[derive(Clone)]
pub struct ModbusMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histogram,
    pub polls: Counter,
}

impl Default for ModbusMetrics {
    fn default() -> Self {
        ModbusMetrics {
            requests: Family::default(),
            // 0.5 ms to ~16 s.
            request_duration: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16),
            ),
            polls: Counter::default(),
        }
    }
}

impl ModbusMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("modbus");
        r.register(
            "requests",
            "Modbus requests sent, by operation (read, write) and outcome (ok or the failure's reason)",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from sending a Modbus request to its answer (or timeout)",
            self.request_duration.clone(),
        );
        r.register(
            "polls",
            "Poll cycles run, over all devices",
            self.polls.clone(),
        );
    }
}
