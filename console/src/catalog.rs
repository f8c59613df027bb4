//! What the console knows of each DeviceLink: the object and its device as
//! the API server has them (kept by watches), where its device topics are,
//! and the last message seen on them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use devicelink_api::DeviceLink;
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use kube::{
    Api, Client, ResourceExt,
    api::DynamicObject,
    core::{ApiResource, GroupVersionKind},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, reflector, store::Writer},
        watcher,
    },
};
use serde_json::{Value, json};

use crate::hub::StreamMessage;

/// A DeviceLink by namespace and name.
pub type LinkKey = (String, String);

/// Where a DeviceLink's device topics are, or why the console does not
/// follow them.
#[derive(Debug, Clone, PartialEq)]
pub enum Stream {
    /// The DeviceLink has no MQTT extension: nothing to follow.
    None,
    Following {
        status_topic: String,
        write_topic: String,
        /// The broker connection (shared by DeviceLinks with equal
        /// settings) is up.
        connected: bool,
        /// Why it is not, when it is not.
        error: Option<String>,
    },
    /// The extension's settings cannot be followed.
    Unavailable(String),
}

/// The caches and what the broker side adds to them.
pub struct Catalog {
    pub links: Store<DeviceLink>,
    devices: Vec<(ApiResource, Store<DynamicObject>)>,
    streams: Mutex<HashMap<LinkKey, Stream>>,
    latest: Mutex<HashMap<LinkKey, Arc<StreamMessage>>>,
}

/// The device models devicelink ships: their objects' statuses are shown.
fn models() -> Vec<ApiResource> {
    devicelink_api::all_crds()
        .into_iter()
        .filter(|crd| crd.spec.group == devicelink_api::DEVICES_GROUP)
        .filter_map(|crd| {
            let version = crd.spec.versions.iter().find(|v| v.served)?;
            let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
            Some(ApiResource::from_gvk_with_plural(
                &gvk,
                &crd.spec.names.plural,
            ))
        })
        .collect()
}

impl Catalog {
    /// The catalog, the DeviceLinks' changes (polling them fills its
    /// DeviceLink cache) and the device watches that fill the rest.
    pub fn watch(
        client: &Client,
    ) -> (
        Arc<Catalog>,
        BoxStream<'static, DeviceLink>,
        Vec<BoxFuture<'static, ()>>,
    ) {
        let (links, writer) = reflector::store();
        let link_changes = reflector(
            writer,
            watcher(
                Api::<DeviceLink>::all(client.clone()),
                watcher::Config::default(),
            )
            .modify(|l| l.metadata.managed_fields = None),
        )
        .default_backoff()
        .touched_objects()
        .filter_map(|r| async move { r.ok() })
        .boxed();
        let mut devices = Vec::new();
        let mut device_watches = Vec::new();
        for model in models() {
            let writer = Writer::new(model.clone());
            let store = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &model);
            device_watches.push(
                reflector(
                    writer,
                    watcher(api, watcher::Config::default())
                        .modify(|d| d.metadata.managed_fields = None),
                )
                .default_backoff()
                .for_each(|_| async {})
                .boxed(),
            );
            devices.push((model, store));
        }
        let catalog = Arc::new(Catalog {
            links,
            devices,
            streams: Mutex::default(),
            latest: Mutex::default(),
        });
        (catalog, link_changes, device_watches)
    }

    /// Whether every cache has been filled once.
    pub async fn filled(&self) {
        let _ = self.links.wait_until_ready().await;
        for (_, store) in &self.devices {
            let _ = store.wait_until_ready().await;
        }
    }

    pub fn set_stream(&self, link: LinkKey, stream: Stream) {
        self.streams.lock().unwrap().insert(link, stream);
    }

    /// The broker connection a DeviceLink is followed on went up or down.
    pub fn set_connected(&self, link: &LinkKey, now: &Result<(), String>) {
        if let Some(Stream::Following {
            connected, error, ..
        }) = self.streams.lock().unwrap().get_mut(link)
        {
            *connected = now.is_ok();
            *error = now.clone().err();
        }
    }

    pub fn forget(&self, link: &LinkKey) {
        self.streams.lock().unwrap().remove(link);
        self.latest.lock().unwrap().remove(link);
    }

    pub fn stream(&self, link: &LinkKey) -> Option<Stream> {
        self.streams.lock().unwrap().get(link).cloned()
    }

    pub fn remember(&self, message: Arc<StreamMessage>) {
        let key = (message.namespace.clone(), message.name.clone());
        self.latest.lock().unwrap().insert(key, message);
    }

    /// The last message of every DeviceLink, for a client that just came.
    pub fn latest_messages(&self) -> Vec<Arc<StreamMessage>> {
        let mut all: Vec<_> = self.latest.lock().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        all
    }

    /// Every DeviceLink (of `namespace`, if given), as the API shows them.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Value> {
        let mut links: Vec<Arc<DeviceLink>> = self
            .links
            .state()
            .into_iter()
            .filter(|l| namespace.is_none_or(|ns| l.namespace().as_deref() == Some(ns)))
            .collect();
        links.sort_by_key(|l| (l.namespace(), l.name_any()));
        links.iter().map(|l| self.summary(l)).collect()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        let link = self.links.get(&ObjectRef::new(name).within(namespace))?;
        Some(self.summary(&link))
    }

    /// A DeviceLink as the console shows it: the columns of `kubectl get
    /// dl`, its conditions, its device's status and its topics.
    fn summary(&self, link: &DeviceLink) -> Value {
        let key = (link.namespace().unwrap_or_default(), link.name_any());
        let last = link.conditions().last();
        let device = self.device_of(link);
        let stream = match self.stream(&key) {
            Some(Stream::Following {
                status_topic,
                write_topic,
                connected,
                error,
            }) => json!({"statusTopic": status_topic, "writeTopic": write_topic,
                         "connected": connected, "error": error}),
            Some(Stream::Unavailable(why)) => json!({"error": why}),
            Some(Stream::None) | None => Value::Null,
        };
        json!({
            "namespace": key.0,
            "name": key.1,
            "uid": link.metadata.uid,
            "kind": link.spec.model.kind,
            "node": link.spec.adaptor.node,
            "adaptor": link.spec.adaptor.name,
            "phase": last.map(|c| c.type_.as_str()),
            "status": last.map(|c| c.status.as_str()),
            "reason": last.map(|c| c.reason.as_str()),
            "createdAt": link.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            "conditions": link.conditions(),
            "device": device.map(|d| json!({
                "spec": d.data.get("spec"),
                "status": d.data.get("status"),
            })),
            "stream": stream,
            "lastMessage": self.latest.lock().unwrap().get(&key).map(|m| m.as_ref().clone()),
        })
    }

    fn device_of(&self, link: &DeviceLink) -> Option<Arc<DynamicObject>> {
        let model = &link.spec.model;
        let (resource, store) = self
            .devices
            .iter()
            .find(|(r, _)| r.api_version == model.api_version && r.kind == model.kind)?;
        store.get(
            &ObjectRef::new_with(&link.name_any(), resource.clone())
                .within(&link.namespace().unwrap_or_default()),
        )
    }
}
