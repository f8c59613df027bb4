//! Keeps the DeviceLink's DeviceConnected condition in line with what the
//! device task reports.
//!
//! The operator owns the stages before it and may reset them (a node went
//! away); the condition is written only when DeviceCreated is True, and
//! written again whenever a DeviceLink update shows it missing or stale.

use std::sync::Arc;

use devicelink_api::{DeviceLink, Outcome, condition};
use kube::{Api, ResourceExt, api::PostParams};
use tokio::sync::watch;
use tracing::{debug, warn};

pub(crate) async fn run(
    api: Api<DeviceLink>,
    mut link: watch::Receiver<Option<Arc<DeviceLink>>>,
    mut connected: watch::Receiver<Option<Outcome>>,
) {
    loop {
        let current = link.borrow_and_update().clone();
        let outcome = connected.borrow_and_update().clone();
        if let (Some(current), Some(outcome)) = (current, outcome) {
            write_if_needed(&api, &current, outcome).await;
        }
        tokio::select! {
            r = link.changed() => if r.is_err() { return },
            r = connected.changed() => if r.is_err() { return },
        }
    }
}

async fn write_if_needed(api: &Api<DeviceLink>, link: &DeviceLink, outcome: Outcome) {
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
            warn!(devicelink = %link.name_any(), error = %e, "could not update DeviceConnected")
        }
    }
}
