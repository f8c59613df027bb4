//! A device's `status` as written to the API server: what the device task
//! reported, with the device's MQTT connection state as
//! `status.extension.mqtt`. When and how often it is written is the
//! writer's (writer.rs).

use kube::{
    Client,
    api::{Patch, PatchParams},
    core::Request,
};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tracing::warn;

use devicelink_api::property::MqttStatus;

use crate::model::Model;

/// What became of a status write.
pub(crate) enum Written {
    Yes,
    /// The device is gone (its writer is stopped shortly).
    Gone,
    /// Failed (logged); worth trying again later.
    No,
}

/// The body of a status apply, with the status as the JSON text it is
/// already: no tree of it is made for a write in flight.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Apply<'a> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a RawValue,
}

/// Writes `status` (JSON text) as the status of device `name` in
/// `namespace`, by server-side apply under `manager`.
pub(crate) async fn write<K: Model>(
    client: &Client,
    namespace: &str,
    name: &str,
    manager: &str,
    status: &str,
) -> Written {
    let Ok(status) = serde_json::from_str::<&RawValue>(status) else {
        return Written::No;
    };
    let body = Apply {
        api_version: &K::api_version(&()),
        kind: &K::kind(&()),
        status,
    };
    let params = PatchParams::apply(manager).force();
    let request = match Request::new(K::url_path(&(), Some(namespace))).patch_subresource(
        "status",
        name,
        &params,
        &Patch::Apply(&body),
    ) {
        Ok(request) => request,
        Err(e) => {
            warn!(device = %name, error = %e, "status write not made");
            return Written::No;
        }
    };
    // The answer is the whole device, spec and status: it is read past,
    // not built, since only whether the write was taken matters.
    match client.request::<IgnoredAny>(request).await {
        Ok(IgnoredAny) => {
            tracing::debug!(device = %name, "status written");
            Written::Yes
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Written::Gone,
        Err(e) => {
            warn!(device = %name, error = %e, "could not write device status; trying again");
            Written::No
        }
    }
}

/// The status to write now, as JSON text: the device's, with its MQTT
/// connection's state as `extension.mqtt` (part of the device's status, not
/// of the samples published on MQTT).
pub(crate) fn current(reported: Option<&str>, mqtt: Option<&MqttStatus>) -> Option<String> {
    let reported = reported?;
    let Some(state) = mqtt else {
        return Some(reported.to_string());
    };
    let mut status: serde_json::Value = serde_json::from_str(reported).ok()?;
    if let Some(fields) = status.as_object_mut() {
        fields.insert("extension".into(), serde_json::json!({ "mqtt": state }));
    }
    Some(status.to_string())
}
