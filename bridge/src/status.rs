//! A KafkaBridge's status: `SourceConnected`, `SinkConnected` and `Ready`
//! conditions, written by server-side apply at most once a second, and
//! this replica's entry of `status.replicas` (delivered, rate, lag),
//! written with them and otherwise every few seconds while it changes; and
//! why a bridge did not start, also as a Warning Event.
//!
//! Each replica applies as a field manager of its own, so that its entry
//! of `replicas` (a list map keyed by name) leaves the others' in place.

use std::time::{Duration, Instant};

use devicelink_api::{
    events::{Happening, Reporter, about},
    kafka_bridge::{BridgeReplicaStatus, KafkaBridge},
};
use k8s_openapi::{
    api::events::v1::Event,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    pipeline::{Progress, SourceState},
    sink::SinkState,
};

/// The Events' reporting controller, and with the replica's name the field
/// manager of its status writes.
pub const MANAGER: &str = "devicelink-bridge";
/// How often a replica's counters alone are written.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);
/// How often a replica renews its entry when nothing changed.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// An entry this old belongs to a replica that is gone.
const STALE: Duration = Duration::from_secs(120);

/// Why a bridge is not running.
#[derive(Debug, thiserror::Error)]
pub enum Blocked {
    #[error("waiting for the Secrets and ConfigMaps of spec.references to be read")]
    ReferencesPending,
    #[error("{0}")]
    InvalidMapping(String),
    #[error("spec.source.client: {0}")]
    InvalidSource(String),
    #[error("spec.sink: {0}")]
    InvalidSink(String),
}

impl Blocked {
    fn reason(&self) -> &'static str {
        match self {
            Blocked::ReferencesPending => "ReferencesPending",
            Blocked::InvalidMapping(_) => "InvalidMapping",
            Blocked::InvalidSource(_) => "InvalidSource",
            Blocked::InvalidSink(_) => "InvalidSink",
        }
    }
}

/// Writes one KafkaBridge's status.
pub struct Writer {
    api: Api<KafkaBridge>,
    events: Api<Event>,
    bridge: KafkaBridge,
    reporter: Reporter,
    /// As last written (their transition times carry over).
    written: Vec<Condition>,
}

/// One condition as it is written: type, status, reason, message.
type Said = (&'static str, &'static str, &'static str, String);

impl Writer {
    pub fn new(client: Client, bridge: &KafkaBridge, instance: &str) -> Writer {
        let namespace = bridge.namespace().unwrap_or_default();
        Writer {
            api: Api::namespaced(client.clone(), &namespace),
            events: Api::namespaced(client, &namespace),
            written: bridge
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default(),
            bridge: bridge.clone(),
            reporter: Reporter {
                controller: format!("edge.cattle.io/{MANAGER}"),
                instance: instance.to_string(),
            },
        }
    }

    /// Says why the bridge does not run: a False Ready condition, a log
    /// line (the caller's) and, unless it only waits, a Warning Event.
    pub async fn blocked(&mut self, blocked: &Blocked) {
        let why = blocked.to_string();
        let ready = ("Ready", "False", blocked.reason(), why.clone());
        self.apply(&[ready], None).await;
        if !matches!(blocked, Blocked::ReferencesPending) {
            let event = about(
                &self.bridge,
                &Happening {
                    warning: true,
                    reason: blocked.reason(),
                    action: "Start",
                    note: &why,
                },
                &self.reporter,
            );
            if let Err(e) = self.events.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, "cannot record an Event");
            }
        }
    }

    /// Writes what the running bridge reports, as it changes, until the
    /// bridge stops.
    pub async fn follow(
        mut self,
        mut progress: watch::Receiver<Progress>,
        mut sink: watch::Receiver<SinkState>,
    ) {
        let mut written: Option<Vec<Said>> = None;
        // When this replica's entry was written, with its counters then.
        let mut entry_written: Option<(Instant, Progress)> = None;
        loop {
            let (seen, sink_seen) = (progress.borrow().clone(), sink.borrow().clone());
            let said = conditions(&seen, &sink_seen);
            if written.as_ref() != Some(&said) || due_in(entry_written.as_ref(), &seen).is_zero() {
                let entry = replica_entry(
                    &self.reporter.instance,
                    &seen,
                    &sink_seen,
                    entry_written.as_ref(),
                );
                self.apply(&said, Some(entry)).await;
                written = Some(said);
                entry_written = Some((Instant::now(), seen));
            }
            // At most once a second; then on a change, or when the entry
            // falls due.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let wait = due_in(entry_written.as_ref(), &progress.borrow());
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                changed = sink.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn apply(&mut self, said: &[Said], entry: Option<BridgeReplicaStatus>) {
        let now = Time(Timestamp::now());
        let conditions: Vec<Condition> = said
            .iter()
            .map(|(type_, status, reason, message)| {
                // The transition time moves only when the status does.
                let since = self
                    .written
                    .iter()
                    .find(|c| c.type_ == *type_ && c.status == *status)
                    .map_or(now.clone(), |c| c.last_transition_time.clone());
                Condition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: reason.to_string(),
                    message: message.clone(),
                    last_transition_time: since,
                    observed_generation: self.bridge.metadata.generation,
                }
            })
            .collect();
        let mut status = json!({
            "observedGeneration": self.bridge.metadata.generation,
            "conditions": &conditions,
        });
        self.written = conditions;
        if let Some(entry) = entry {
            status["replicas"] = json!([entry]);
        }
        let patch = json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "status": status,
        });
        let manager = format!("{MANAGER}-{}", self.reporter.instance);
        let params = PatchParams::apply(&manager).force();
        match self
            .api
            .patch_status(&self.bridge.name_any(), &params, &Patch::Apply(&patch))
            .await
        {
            Ok(written) => self.remove_stale(written).await,
            Err(e) => {
                tracing::warn!(error = %e, bridge = %self.bridge.name_any(), "cannot write the status")
            }
        }
    }

    /// Removes the entries of replicas that stopped renewing them (gone
    /// for good: a replica scaled away). The write names the version it
    /// read, so if any replica wrote meanwhile it is refused (409) and
    /// waits for the next turn.
    async fn remove_stale(&self, mut bridge: KafkaBridge) {
        let stale_before = Timestamp::now() - STALE;
        let Some(status) = bridge.status.as_mut() else {
            return;
        };
        let before = status.replicas.len();
        status
            .replicas
            .retain(|r| r.name == self.reporter.instance || r.updated_at.0 >= stale_before);
        if status.replicas.len() == before {
            return;
        }
        // Left out, the server keeps every manager's fields as they are.
        bridge.metadata.managed_fields = None;
        let params = PostParams {
            field_manager: Some(format!("{MANAGER}-{}", self.reporter.instance)),
            ..Default::default()
        };
        match self
            .api
            .replace_status(&self.bridge.name_any(), &params, &bridge)
            .await
        {
            Ok(_) => tracing::info!(
                removed = before - bridge.status.map_or(0, |s| s.replicas.len()),
                "removed the status of replicas gone for two minutes"
            ),
            Err(e) => tracing::debug!(error = %e, "removing gone replicas' status; next time"),
        }
    }
}

/// How long until this replica's entry is due, given when it was written
/// and with what: counters that moved are written `COUNTERS_EVERY`, an
/// unchanged entry renewed every `HEARTBEAT`.
fn due_in(written: Option<&(Instant, Progress)>, now: &Progress) -> Duration {
    let Some((at, before)) = written else {
        return Duration::ZERO;
    };
    let counters = |p: &Progress| {
        (
            p.delivered,
            p.refused,
            p.in_flight,
            p.commands_answered,
            p.commands_refused,
        )
    };
    let counting = counters(before) != counters(now);
    let every = if counting { COUNTERS_EVERY } else { HEARTBEAT };
    every.saturating_sub(at.elapsed())
}

/// This replica's entry of `status.replicas`; `before` is its previous one
/// (the rate is counted since).
fn replica_entry(
    instance: &str,
    progress: &Progress,
    sink: &SinkState,
    before: Option<&(Instant, Progress)>,
) -> BridgeReplicaStatus {
    let rate = match before {
        Some((at, then)) if at.elapsed() > Duration::ZERO => {
            progress.delivered.saturating_sub(then.delivered) as f64 / at.elapsed().as_secs_f64()
        }
        _ => 0.0,
    };
    let last_error = match sink {
        SinkState::Unreachable(why) => Some(why.clone()),
        _ => progress.last_refusal.clone(),
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    BridgeReplicaStatus {
        name: instance.to_string(),
        delivered: count(progress.delivered),
        refused: count(progress.refused),
        records_per_second: format!("{rate:.1}"),
        in_flight: count(progress.in_flight),
        lag_seconds: progress
            .oldest_in_flight
            .map_or(0, |oldest| count(oldest.elapsed().as_secs())),
        commands_answered: count(progress.commands_answered),
        commands_refused: count(progress.commands_refused),
        last_error,
        updated_at: Time(Timestamp::now()),
    }
}

/// The conditions a running bridge shows.
fn conditions(progress: &Progress, sink: &SinkState) -> Vec<Said> {
    let source = match &progress.source {
        SourceState::Connecting => (
            "SourceConnected",
            "Unknown",
            "Connecting",
            "connecting to the MQTT broker".to_string(),
        ),
        SourceState::Connected => (
            "SourceConnected",
            "True",
            "Connected",
            "subscribed on the MQTT broker".to_string(),
        ),
        SourceState::Unreachable(why) => ("SourceConnected", "False", "Unreachable", why.clone()),
    };
    let sink = match sink {
        SinkState::Connecting => (
            "SinkConnected",
            "Unknown",
            "Connecting",
            "connecting to Kafka".to_string(),
        ),
        SinkState::Connected => (
            "SinkConnected",
            "True",
            "Connected",
            "connected to Kafka".to_string(),
        ),
        SinkState::Unreachable(why) => ("SinkConnected", "False", "Unreachable", why.clone()),
    };
    let ready = match (source.1, sink.1) {
        ("True", "True") => match &progress.last_refusal {
            None => (
                "Ready",
                "True",
                "Delivering",
                "delivering MQTT messages into Kafka".to_string(),
            ),
            Some(refusal) => (
                "Ready",
                "True",
                "RecordsRefused",
                format!(
                    "delivering; {} record(s) refused, the last: {refusal}",
                    progress.refused
                ),
            ),
        },
        ("True", _) => ("Ready", "False", "SinkNotConnected", sink.3.clone()),
        _ => ("Ready", "False", "SourceNotConnected", source.3.clone()),
    };
    vec![source, sink, ready]
}
