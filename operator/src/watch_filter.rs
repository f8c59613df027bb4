//! Keeps only the watch events that matter to a DeviceLink.
//!
//! Nodes send heartbeats, the adaptor writes device status, CRDs get status
//! updates: none of that changes what a DeviceLink shows. Each watch names
//! the part of an object that matters (its signature); an object passes when
//! that changed, and always when it was deleted (a deleted object's last
//! state has the signature seen before, so a plain predicate would drop it).

use std::{collections::HashMap, hash::Hash};

use futures::{Stream, StreamExt, stream};
use kube::{Resource, runtime::watcher};

/// The objects of `events` whose signature changed, and every deletion.
pub fn changes_and_deletions<K, S>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    signature: impl Fn(&K) -> S + Send,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Send,
    S: Hash + Eq + Send,
{
    let mut seen: HashMap<(Option<String>, Option<String>), S> = HashMap::new();
    events.flat_map(move |event| {
        let key = |o: &K| (o.meta().namespace.clone(), o.meta().name.clone());
        let out = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let now = signature(&o);
                let changed = seen.get(&key(&o)) != Some(&now);
                seen.insert(key(&o), now);
                changed.then_some(Ok(o))
            }
            Ok(watcher::Event::Delete(o)) => {
                seen.remove(&key(&o));
                Some(Ok(o))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        };
        stream::iter(out)
    })
}

/// `events` without their errors, each logged. A watch retries by itself
/// (its own backoff); an error handed to the controller would pause every
/// watch the controller merges (kube's trigger backoff, up to 30 s at a
/// time), so one model whose CRD is not installed kept the DeviceLinks'
/// own watch from listing, and the operator from becoming ready.
pub fn errors_logged<K: Send>(
    events: impl Stream<Item = Result<K, watcher::Error>> + Send,
    watch: &'static str,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send {
    events.filter_map(move |event| {
        std::future::ready(match event {
            Ok(object) => Some(Ok(object)),
            Err(e) => {
                if not_served(&e) {
                    tracing::debug!(watch, error = %e, "not served (its CRD is not installed); retrying");
                } else {
                    tracing::warn!(watch, error = %e, "watch failed; retrying");
                }
                None
            }
        })
    })
}

/// Whether the API server does not serve the watched kind (404).
fn not_served(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    }
}

/// What every signature includes: which object it is (a re-created object
/// has a new UID), its generation, and whether it is being deleted.
pub fn identity(meta: &kube::api::ObjectMeta) -> (Option<String>, Option<i64>, bool) {
    (
        meta.uid.clone(),
        meta.generation,
        meta.deletion_timestamp.is_some(),
    )
}

/// Drops what the operator never reads from a cached object: managed
/// fields and kubectl's copy of the last applied object. With thousands of
/// DeviceLinks they would be most of the cache.
pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, uid: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": uid},
            "data": {"v": value},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn passes_changes_of_signature_and_every_deletion() {
        let events = vec![
            Ok(watcher::Event::InitApply(cm("a", "1", "x"))),
            Ok(watcher::Event::Apply(cm("a", "1", "x"))),
            Ok(watcher::Event::Apply(cm("a", "1", "y"))),
            Ok(watcher::Event::Delete(cm("a", "1", "y"))),
            Ok(watcher::Event::Apply(cm("a", "2", "y"))),
        ];
        let passed: Vec<String> = changes_and_deletions(stream::iter(events), |c: &ConfigMap| {
            (
                identity(&c.metadata),
                c.data.clone().unwrap_or_default().get("v").cloned(),
            )
        })
        .map(|r| {
            let c = r.unwrap();
            format!("{}:{}", c.metadata.uid.unwrap(), c.data.unwrap()["v"])
        })
        .collect()
        .await;
        assert_eq!(passed, ["1:x", "1:y", "1:y", "2:y"]);
    }
}
