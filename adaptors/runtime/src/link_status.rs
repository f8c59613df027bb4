//! Keeps the DeviceLink's DeviceConnected condition in line with what the
//! device task reports (and with whether its status reaches MQTT, see
//! `connected::with_delivery`). The operator records each change of its
//! status or reason as an Event, so `kubectl describe` tells when and why
//! a device went away.
//!
//! The operator owns the stages before it and may reset them (a node went
//! away); the condition is written only when DeviceCreated is True, and
//! written again whenever a DeviceLink update shows it missing or stale.

use devicelink_api::{DeviceLink, Outcome, condition};
use kube::{Api, ResourceExt, api::PostParams};
use tracing::{debug, warn};

/// Brings DeviceConnected in line with `outcome`, if it is not already.
pub(crate) async fn update(api: &Api<DeviceLink>, link: &DeviceLink, outcome: Outcome) {
    let conditions = link.conditions();
    let Some(mut outcomes) =
        condition::true_prefix(conditions, condition::ConditionType::DeviceConnected)
    else {
        return; // The operator has not finished its stages.
    };
    outcomes.push(outcome);
    let next = condition::advance(conditions, &outcomes, &condition::now());
    if next == conditions {
        return;
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
        Ok(_) => debug!(devicelink = %link.name_any(), "DeviceConnected updated"),
        // Someone wrote first; the watch brings the new version and we retry.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
        Err(e) => {
            warn!(devicelink = %link.name_any(), error = %e, "could not update DeviceConnected");
        }
    }
}
