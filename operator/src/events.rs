//! Events on DeviceLinks (events.k8s.io/v1): one per reconcile that changed
//! conditions, and those of what adaptors report (reported.rs).
//!
//! Written directly rather than through kube-runtime's Recorder: that keeps
//! every event it sent for six minutes to count repeats, which at thousands
//! of DeviceLinks is a large part of the operator's memory, while our events
//! rarely repeat (each names the transitions that just happened).
//!
//! An Event is made when it happens (its time is then) and written by one
//! recorder task, a few at a time, not by the reconcile that made it. A
//! reconcile that waited for its Event held its place among the few that
//! run at once for one more round trip to the API server: when thousands of
//! DeviceLinks are applied together, that slowed every DeviceLink behind
//! it, to tell what the status already says. Events are best effort, as
//! Kubernetes treats them: one that cannot be written is logged.

use devicelink_api::{
    DeviceLink, DeviceLinkCondition,
    condition::ConditionType,
    events::{Happening, Reporter},
};
use futures::StreamExt;
use k8s_openapi::{
    api::events::v1::Event, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};
use kube::{Api, Client, Resource, api::PostParams};
use tokio::sync::mpsc;

use crate::reported::Happened;

/// Most Events being written at once (thousands of devices connect
/// together when an adaptor starts).
const WRITES_AT_ONCE: usize = 8;

/// The queue of Events to the task that writes them.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::UnboundedSender<Pending>,
}

/// An Event waiting to be written: what it says and when it happened. The
/// Event itself is made when it is written: it carries an ObjectMeta and
/// many optional fields besides, and thousands wait while a fleet of
/// DeviceLinks is applied.
struct Pending {
    happened: Happened,
    at: Timestamp,
}

/// Writes the Events queued by [`Events`] until every sender is gone.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    queued: mpsc::UnboundedReceiver<Pending>,
}

impl Recorder {
    pub async fn run(self) {
        let (client, reporter, mut queued) = (self.client, self.reporter, self.queued);
        futures::stream::poll_fn(move |cx| queued.poll_recv(cx))
            .for_each_concurrent(WRITES_AT_ONCE, |pending| {
                write(client.clone(), event_of(pending, &reporter))
            })
            .await;
    }
}

fn event_of(pending: Pending, reporter: &Reporter) -> Event {
    let Pending { happened, at } = pending;
    let mut event = devicelink_api::events::about_ref(
        happened.regarding,
        &Happening {
            warning: happened.warning,
            reason: &happened.reason,
            action: happened.action,
            note: &happened.note,
        },
        reporter,
    );
    event.event_time = Some(MicroTime(at));
    event
}

async fn write(client: Client, event: Event) {
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    if let Err(e) = Api::<Event>::namespaced(client, &namespace)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::warn!(error = %e, reason = ?event.reason, "could not record an Event");
    }
}

impl Events {
    /// The Events of this controller and replica, and the task that writes
    /// them (to run while this replica leads).
    pub fn new(client: Client, controller: &str, instance: &str) -> (Events, Recorder) {
        let (queue, queued) = mpsc::unbounded_channel();
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: instance.to_string(),
        };
        let recorder = Recorder {
            client,
            reporter,
            queued,
        };
        (Events { queue }, recorder)
    }

    /// Records the transitions of one reconcile on the DeviceLink.
    pub fn transitions(&self, link: &DeviceLink, changed: &[DeviceLinkCondition]) {
        if let Some(happened) = transitions(link, changed) {
            self.record(happened);
        }
    }

    /// Records what an adaptor reported (see reported.rs), or what the
    /// operator did to a discovered device.
    pub fn record(&self, happened: Happened) {
        let at = Timestamp::now();
        // Closed only once the recorder is gone with the leadership: what
        // this replica has not written, the next leader does not repeat.
        let _ = self.queue.send(Pending { happened, at });
    }
}

/// Its reason is that of the first condition that is not True, the one
/// that tells the user what to do; a Warning if any became False or a node
/// is not Ready. The note names every transition. `changed` holds the
/// pipeline's conditions only.
fn transitions(link: &DeviceLink, changed: &[DeviceLinkCondition]) -> Option<Happened> {
    let headline = changed
        .iter()
        .find(|c| c.status != "True")
        .or(changed.last())?;
    let action = ConditionType::PIPELINE
        .into_iter()
        .find(|t| t.as_str() == headline.type_)?
        .as_str();
    let note = changed.iter().map(describe).collect::<Vec<_>>().join("; ");
    // A node that is not Ready keeps NodeExisted True (the node exists) but
    // is as much a warning as a stage that failed.
    let warning = changed
        .iter()
        .any(|c| c.status == "False" || c.reason == "NotReady");
    Some(Happened {
        regarding: link.object_ref(&()),
        warning,
        reason: headline.reason.clone(),
        action,
        note,
    })
}

/// A condition as an Event's note tells it: `DeviceConnected is False
/// (Unreachable): <message>`.
pub fn describe(c: &DeviceLinkCondition) -> String {
    if c.message.is_empty() {
        format!("{} is {} ({})", c.type_, c.status, c.reason)
    } else {
        format!("{} is {} ({}): {}", c.type_, c.status, c.reason, c.message)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;

    use super::*;

    #[test]
    fn an_event_written_late_keeps_the_time_it_happened() {
        let happened_at: Timestamp = "2026-12-07T06:00:00.25Z".parse().unwrap();
        let pending = Pending {
            happened: Happened {
                regarding: ObjectReference {
                    api_version: Some("edge.cattle.io/v1alpha1".into()),
                    kind: Some("DeviceLink".into()),
                    namespace: Some("plant".into()),
                    name: Some("meter".into()),
                    ..Default::default()
                },
                warning: true,
                reason: "Unreachable".into(),
                action: "DeviceConnected",
                note: "DeviceConnected is False (Unreachable)".into(),
            },
            at: happened_at,
        };
        let reporter = Reporter {
            controller: "devicelink-operator".into(),
            instance: "replica-1".into(),
        };
        let event = event_of(pending, &reporter);
        assert_eq!(event.event_time.as_ref().map(|t| t.0), Some(happened_at));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("Unreachable"));
        assert_eq!(event.action.as_deref(), Some("DeviceConnected"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("plant"));
        assert_eq!(event.metadata.generate_name.as_deref(), Some("meter-"));
        assert_eq!(
            event.reporting_instance.as_deref(),
            Some("replica-1"),
            "{event:?}"
        );
    }
}
