//! Keeps the DeviceLink's DeviceConnected condition in line with what the
//! device task reports (and with whether its status reaches MQTT, see
//! [`with_delivery`]), and records each change of its status or reason as
//! an Event (a Warning when it turns False), so `kubectl describe` tells
//! when and why a device went away.
//!
//! The operator owns the stages before it and may reset them (a node went
//! away); the condition is written only when DeviceCreated is True, and
//! written again whenever a DeviceLink update shows it missing or stale.
//!
//! The same task records the device's refused writes as Events
//! (write_events.rs): one task per device for all it writes about its
//! DeviceLink.

use std::sync::Arc;

use devicelink_api::{
    DeviceLink, Outcome, condition,
    events::{self, Happening, Reporter},
    property::MqttStatus,
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, ResourceExt, api::PostParams};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{
    connected::with_delivery,
    write_events::{self, Refusals},
};

pub(crate) async fn run(
    api: Api<DeviceLink>,
    events: Api<Event>,
    reporter: Reporter,
    mut link: watch::Receiver<Option<Arc<DeviceLink>>>,
    mut connected: watch::Receiver<Option<Outcome>>,
    mut mqtt: watch::Receiver<Option<MqttStatus>>,
    refusals: Arc<Refusals>,
) {
    // When the next Event about refused writes may be recorded.
    let mut refusals_quiet_until = tokio::time::Instant::now();
    loop {
        let current = link.borrow_and_update().clone();
        let delivery = mqtt.borrow_and_update().clone();
        let outcome = connected
            .borrow_and_update()
            .clone()
            .map(|o| with_delivery(o, delivery.as_ref()));
        // Boxed: a write is rare, and this task waits for changes for
        // every device of the adaptor; unboxed, its future's size would be
        // the write's, kept for every device all the time.
        if let (Some(current), Some(outcome)) = (current, outcome)
            && Box::pin(write_if_needed(&api, &current, outcome.clone())).await
        {
            Box::pin(record(&events, &reporter, &current, &outcome)).await;
        }
        tokio::select! {
            r = link.changed() => if r.is_err() { return },
            r = connected.changed() => if r.is_err() { return },
            r = mqtt.changed() => if r.is_err() { return },
            // Boxed: rare, and kept out of the waiting task's size.
            refused = Box::pin(async {
                tokio::time::sleep_until(refusals_quiet_until).await;
                refusals.next().await
            }) => {
                let current = link.borrow().clone();
                if let Some(current) = current {
                    Box::pin(write_events::record(&events, &reporter, &current, refused)).await;
                    refusals_quiet_until = tokio::time::Instant::now() + write_events::AT_MOST_EVERY;
                }
            }
        }
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
