//! The BLE adaptor's metrics: connection attempts by outcome, notifications
//! taken in, reads and writes by outcome.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// ok, or the DeviceConnected reason (connections) / failed (reads, writes).
    pub outcome: String,
}

/// Shared by every device of the adaptor (cheap to clone).
#[derive(Clone, Default)]
pub struct BleMetrics {
    pub connections: Family<OutcomeLabels, Counter>,
    pub notifications: Counter,
    pub reads: Family<OutcomeLabels, Counter>,
    pub writes: Family<OutcomeLabels, Counter>,
}

impl BleMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ble");
        r.register(
            "connections",
            "Attempts to find and connect to peripherals, by outcome (ok or the failure's reason)",
            self.connections.clone(),
        );
        r.register(
            "notifications",
            "GATT notifications received, over all devices",
            self.notifications.clone(),
        );
        r.register(
            "reads",
            "GATT characteristic reads, by outcome (ok, failed)",
            self.reads.clone(),
        );
        r.register(
            "writes",
            "GATT characteristic writes, by outcome (ok, failed)",
            self.writes.clone(),
        );
    }

    pub fn connection(&self, outcome: &str) {
        let outcome = outcome.to_string();
        self.connections
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn read(&self, ok: bool) {
        self.reads.get_or_create(&ok_or_failed(ok)).inc();
    }

    pub fn write(&self, ok: bool) {
        self.writes.get_or_create(&ok_or_failed(ok)).inc();
    }
}

fn ok_or_failed(ok: bool) -> OutcomeLabels {
    OutcomeLabels {
        outcome: if ok { "ok" } else { "failed" }.to_string(),
    }
}
