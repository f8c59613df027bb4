//! Which DeviceLinks a change of another object concerns, and how little
//! of those objects the caches keep.

use devicelink_api::{DeviceLink, labels};
use k8s_openapi::{
    api::core::v1::Node,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    ResourceExt,
    api::ObjectMeta,
    runtime::{
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use crate::watch_filter;

/// A node as the operator keeps it: its identity and addresses.
pub(super) fn slim_node(node: &mut Node) {
    watch_filter::slim(node);
    node.spec = None;
    if let Some(status) = node.status.as_mut() {
        *status = k8s_openapi::api::core::v1::NodeStatus {
            addresses: status.addresses.take(),
            ..Default::default()
        };
    }
}

/// A CRD as the operator keeps it: group, names and served versions, not
/// the (large) schemas.
pub(super) fn slim_crd(crd: &mut CustomResourceDefinition) {
    watch_filter::slim(crd);
    crd.status = None;
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

/// What of a node a DeviceLink shows: which node it is, and its addresses.
pub(super) fn node_signature(node: &Node) -> impl std::hash::Hash + Eq + use<> {
    let addresses: Vec<(String, String)> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    (watch_filter::identity(&node.metadata), addresses)
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
