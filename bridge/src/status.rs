//! A KafkaBridge's status: `SourceConnected`, `SinkConnected` and `Ready`
//! conditions and the count of delivered records, written by server-side
//! apply at most once a second; and why a bridge did not start, also as a
//! Warning Event.

use std::time::Duration;

use devicelink_api::{
    events::{Happening, Reporter, about},
    kafka_bridge::KafkaBridge,
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

/// The field manager of status writes, and the Events' reporting controller.
pub const MANAGER: &str = "devicelink-bridge";

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
        let mut written: Option<(Vec<Said>, u64)> = None;
        loop {
            let (seen, sink_seen) = (progress.borrow().clone(), sink.borrow().clone());
            let now = (conditions(&seen, &sink_seen), seen.delivered);
            if written.as_ref() != Some(&now) {
                self.apply(&now.0, Some(&seen)).await;
                written = Some(now);
            }
            // At most once a second, and only on a change.
            tokio::time::sleep(Duration::from_secs(1)).await;
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                changed = sink.changed() => if changed.is_err() { return },
            }
        }
    }

    async fn apply(&mut self, said: &[Said], progress: Option<&Progress>) {
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
        if let Some(p) = progress {
            status["delivered"] = json!(i64::try_from(p.delivered).unwrap_or(i64::MAX));
        }
        let patch = json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "status": status,
        });
        let params = PatchParams::apply(MANAGER).force();
        if let Err(e) = self
            .api
            .patch_status(&self.bridge.name_any(), &params, &Patch::Apply(&patch))
            .await
        {
            tracing::warn!(error = %e, bridge = %self.bridge.name_any(), "cannot write the status");
        }
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
