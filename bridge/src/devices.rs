//! The DeviceLinks a bridge's `source.deviceLinks` selects, followed by a
//! watch: where each publishes its status (the bridge subscribes there),
//! where it takes writes (commands go there), and what a record of its
//! status says about it.

use std::{collections::HashMap, sync::Arc};

use devicelink_api::DeviceLink;
use devicelink_mqtt::{observe::device_topics, topic::TopicContext};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{
    Api, Client, ResourceExt,
    core::Selector,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;

/// A selected DeviceLink, as the bridge uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub status_topic: String,
    pub write_topic: String,
    /// The client ID and username its MQTT extension gives, if written
    /// there (not resolved from references: they are not the bridge's).
    pub client_id: Option<String>,
    pub username: Option<String>,
}

/// The selected DeviceLinks, by status topic and by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directory {
    /// False until the first list of DeviceLinks is in.
    listed: bool,
    by_topic: HashMap<String, Arc<Device>>,
    by_name: HashMap<String, Arc<Device>>,
}

impl Directory {
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// The DeviceLink whose status comes on `topic`.
    pub fn by_topic(&self, topic: &str) -> Option<&Device> {
        self.by_topic.get(topic).map(Arc::as_ref)
    }

    /// The DeviceLink of the namespace named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Device> {
        self.by_name.get(name).map(Arc::as_ref)
    }

    pub fn status_topics(&self) -> impl Iterator<Item = &str> {
        self.by_topic.keys().map(String::as_str)
    }

    fn insert(&mut self, device: Device) {
        let device = Arc::new(device);
        self.by_topic
            .insert(device.status_topic.clone(), device.clone());
        self.by_name.insert(device.name.clone(), device);
    }
}

/// Which DeviceLinks, checked: the selector as the API server takes it.
pub fn selector(selection: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(selection.clone())
        .map_err(|e| format!("spec.source.deviceLinks.selector: {e}"))
}

/// What the bridge takes of `link`: nothing without an MQTT extension
/// (its adaptor publishes nowhere), or why its extension is unusable.
pub fn device_of(link: &DeviceLink) -> Option<Result<Device, String>> {
    let options = match link.spec.mqtt_extension()? {
        Ok(options) => options,
        Err(e) => return Some(Err(e)),
    };
    let context = TopicContext {
        namespace: link.namespace().unwrap_or_default(),
        name: link.name_any(),
        uid: link.uid().unwrap_or_default(),
    };
    let (status_topic, write_topic) = match device_topics(&options.message, &context) {
        Ok(topics) => topics,
        Err(e) => return Some(Err(e.to_string())),
    };
    let auth = options.client.basic_auth.as_ref();
    Some(Ok(Device {
        namespace: context.namespace,
        name: context.name,
        uid: context.uid,
        status_topic,
        write_topic,
        client_id: options.client.client_id.clone(),
        username: auth.and_then(|a| a.username.clone()),
    }))
}

/// Keeps `directory` up to date with the DeviceLinks of `namespace` that
/// `selector` selects, until the task is aborted.
pub async fn follow(
    client: Client,
    namespace: String,
    selector: Selector,
    directory: watch::Sender<Arc<Directory>>,
) {
    let api: Api<DeviceLink> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels_from(&selector);
    let mut links = std::collections::BTreeMap::new();
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listing: Option<std::collections::BTreeMap<String, DeviceLink>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing = Some(Default::default()),
            Ok(watcher::Event::InitApply(link)) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(link.name_any(), link);
                }
            }
            Ok(watcher::Event::InitDone) => links = listing.take().unwrap_or_default(),
            Ok(watcher::Event::Apply(link)) => {
                links.insert(link.name_any(), link);
            }
            Ok(watcher::Event::Delete(link)) => {
                links.remove(&link.name_any());
            }
            Err(e) => {
                tracing::warn!(%namespace, error = %e, "watching DeviceLinks; retrying");
                continue;
            }
        }
        if listing.is_some() {
            continue;
        }
        let next = Arc::new(directory_of(links.values()));
        directory.send_if_modified(|now| {
            let changed = **now != *next;
            if changed {
                *now = next;
            }
            changed
        });
    }
}

fn directory_of<'a>(links: impl Iterator<Item = &'a DeviceLink>) -> Directory {
    let mut directory = Directory {
        listed: true,
        ..Default::default()
    };
    for link in links {
        match device_of(link) {
            Some(Ok(device)) => directory.insert(device),
            Some(Err(why)) => tracing::warn!(
                namespace = link.namespace().unwrap_or_default(),
                name = link.name_any(),
                %why,
                "a selected DeviceLink's MQTT extension is unusable; its status is not taken"
            ),
            None => {}
        }
    }
    directory
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(name: &str, mqtt: serde_json::Value) -> DeviceLink {
        serde_json::from_value(json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "DeviceLink",
            "metadata": {"name": name, "namespace": "plant", "uid": format!("uid-{name}")},
            "spec": {
                "adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice"},
                "template": {"spec": {"extension": {"mqtt": mqtt}}},
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_device_is_found_by_its_status_topic_and_its_name() {
        let fan = link(
            "fan",
            json!({"client": {"server": "tcp://b:1883", "clientID": "fan-1",
                              "basicAuth": {"username": "plant", "password": "x"}},
                   "message": {"topic": "plant/:name/:operator",
                               "operator": {"write": "status", "read": "set"}}}),
        );
        let bare: DeviceLink = serde_json::from_value(json!({
            "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
            "metadata": {"name": "bare", "namespace": "plant"},
            "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                     "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice"},
                     "template": {"spec": {}}},
        }))
        .unwrap();
        let directory = directory_of([fan, bare].iter());
        let device = directory.by_topic("plant/fan/status").unwrap();
        assert_eq!(device.write_topic, "plant/fan/set");
        assert_eq!(device.uid, "uid-fan");
        assert_eq!(device.client_id.as_deref(), Some("fan-1"));
        assert_eq!(device.username.as_deref(), Some("plant"));
        assert_eq!(directory.by_name("fan"), Some(device));
        assert_eq!(
            directory.status_topics().count(),
            1,
            "no extension, no topic"
        );
    }

    #[test]
    fn a_selector_the_api_server_would_not_take_is_refused() {
        let bad: LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "line", "operator": "Near", "values": ["1"]}]
        }))
        .unwrap();
        assert!(
            selector(&bad)
                .unwrap_err()
                .starts_with("spec.source.deviceLinks.selector")
        );
        let good: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"line": "1"}})).unwrap();
        assert_eq!(selector(&good).unwrap().to_string(), "line=1");
    }
}
