//! Events for writes from MQTT that were refused, on the device's
//! DeviceLink: at most one every ten seconds per device (the refusals in
//! between are counted into the next), so a client sending bad writes in a
//! loop cannot flood the API server.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    events::{self, Happening, Reporter},
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, ResourceExt, api::PostParams};
use tracing::warn;

/// Least time between two such Events of one device.
pub(crate) const AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Refusals gathered for one Event: a count and the last reason, not a
/// queue (kept for every device, for something rare); the device's
/// report gathers them (writer.rs).
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub(crate) count: usize,
    pub(crate) last: String,
}

/// Records refused writes as a Warning Event on the DeviceLink.
pub(crate) async fn record(
    events: &Api<Event>,
    reporter: &Reporter,
    link: &DeviceLink,
    refused: Refused,
) {
    let Refused { count, last } = refused;
    let note = if count == 1 {
        format!("a write from MQTT was refused: {last}")
    } else {
        format!("{count} writes from MQTT were refused; the last: {last}")
    };
    let event = events::about(
        link,
        &Happening {
            warning: true,
            reason: "WriteRefused",
            action: "Write",
            note: &note,
        },
        reporter,
    );
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        warn!(link = %link.name_any(), error = %e, "could not record the refused write as an Event");
    }
}
