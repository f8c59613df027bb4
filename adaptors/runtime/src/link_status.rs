//! Keeps the DeviceLink's DeviceConnected condition in line with what the
//! device task reports (and with whether its status reaches MQTT, see
//! `connected::with_delivery`). The operator records each change of its
//! status or reason as an Event, so `kubectl describe` tells when and why
//! a device went away.
//!
//! The operator owns the stages before it and may reset them (a node went
//! away); the condition is written only when DeviceCreated is True, and
//! written again whenever a DeviceLink update shows it missing or stale.

use devicelink_api::{
    DeviceLink, Outcome,
    condition::{self, ConditionType},
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use tracing::{debug, warn};

use crate::link::Link;

/// Brings DeviceConnected in line with `outcome`, if it is not already.
pub(crate) async fn update(api: &Api<DeviceLink>, link: &Link, outcome: Outcome) {
    let Some(patch) = patch(link, outcome) else {
        return;
    };
    match api
        .patch_status(
            &link.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => debug!(devicelink = %link.name, "DeviceConnected updated"),
        // Someone wrote first; the watch brings the new version and we retry.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
        Err(e) => {
            warn!(devicelink = %link.name, error = %e, "could not update DeviceConnected");
        }
    }
}

/// The JSON Patch that sets DeviceConnected in the conditions `link` was
/// seen with, if it changes anything. It carries the resourceVersion they
/// were seen at: on any other version the API server refuses it (409), so
/// a condition the operator reset meanwhile is not put back.
fn patch(link: &Link, outcome: Outcome) -> Option<json_patch::Patch> {
    if !link.stages_done {
        return None; // The operator has not finished its stages.
    }
    let existing = link.connected.as_ref().map(|(_, c)| c);
    let next = condition::merge(
        existing,
        ConditionType::DeviceConnected,
        &outcome,
        &condition::now(),
    );
    if existing == Some(&next) {
        return None;
    }
    let (op, path) = match &link.connected {
        Some((at, _)) => ("replace", format!("/status/conditions/{at}")),
        None => ("add", format!("/status/conditions/{}", link.conditions)),
    };
    let patch = serde_json::json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": link.resource_version},
        {"op": op, "path": path, "value": next},
    ]);
    Some(serde_json::from_value(patch).expect("a JSON Patch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(conditions: serde_json::Value) -> Link {
        Link::from(
            serde_json::from_value::<DeviceLink>(json!({
                "metadata": {"name": "fan", "namespace": "ns", "resourceVersion": "9"},
                "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                         "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                                   "kind": "DummySpecialDevice"},
                         "template": {}},
                "status": {"conditions": conditions},
            }))
            .unwrap(),
        )
    }

    fn stages(then: serde_json::Value) -> serde_json::Value {
        let mut all = json!([
            {"type": "NodeExisted", "status": "True", "reason": "Found"},
            {"type": "ModelExisted", "status": "True", "reason": "Found"},
            {"type": "AdaptorExisted", "status": "True", "reason": "Found"},
            {"type": "DeviceCreated", "status": "True", "reason": "Created"},
        ]);
        if !then.is_null() {
            all.as_array_mut().unwrap().push(then);
        }
        all
    }

    #[test]
    fn device_connected_is_patched_at_its_place_at_the_version_seen_and_only_when_due() {
        let healthy = Outcome::ok("Healthy");
        let pending = link(stages(
            json!({"type": "DeviceConnected", "status": "Unknown",
                                          "reason": "Connecting"}),
        ));
        let ops = serde_json::to_value(patch(&pending, healthy.clone()).unwrap()).unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "9"})
        );
        assert_eq!(
            (&ops[1]["op"], &ops[1]["path"]),
            (&json!("replace"), &json!("/status/conditions/4"))
        );
        assert_eq!(
            (&ops[1]["value"]["status"], &ops[1]["value"]["reason"]),
            (&json!("True"), &json!("Healthy"))
        );

        let missing = link(stages(json!(null)));
        let ops = serde_json::to_value(patch(&missing, healthy.clone()).unwrap()).unwrap();
        assert_eq!(
            (&ops[1]["op"], &ops[1]["path"]),
            (&json!("add"), &json!("/status/conditions/4"))
        );

        let already = link(stages(json!({"type": "DeviceConnected", "status": "True",
                                          "reason": "Healthy"})));
        assert!(
            patch(&already, healthy.clone()).is_none(),
            "nothing changes"
        );
        let not_done =
            link(json!([{"type": "NodeExisted", "status": "False", "reason": "NotFound"}]));
        assert!(
            patch(&not_done, healthy).is_none(),
            "the operator's stages are not done"
        );
    }
}
