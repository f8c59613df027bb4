//! Events on DeviceLinks (events.k8s.io/v1): one per reconcile that changed
//! conditions, and those of what adaptors report (reported.rs).
//!
//! Written directly rather than through kube-runtime's Recorder: that keeps
//! every event it sent for six minutes to count repeats, which at thousands
//! of DeviceLinks is a large part of the operator's memory, while our events
//! rarely repeat (each names the transitions that just happened).

use devicelink_api::{
    DeviceLink, DeviceLinkCondition,
    events::{Happening, Reporter},
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client, ResourceExt, api::PostParams};

/// Who records the events: the controller's name and this replica.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
}

impl Events {
    pub fn new(client: Client, controller: &str, instance: &str) -> Events {
        Events {
            client,
            reporter: Reporter {
                controller: controller.to_string(),
                instance: instance.to_string(),
            },
        }
    }

    /// Records the transitions of one reconcile on the DeviceLink.
    pub async fn transitions(
        &self,
        link: &DeviceLink,
        changed: &[DeviceLinkCondition],
    ) -> Result<(), kube::Error> {
        let Some(event) = self.transitions_event(link, changed) else {
            return Ok(());
        };
        let namespace = link.namespace().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }

    /// Records what an adaptor reported (see reported.rs); a failure is
    /// logged (the status keeps what happened).
    pub async fn record(&self, happened: crate::reported::Happened) {
        let namespace = happened.regarding.namespace.clone().unwrap_or_default();
        let event = devicelink_api::events::about_ref(
            happened.regarding,
            &Happening {
                warning: happened.warning,
                reason: &happened.reason,
                action: happened.action,
                note: &happened.note,
            },
            &self.reporter,
        );
        if let Err(e) = Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
        {
            tracing::warn!(error = %e, reason = %happened.reason, "could not record an Event");
        }
    }

    /// Its reason is that of the first condition that is not True, the one
    /// that tells the user what to do; a Warning if any became False or a
    /// node is not Ready. The note names every transition.
    fn transitions_event(
        &self,
        link: &DeviceLink,
        changed: &[DeviceLinkCondition],
    ) -> Option<Event> {
        let headline = changed
            .iter()
            .find(|c| c.status != "True")
            .or(changed.last())?;
        let note = changed.iter().map(describe).collect::<Vec<_>>().join("; ");
        // A node that is not Ready keeps NodeExisted True (the node exists)
        // but is as much a warning as a stage that failed.
        let warning = changed
            .iter()
            .any(|c| c.status == "False" || c.reason == "NotReady");
        Some(devicelink_api::events::about(
            link,
            &Happening {
                warning,
                reason: &headline.reason,
                action: &headline.type_,
                note: &note,
            },
            &self.reporter,
        ))
    }
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
