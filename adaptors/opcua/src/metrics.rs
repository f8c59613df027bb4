//! The OPC-UA adaptor's metrics: session attempts by outcome, data changes
//! received, and writes by outcome.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// ok, or the DeviceConnected reason of the failure.
    pub outcome: &'static str,
}

/// Shared by every device of the adaptor (cheap to clone).
#[derive(Clone, Default)]
pub struct OpcuaMetrics {
    pub sessions: Family<OutcomeLabels, Counter>,
    pub data_changes: Counter,
    pub writes: Family<OutcomeLabels, Counter>,
}

impl OpcuaMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("opcua");
        r.register(
            "sessions",
            "Sessions opened (outcome ok) or failed to open or lost (outcome: the DeviceConnected reason)",
            self.sessions.clone(),
        );
        r.register(
            "data_changes",
            "Values received from subscriptions, over all devices",
            self.data_changes.clone(),
        );
        r.register(
            "writes",
            "Values written to nodes, by outcome (ok or refused)",
            self.writes.clone(),
        );
    }

    pub fn session(&self, outcome: &'static str) {
        self.sessions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn write(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "refused" };
        self.writes.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}
