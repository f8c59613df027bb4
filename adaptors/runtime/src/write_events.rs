//! Events for writes from MQTT that were refused, on the device's
//! DeviceLink: at most one every ten seconds per device (the refusals in
//! between are counted into the next), so a client sending bad writes in a
//! loop cannot flood the API server.

use std::{sync::Mutex, time::Duration};

use devicelink_api::{
    DeviceLink,
    events::{self, Happening, Reporter},
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, ResourceExt, api::PostParams};
use tokio::sync::Notify;
use tracing::warn;

/// Least time between two such Events of one device.
pub(crate) const AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// The writes a device refused since the last Event about them: a count
/// and the last reason, not a queue (a channel would allocate a block of
/// slots up front, for every device, for something rare).
#[derive(Default)]
pub(crate) struct Refusals {
    since: Mutex<Option<Refused>>,
    arrived: Notify,
}

/// Refusals gathered for one Event.
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub(crate) count: usize,
    pub(crate) last: String,
}

impl Refusals {
    /// Notes a refused write and why.
    pub(crate) fn add(&self, why: String) {
        let mut since = self.since.lock().unwrap();
        match since.as_mut() {
            Some(r) => {
                r.count += 1;
                r.last = why;
            }
            None => {
                *since = Some(Refused {
                    count: 1,
                    last: why,
                })
            }
        }
        drop(since);
        self.arrived.notify_one();
    }

    /// Waits for refusals and takes all gathered so far.
    pub(crate) async fn next(&self) -> Refused {
        loop {
            if let Some(r) = self.since.lock().unwrap().take() {
                return r;
            }
            // A notification sent before this wait is kept for it.
            self.arrived.notified().await;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_are_gathered_until_taken() {
        let refusals = Refusals::default();
        refusals.add("one".into());
        refusals.add("two".into());
        assert_eq!(
            refusals.next().await,
            Refused {
                count: 2,
                last: "two".into()
            }
        );
        let waiting = tokio::time::timeout(Duration::from_millis(50), refusals.next()).await;
        assert!(waiting.is_err(), "nothing refused since");
        refusals.add("three".into());
        assert_eq!(
            refusals.next().await,
            Refused {
                count: 1,
                last: "three".into()
            }
        );
    }
}
