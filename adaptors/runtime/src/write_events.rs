//! Events for writes from MQTT that were refused, on the device's
//! DeviceLink: at most one every ten seconds per device, so a client
//! sending bad writes in a loop cannot flood the API server.

use std::{sync::Arc, time::Duration};

use devicelink_api::{
    DeviceLink,
    events::{self, Happening, Reporter},
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client, ResourceExt, api::PostParams};
use tokio::sync::{mpsc, watch};
use tracing::warn;

const AT_MOST_EVERY: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    client: Client,
    link: watch::Receiver<Option<Arc<DeviceLink>>>,
    mut refusals: mpsc::UnboundedReceiver<String>,
    reporter: Reporter,
) {
    while let Some(first) = refusals.recv().await {
        let (mut count, mut last) = (1, first);
        while let Ok(more) = refusals.try_recv() {
            count += 1;
            last = more;
        }
        let Some(link) = link.borrow().clone() else {
            continue;
        };
        let note = if count == 1 {
            format!("a write from MQTT was refused: {last}")
        } else {
            format!("{count} writes from MQTT were refused; the last: {last}")
        };
        let event = events::about(
            &link,
            &Happening {
                warning: true,
                reason: "WriteRefused",
                action: "Write",
                note: &note,
            },
            &reporter,
        );
        let api = Api::<Event>::namespaced(client.clone(), &link.namespace().unwrap_or_default());
        // Boxed: rare; the waiting task stays small (one per device).
        if let Err(e) = Box::pin(api.create(&PostParams::default(), &event)).await {
            warn!(link = %link.name_any(), error = %e, "could not record the refused write as an Event");
        }
        tokio::time::sleep(AT_MOST_EVERY).await;
    }
}
