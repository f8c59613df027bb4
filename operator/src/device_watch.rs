//! Watching the device objects the operator creates, so that a device that
//! is deleted or edited by hand is put back from its DeviceLink's template.
//!
//! Only metadata is watched (the adaptor owns `status`, and the spec is ours),
//! and only changes of shape wake a DeviceLink: a new generation, a new UID,
//! a deletion starting or done, or an edit of the labels that assign it to
//! a node's adaptor (put back: they are the operator's). The adaptor's
//! status writes wake nothing.

use std::collections::HashMap;

use devicelink_api::{DeviceLink, labels};
use futures::{StreamExt, stream::BoxStream};

use crate::watch_filter;
use kube::{
    Api, Client,
    api::{DynamicObject, PartialObjectMeta},
    core::ApiResource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, store::Writer},
        watcher::{self, watcher},
    },
};

pub type DeviceMeta = PartialObjectMeta<DynamicObject>;

/// Metadata caches of devices, one per model kind devicelink ships.
#[derive(Clone, Default)]
pub struct DeviceCaches {
    stores: HashMap<(String, String), Store<DeviceMeta>>,
}

impl DeviceCaches {
    /// Adds the cache of one model's devices.
    pub fn insert(&mut self, model: &ApiResource, store: Store<DeviceMeta>) {
        self.stores
            .insert((model.group.clone(), model.kind.clone()), store);
    }

    /// The cached metadata of a device, if its model is one we watch and it exists.
    pub fn get(
        &self,
        model: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<DeviceMeta>> {
        let store = self
            .stores
            .get(&(model.group.clone(), model.kind.clone()))?;
        store.get(&ObjectRef::new_with(name, model.clone()).within(namespace))
    }
}

/// Devices of one model whose shape changed or that went away.
pub type DeviceEvents = BoxStream<'static, Result<DeviceMeta, watcher::Error>>;

/// Starts metadata watches on the devices of every shipped model. Returns the
/// caches and, per model, the stream of devices whose shape changed or that
/// went away. A model whose CRD is not installed yet is retried with backoff.
pub fn watch(
    client: &Client,
    models: impl IntoIterator<Item = ApiResource>,
) -> (DeviceCaches, Vec<(ApiResource, DeviceEvents)>) {
    let mut caches = DeviceCaches::default();
    let mut streams = Vec::new();
    for model in models {
        let writer = Writer::<DeviceMeta>::new(model.clone());
        caches.insert(&model, writer.as_reader());
        let api: Api<DeviceMeta> = Api::all_with(client.clone(), &model);
        // Only devices the operator made carry the adaptor label.
        let config = watcher::Config::default().labels(labels::ADAPTOR);
        let events = reflector::reflector(writer, watcher(api, config).modify(slim_device))
            .default_backoff();
        let shape = |d: &DeviceMeta| {
            (
                watch_filter::identity(&d.metadata),
                d.metadata.labels.clone(),
            )
        };
        streams.push((
            model,
            watch_filter::changes_and_deletions(events, shape).boxed(),
        ));
    }
    (caches, streams)
}

/// What the operator reads of a device: identity, generation, owner,
/// finalizers, deletion, and the labels that are its own.
fn slim_device(device: &mut DeviceMeta) {
    watch_filter::slim(device);
    if let Some(l) = device.metadata.labels.as_mut() {
        l.retain(|k, _| is_ours(k));
    }
    device.metadata.annotations = None;
}

/// The labels the operator sets on a device and keeps as it set them.
pub fn is_ours(label: &str) -> bool {
    label == labels::NODE || label == labels::ADAPTOR
}

/// The device models devicelink ships (served version of each CRD).
pub fn shipped_models() -> Vec<ApiResource> {
    devicelink_api::all_crds()
        .into_iter()
        .filter(|crd| crd.spec.group == devicelink_api::DEVICES_GROUP)
        .filter_map(|crd| {
            let version = crd.spec.versions.iter().find(|v| v.served)?.name.clone();
            Some(ApiResource {
                api_version: format!("{}/{version}", crd.spec.group),
                group: crd.spec.group,
                version,
                kind: crd.spec.names.kind,
                plural: crd.spec.names.plural,
            })
        })
        .collect()
}

/// The DeviceLink a device belongs to: same namespace and name.
pub fn owner(device: &DeviceMeta) -> Option<ObjectRef<DeviceLink>> {
    let owned = device
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DeviceLink" && o.api_version.starts_with("edge.cattle.io/"));
    owned.then(|| {
        ObjectRef::new(device.metadata.name.as_deref().unwrap_or_default())
            .within(device.metadata.namespace.as_deref().unwrap_or_default())
    })
}
