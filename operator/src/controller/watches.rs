//! The watches besides the DeviceLinks' own: what each keeps of its
//! objects, which of their changes count, and which DeviceLinks a change
//! concerns.

use devicelink_api::{DeviceLink, labels};
use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::{
    api::{
        core::v1::{Node, NodeCondition, NodeStatus, Pod},
        rbac::v1::Role,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceDefinitionStatus,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PartialObjectMeta},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, reflector},
        watcher::{self, watcher},
    },
};

use crate::watch_filter;

/// The changes of one kind of object that may concern DeviceLinks.
pub(super) type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// Nodes (their addresses, not their heartbeats), with their cache.
pub(super) fn nodes(client: &Client) -> (Store<Node>, Changes<Node>) {
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).modify(slim_node),
    )
    .default_backoff();
    let changes = watch_filter::changes_and_deletions(events, node_signature).boxed();
    (store, changes)
}

/// Model CRDs appearing, changing or going, with their cache.
pub(super) fn crds(
    client: &Client,
) -> (
    Store<CustomResourceDefinition>,
    Changes<CustomResourceDefinition>,
) {
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(
            Api::<CustomResourceDefinition>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(slim_crd),
    )
    .default_backoff();
    let changes = watch_filter::changes_and_deletions(events, crd_signature).boxed();
    (store, changes)
}

/// The adaptor pods the operator made, in its namespace, with their cache.
pub(super) fn adaptor_pods(client: &Client, namespace: &str) -> (Store<Pod>, Changes<Pod>) {
    made_by_us_in(Api::namespaced(client.clone(), namespace))
}

/// The metadata of the grant Roles the operator made, in every namespace
/// (the grant digest is an annotation), with their cache.
pub(super) fn grant_roles(
    client: &Client,
) -> (
    Store<PartialObjectMeta<Role>>,
    Changes<PartialObjectMeta<Role>>,
) {
    made_by_us_in(Api::all(client.clone()))
}

/// The objects of `api` that the operator made, with their cache.
fn made_by_us_in<K>(api: Api<K>) -> (Store<K>, Changes<K>)
where
    K: kube::Resource<DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let changes = reflector(
        writer,
        watcher(api, made_by_us()).modify(watch_filter::slim),
    )
    .default_backoff()
    .touched_objects()
    .boxed();
    (store, changes)
}

/// The metadata of every object of kind `K` (referenced Secrets and
/// ConfigMaps: enough to know that one appeared, changed or went away).
pub(super) fn metadata_of<K>(client: &Client) -> Changes<PartialObjectMeta<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    PartialObjectMeta<K>: kube::Resource<DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher(
        Api::<PartialObjectMeta<K>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .boxed()
}

/// A node as the operator keeps it: its identity, addresses and Ready
/// condition (without the heartbeat time, which changes all the time).
pub(super) fn slim_node(node: &mut Node) {
    watch_filter::slim(node);
    node.spec = None;
    if let Some(status) = node.status.as_mut() {
        let ready = status
            .conditions
            .take()
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == "Ready")
            .map(|c| NodeCondition {
                last_heartbeat_time: None,
                ..c
            })
            .collect();
        *status = NodeStatus {
            addresses: status.addresses.take(),
            conditions: Some(ready),
            ..Default::default()
        };
    }
}

/// A CRD as the operator keeps it: group, names, served versions and
/// whether it is established; not the (large) schemas.
pub(super) fn slim_crd(crd: &mut CustomResourceDefinition) {
    watch_filter::slim(crd);
    crd.status = crd
        .status
        .take()
        .map(|status| CustomResourceDefinitionStatus {
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .filter(|c| c.type_ == "Established" || c.type_ == "NamesAccepted")
                    .collect()
            }),
            ..Default::default()
        });
    for version in &mut crd.spec.versions {
        version.schema = None;
        version.additional_printer_columns = None;
        version.subresources = None;
    }
}

/// Selects the objects the operator made (adaptor pods, grant Roles).
pub(super) fn made_by_us() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER))
}

/// What of a node a DeviceLink shows: which node it is, its addresses and
/// whether (and why not) it is Ready.
pub(super) fn node_signature(node: &Node) -> impl std::hash::Hash + Eq + use<> {
    let status = node.status.iter();
    let addresses: Vec<(String, String)> = status
        .clone()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    let ready: Vec<(String, Option<String>, Option<String>)> = status
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .collect();
    (watch_filter::identity(&node.metadata), addresses, ready)
}

/// What of a CRD a DeviceLink shows: which CRD it is (its spec is in the
/// generation) and whether it is established, or why not.
pub(super) fn crd_signature(crd: &CustomResourceDefinition) -> impl std::hash::Hash + Eq + use<> {
    (
        watch_filter::identity(&crd.metadata),
        crate::stages::not_established_because(crd),
    )
}

/// Whether the adaptor pod whose objects carry `object_labels` (adaptor
/// kind and node) serves the DeviceLink.
pub(super) fn served_by(
    link: &DeviceLink,
    object_labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    object_labels.get(labels::NODE) == Some(&labels::node_label_value(&link.spec.adaptor.node))
        && devicelink_api::adaptor::find(&link.spec.adaptor.name).is_some_and(|a| {
            object_labels.get(labels::ADAPTOR).map(String::as_str) == Some(a.short_name)
        })
}

/// The DeviceLinks in the object's namespace whose references name it.
pub(super) fn referencing(
    links: &Store<DeviceLink>,
    object: &ObjectMeta,
    names: impl Fn(&DeviceLink) -> std::collections::BTreeSet<String>,
) -> Vec<ObjectRef<DeviceLink>> {
    let (namespace, name) = (
        object.namespace.clone(),
        object.name.clone().unwrap_or_default(),
    );
    matching(links, |l| {
        l.namespace() == namespace && names(l).contains(&name)
    })
}

/// The DeviceLinks in the cache that satisfy `pred`.
pub(super) fn matching(
    links: &Store<DeviceLink>,
    pred: impl Fn(&DeviceLink) -> bool,
) -> Vec<ObjectRef<DeviceLink>> {
    links
        .state()
        .iter()
        .filter(|l| pred(l))
        .map(|l| ObjectRef::from_obj(l.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, heartbeat: &str) -> Node {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "edge-1", "uid": "n1"},
            "spec": {"podCIDR": "10.1.0.0/24"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
                "conditions": [
                    {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": heartbeat},
                    {"type": "Ready", "status": ready, "reason": "KubeletReady",
                     "lastHeartbeatTime": heartbeat},
                ],
                "images": [{"names": ["registry.example/adaptor:1"], "sizeBytes": 1}],
            },
        }))
        .unwrap();
        slim_node(&mut node);
        node
    }

    #[test]
    fn a_heartbeat_wakes_nothing_and_a_change_of_readiness_does() {
        let kept = node("True", "2026-11-28T01:00:00Z");
        let conditions = kept.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 1, "only Ready is kept");
        assert_eq!(conditions[0].last_heartbeat_time, None);
        assert!(kept.status.as_ref().unwrap().images.is_none());
        let signature = |n: &Node| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&node_signature(n), &mut h);
            std::hash::Hasher::finish(&h)
        };
        assert_eq!(
            signature(&kept),
            signature(&node("True", "2026-11-28T01:00:40Z"))
        );
        assert_ne!(
            signature(&kept),
            signature(&node("Unknown", "2026-11-28T01:00:00Z"))
        );
    }

    #[test]
    fn a_crd_keeps_whether_it_is_established_and_nothing_large() {
        let mut crd = devicelink_api::all_crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "ModbusDevice")
            .unwrap();
        crd.status = Some(
            serde_json::from_value(json!({
                "acceptedNames": {"kind": "ModbusDevice", "plural": "modbusdevices"},
                "storedVersions": ["v1alpha1"],
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
                ],
            }))
            .unwrap(),
        );
        let established = {
            let mut c = crd.clone();
            slim_crd(&mut c);
            c
        };
        assert!(established.spec.versions[0].schema.is_none());
        assert_eq!(crate::stages::not_established_because(&established), None);
        let mut fresh = crd;
        fresh.status = None;
        slim_crd(&mut fresh);
        assert!(crate::stages::not_established_because(&fresh).is_some());
        assert!(crd_signature(&fresh) != crd_signature(&established));
    }
}
