//! The finalizer the operator and the adaptors share on devices, and merge
//! patches that add or remove one finalizer safely.
//!
//! Each patch carries the object's resourceVersion: if anyone changed the
//! object (its finalizers included) meanwhile, the API server answers with a
//! conflict and the caller retries on fresh data, so nobody else's
//! finalizer is ever dropped.

use kube::api::ObjectMeta;
use serde_json::{Value, json};

/// On every device the operator creates: the adaptor removes it once it has
/// stopped the device and cleared its retained MQTT status message. The
/// operator removes it instead when no adaptor is there to do so.
pub const DEVICE_FINALIZER: &str = "edge.cattle.io/adaptor-cleanup";

/// Whether the object carries `finalizer`.
pub fn has(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// The merge patch that adds `finalizer`; `None` if it is there.
pub fn adding(meta: &ObjectMeta, finalizer: &str) -> Option<Value> {
    if has(meta, finalizer) {
        return None;
    }
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    finalizers.push(finalizer.to_string());
    Some(patch(meta, finalizers))
}

/// The merge patch that removes `finalizer`; `None` if it is not there.
pub fn removing(meta: &ObjectMeta, finalizer: &str) -> Option<Value> {
    if !has(meta, finalizer) {
        return None;
    }
    let rest = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    Some(patch(meta, rest))
}

fn patch(meta: &ObjectMeta, finalizers: Vec<String>) -> Value {
    json!({
        "metadata": {
            "resourceVersion": meta.resource_version,
            "finalizers": finalizers,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            resource_version: Some("42".into()),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn removing_keeps_the_others_and_pins_the_version() {
        let patch = removing(&meta(&["a", DEVICE_FINALIZER, "b"]), DEVICE_FINALIZER).unwrap();
        assert_eq!(patch["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(removing(&meta(&["a"]), DEVICE_FINALIZER), None);
    }

    #[test]
    fn adding_appends_once() {
        let patch = adding(&meta(&["a"]), "x").unwrap();
        assert_eq!(patch["metadata"]["finalizers"], json!(["a", "x"]));
        assert_eq!(adding(&meta(&["x"]), "x"), None);
    }
}
