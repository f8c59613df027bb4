//! Letting go of a deleted device.
//!
//! The operator puts a finalizer on every device. When the device is
//! deleted, the adaptor stops driving it, clears its retained status from the
//! broker (so subscribers do not keep seeing a device that is gone), and
//! only then removes the finalizer. If the adaptor cannot, the operator
//! removes it after a grace period, so a deletion always completes.

use std::sync::Arc;

use devicelink_api::finalizer::{self, DEVICE_FINALIZER};
use devicelink_mqtt::{Publisher, SharedOutbox};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use tracing::{info, warn};

use crate::model::Model;

/// Clears the device's retained status through `publisher` (its own
/// connection, with its own credentials), then removes the finalizer.
/// `outbox` is the device's MQTT buffer: its stored messages go too.
pub(crate) async fn release<K: Model>(
    api: Api<K>,
    device: Arc<K>,
    publisher: Option<Publisher>,
    outbox: SharedOutbox,
) {
    let key = format!(
        "{}/{}",
        device.namespace().unwrap_or_default(),
        device.name_any()
    );
    if let Some(publisher) = publisher {
        let topic = publisher.topic().to_string();
        if publisher.clear_retained_and_close().await {
            info!(device = %key, %topic, "retained status cleared");
        } else {
            warn!(device = %key, %topic, "could not clear the retained status within disconnectQuiesce; it stays on the broker");
        }
    }
    outbox.destroy();
    let Some(patch) = finalizer::removing(device.meta(), DEVICE_FINALIZER) else {
        return;
    };
    match api
        .patch(
            &device.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => info!(device = %key, "device released"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        // A conflict means the device changed meanwhile; its next event
        // brings it back here.
        Err(e) => {
            warn!(device = %key, error = %e, "could not release the device; retrying on its next change")
        }
    }
}
