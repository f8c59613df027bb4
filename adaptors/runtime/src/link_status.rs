//! Keeps the DeviceLink's DeviceConnected condition in line with what the
//! device task reports (and with whether its status reaches MQTT, see
//! `connected::with_delivery`), and records each change of its status or reason as
//! an Event (a Warning when it turns False), so `kubectl describe` tells
//! when and why a device went away.
//!
//! The operator owns the stages before it and may reset them (a node went
//! away); the condition is written only when DeviceCreated is True, and
//! written again whenever a DeviceLink update shows it missing or stale.

use devicelink_api::{
    DeviceLink, Outcome, condition,
    events::{self, Happening, Reporter},
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, ResourceExt, api::PostParams};
use tracing::{debug, warn};

/// Brings DeviceConnected in line with `outcome`, and records a change of
/// its status or reason as an Event.
pub(crate) async fn update(
    api: &Api<DeviceLink>,
    events: &Api<Event>,
    reporter: &Reporter,
    link: &DeviceLink,
    outcome: Outcome,
) {
    if write_if_needed(api, link, outcome.clone()).await {
        record(events, reporter, link, &outcome).await;
    }
}

/// Writes the condition if it changed; true if its status or reason did
/// (worth an Event; a new message alone is not).
async fn write_if_needed(api: &Api<DeviceLink>, link: &DeviceLink, outcome: Outcome) -> bool {
    let conditions = link.conditions();
    let Some(mut outcomes) =
        condition::true_prefix(conditions, condition::ConditionType::DeviceConnected)
    else {
        return false; // The operator has not finished its stages.
    };
    let before = conditions
        .iter()
        .find(|c| c.type_ == condition::ConditionType::DeviceConnected.as_str())
        .map(|c| (c.status.clone(), c.reason.clone()));
    let transition = before != Some((outcome.status.as_str().to_string(), outcome.reason.clone()));
    outcomes.push(outcome);
    let next = condition::advance(conditions, &outcomes, &condition::now());
    if next == conditions {
        return false;
    }
    let mut updated = link.clone();
    updated
        .status
        .get_or_insert_with(Default::default)
        .conditions = next;
    match api
        .replace_status(&link.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => {
            debug!(devicelink = %link.name_any(), "DeviceConnected updated");
            transition
        }
        // Someone wrote first; the watch brings the new version and we retry.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => false,
        Err(e) => {
            warn!(devicelink = %link.name_any(), error = %e, "could not update DeviceConnected");
            false
        }
    }
}

/// The Event of a DeviceConnected transition.
async fn record(events: &Api<Event>, reporter: &Reporter, link: &DeviceLink, outcome: &Outcome) {
    let status = outcome.status.as_str();
    let note = if outcome.message.is_empty() {
        format!("DeviceConnected is {status} ({})", outcome.reason)
    } else {
        format!(
            "DeviceConnected is {status} ({}): {}",
            outcome.reason, outcome.message
        )
    };
    let event = events::about(
        link,
        &Happening {
            warning: status == "False",
            reason: &outcome.reason,
            action: "DeviceConnected",
            note: &note,
        },
        reporter,
    );
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        warn!(devicelink = %link.name_any(), error = %e, "could not record DeviceConnected as an Event");
    }
}
