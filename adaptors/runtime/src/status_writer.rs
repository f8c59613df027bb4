//! Writes a device's `status` to the API server: only when it changed, and
//! at most once per interval per device, always ending with the latest value.
//! (Per-sample status writes have taken API servers down; samples go to MQTT.)

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use tokio::sync::watch;
use tracing::warn;

use crate::registry::Model;

pub(crate) async fn run<K: Model>(
    api: Api<K>,
    name: String,
    manager: String,
    mut rx: watch::Receiver<Option<serde_json::Value>>,
    min_interval: Duration,
) {
    let mut written: Option<serde_json::Value> = None;
    while rx.changed().await.is_ok() {
        let Some(status) = rx.borrow_and_update().clone() else {
            continue;
        };
        if written.as_ref() == Some(&status) {
            continue;
        }
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        match api
            .patch_status(
                &name,
                &PatchParams::apply(&manager).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(obj) => {
                tracing::debug!(device = %obj.name_any(), "status written");
                written = Some(status);
            }
            // Gone: the registry stops this task shortly.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                warn!(device = %name, error = %e, "could not write device status; retrying with the next change")
            }
        }
        tokio::time::sleep(min_interval).await;
    }
}
