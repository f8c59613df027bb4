//! Writes a device's `status` to the API server: only when it changed, at
//! most once per interval per device and within the adaptor's budget
//! (status_budget.rs), always ending with the latest value.
//! (Per-sample status writes have taken API servers down; samples go to MQTT.)
//! The device's MQTT connection state goes in as `status.extension.mqtt`.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use tokio::sync::watch;
use tracing::warn;

use devicelink_api::property::MqttStatus;

use crate::{registry::Model, status_budget::StatusBudget};

pub(crate) async fn run<K: Model>(
    api: Api<K>,
    name: String,
    manager: String,
    mut rx: watch::Receiver<Option<String>>,
    mut mqtt: watch::Receiver<Option<MqttStatus>>,
    min_interval: Duration,
    budget: std::sync::Arc<StatusBudget>,
) {
    // As text: a JSON tree kept for every device takes several times the
    // space.
    let mut written: Option<String> = None;
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            r = mqtt.changed() => if r.is_err() { return },
        }
        if current(&mut rx, &mut mqtt).is_none_or(|s| written.as_ref() == Some(&s)) {
            continue;
        }
        budget.turn().await;
        // What changed while it waited is written too: the newest.
        let Some(status) = current(&mut rx, &mut mqtt) else {
            continue;
        };
        if written.as_ref() == Some(&status) {
            continue;
        }
        budget.wrote();
        let Ok(status_value) = serde_json::from_str::<serde_json::Value>(&status) else {
            continue;
        };
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status_value,
        });
        // Boxed: the task waits for changes most of the time, for every
        // device; unboxed, it would keep the request's space all along.
        let params = PatchParams::apply(&manager).force();
        match Box::pin(api.patch_status(&name, &params, &Patch::Apply(&patch))).await {
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

/// The status to write now, as JSON text: the device's, with its MQTT
/// connection's state as `extension.mqtt` (part of the device's status, not
/// of the samples published on MQTT).
fn current(
    rx: &mut watch::Receiver<Option<String>>,
    mqtt: &mut watch::Receiver<Option<MqttStatus>>,
) -> Option<String> {
    let reported = rx.borrow_and_update().clone()?;
    let Some(state) = mqtt.borrow_and_update().clone() else {
        return Some(reported);
    };
    let mut status: serde_json::Value = serde_json::from_str(&reported).ok()?;
    if let Some(fields) = status.as_object_mut() {
        fields.insert("extension".into(), serde_json::json!({ "mqtt": state }));
    }
    Some(status.to_string())
}
