//! The values a DeviceLink's settings take from its `spec.references` (the
//! `*Ref` fields), for the adaptors and the console.
//!
//! Each referenced Secret and ConfigMap is followed with a watch on that one
//! object: the reader may read exactly those objects (the operator grants
//! them by name), and a rotated password takes effect without anyone
//! touching the DeviceLink. downwardAPI items come from the DeviceLink
//! itself.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
};

use devicelink_api::{
    DeviceLink,
    devicelink::{DeviceLinkReference, ReferenceItem},
    mqtt::BROKER_IDENTITY_REFERENCE,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::warn;

/// Keys and values of one Secret or ConfigMap.
pub type Data = BTreeMap<String, Vec<u8>>;

/// A Secret or ConfigMap in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    namespace: String,
    kind: ObjectKind,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ObjectKind {
    Secret,
    ConfigMap,
}

/// What a device's settings can refer to: entry name -> item -> value.
#[derive(Clone, Default, PartialEq)]
pub struct References {
    entries: BTreeMap<String, Entry>,
    /// The device is known but its DeviceLink is not yet.
    awaiting_link: bool,
}

#[derive(Clone, PartialEq)]
enum Entry {
    /// Not read yet: following it has just begun, or every attempt so far
    /// failed (the last failure, if any).
    Pending(Option<String>),
    /// The object does not exist (or is not readable).
    Missing(String),
    Items(BTreeMap<String, Vec<u8>>),
}

/// Why a `*Ref` has no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference {0:?} is still being read{why}", why = last_failure(.1))]
    Pending(String, Option<String>),
    #[error("{0} is not an entry of spec.references")]
    NoEntry(String),
    #[error("reference {0:?}: {1}")]
    Missing(String, String),
    #[error("reference {0:?} has no item {1:?}")]
    NoItem(String, String),
    #[error("item {1:?} of reference {0:?} is not UTF-8 text")]
    NotText(String, String),
}

fn last_failure(why: &Option<String>) -> String {
    why.as_ref()
        .map(|why| format!(" (the last attempt failed: {why})"))
        .unwrap_or_default()
}

impl References {
    /// Before the device's DeviceLink is known: everything is pending.
    pub fn awaiting_link() -> References {
        References {
            entries: BTreeMap::new(),
            awaiting_link: true,
        }
    }

    /// Whether some referenced object (or the DeviceLink naming them) has
    /// not been read yet.
    pub fn pending(&self) -> bool {
        self.awaiting_link
            || self
                .entries
                .values()
                .any(|e| matches!(e, Entry::Pending(_)))
    }

    /// The value of one item.
    pub fn get(&self, r: &ReferenceItem) -> Result<&[u8], ReferenceError> {
        match self.entries.get(&r.name) {
            None if self.awaiting_link => Err(ReferenceError::Pending(r.name.clone(), None)),
            None => Err(ReferenceError::NoEntry(format!("{:?}", r.name))),
            Some(Entry::Pending(why)) => Err(ReferenceError::Pending(r.name.clone(), why.clone())),
            Some(Entry::Missing(why)) => Err(ReferenceError::Missing(r.name.clone(), why.clone())),
            Some(Entry::Items(items)) => items
                .get(&r.item)
                .map(Vec::as_slice)
                .ok_or_else(|| ReferenceError::NoItem(r.name.clone(), r.item.clone())),
        }
    }

    /// The value of one item as text (passwords, PEM).
    pub fn text(&self, r: &ReferenceItem) -> Result<String, ReferenceError> {
        String::from_utf8(self.get(r)?.to_vec())
            .map_err(|_| ReferenceError::NotText(r.name.clone(), r.item.clone()))
    }

    /// A text setting given inline or by reference (the API server allows
    /// one of the two); `None` when neither is set.
    pub fn inline_or_ref(
        &self,
        inline: &Option<String>,
        by_ref: &Option<ReferenceItem>,
    ) -> Result<Option<String>, ReferenceError> {
        match (inline, by_ref) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(r)) => self.text(r).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Names entries and items, never values: these are credentials.
impl fmt::Debug for References {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, entry) in &self.entries {
            match entry {
                Entry::Pending(_) => map.entry(name, &"pending"),
                Entry::Missing(why) => map.entry(name, why),
                Entry::Items(items) => map.entry(name, &items.keys().collect::<Vec<_>>()),
            };
        }
        map.finish()
    }
}

/// The Secrets and ConfigMaps a DeviceLink references.
pub fn objects_of(link: &DeviceLink) -> Vec<ObjectKey> {
    objects_in(link, link.spec.references.iter())
}

/// The Secrets and ConfigMaps that `references`, the references of an
/// object in `namespace` (a KafkaBridge), name.
pub fn objects_referenced(namespace: &str, references: &[DeviceLinkReference]) -> Vec<ObjectKey> {
    objects_in_namespace(namespace, references.iter())
}

/// The Secrets and ConfigMaps of the references that the DeviceLink's
/// template uses at `*Ref` fields under `prefix` (such as
/// [`devicelink_api::devicelink::MQTT_EXTENSION_REFERENCE_PATHS`]).
pub fn objects_used_under(link: &DeviceLink, prefix: &str) -> Vec<ObjectKey> {
    objects_in(link, link.spec.references_used_under(prefix).into_iter())
}

fn objects_in<'a>(
    link: &DeviceLink,
    references: impl Iterator<Item = &'a DeviceLinkReference>,
) -> Vec<ObjectKey> {
    objects_in_namespace(&link.namespace().unwrap_or_default(), references)
}

fn objects_in_namespace<'a>(
    namespace: &str,
    references: impl Iterator<Item = &'a DeviceLinkReference>,
) -> Vec<ObjectKey> {
    let key = |kind, name: &str| ObjectKey {
        namespace: namespace.to_string(),
        kind,
        name: name.to_string(),
    };
    let mut keys = Vec::new();
    for r in references {
        if let Some(s) = &r.secret {
            keys.push(key(ObjectKind::Secret, &s.name));
        }
        if let Some(c) = &r.config_map {
            keys.push(key(ObjectKind::ConfigMap, &c.name));
        }
    }
    keys
}

/// What one followed object holds, as far as the reader knows.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// Not read yet; the last failure to read it, if any.
    Unread(Option<String>),
    /// It does not exist.
    Absent,
    /// Read once and failed: for a reader that reads it again next time
    /// (`read_once`), not one that keeps trying.
    Unreadable(String),
    Present(Data),
}

/// What a follow task reports about its object.
#[derive(Debug)]
pub enum Update {
    /// Its data now, or `None` once it is known to be absent.
    Data(Option<Data>),
    /// A read failed (no right to read it, the API server away); the watch
    /// tries again.
    Failed(String),
}

/// What the followed objects currently hold.
pub(crate) type Followed = HashMap<ObjectKey, Read>;

/// Resolves a DeviceLink's references against the followed objects.
/// Of `owner` (a DeviceLink as JSON), only the fields that the downwardAPI
/// items of `references` name, where they are: what resolving them needs.
/// `Null` if they name none (nearly always).
pub fn downward_fields(owner: &Value, references: &[DeviceLinkReference]) -> Value {
    let mut kept = Value::Null;
    let paths = references
        .iter()
        .filter_map(|r| r.downward_api.as_ref())
        .flat_map(|d| d.items.iter().map(|i| i.field_ref.field_path.as_str()));
    for path in paths {
        let parts: Vec<&str> = match path.split_once("['") {
            Some((head, _)) => head.split('.').collect(),
            None => path.split('.').collect(),
        };
        let Some(value) = parts.iter().try_fold(owner, |v, p| v.get(p)) else {
            continue;
        };
        let mut at = &mut kept;
        for part in &parts {
            if !at.is_object() {
                *at = Value::Object(Default::default());
            }
            at = at
                .as_object_mut()
                .expect("made an object")
                .entry(part.to_string())
                .or_insert(Value::Null);
        }
        *at = value.clone();
    }
    kept
}

/// Resolves `references` of `owner` (an object in `namespace`, whose fields
/// downwardAPI items name) against the followed objects.
fn resolve_in(
    namespace: &str,
    references: &[DeviceLinkReference],
    owner: &Value,
    objects: &Followed,
) -> References {
    let mut entries = BTreeMap::new();
    for r in references {
        let source = r
            .secret
            .as_ref()
            .map(|s| (ObjectKind::Secret, s))
            .or(r.config_map.as_ref().map(|c| (ObjectKind::ConfigMap, c)));
        let entry = if let Some((kind, source)) = source {
            let key = ObjectKey {
                namespace: namespace.to_string(),
                kind,
                name: source.name.clone(),
            };
            entry_of(&key, objects, &source.items)
        } else if let Some(downward) = &r.downward_api {
            Entry::Items(
                downward
                    .items
                    .iter()
                    .filter_map(|i| {
                        let value = field(owner, &i.field_ref.field_path)?;
                        Some((i.name.clone(), value.into_bytes()))
                    })
                    .collect(),
            )
        } else {
            Entry::Items(BTreeMap::new())
        };
        entries.insert(r.name.clone(), entry);
    }
    References {
        entries,
        awaiting_link: false,
    }
}

/// What a followed object offers: its items (only `items`, unless empty).
fn entry_of(key: &ObjectKey, objects: &Followed, items: &[String]) -> Entry {
    match objects.get(key) {
        None => Entry::Pending(None),
        Some(Read::Unread(why)) => Entry::Pending(why.clone()),
        Some(Read::Absent) => {
            Entry::Missing(format!("{:?} {:?} does not exist", key.kind, key.name))
        }
        Some(Read::Unreadable(why)) => Entry::Missing(format!(
            "{:?} {:?} could not be read: {why}",
            key.kind, key.name
        )),
        Some(Read::Present(data)) => Entry::Items(
            data.iter()
                .filter(|(k, _)| items.is_empty() || items.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    }
}

/// A field of the DeviceLink by downward-API path: `metadata.name`,
/// `metadata.labels['key']`, `status.nodeName`, ...
fn field(object: &Value, path: &str) -> Option<String> {
    let (path, key) = match path.split_once("['") {
        Some((head, rest)) => (head, Some(rest.strip_suffix("']")?)),
        None => (path, None),
    };
    let mut value = object;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    if let Some(key) = key {
        value = value.get(key)?;
    }
    Some(match value {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    })
}

/// The objects a reader follows: a watch per object, started and stopped as
/// the set it wants changes, and what each holds now.
pub struct Following {
    client: Client,
    /// The Secret holding the reader's own broker identity, followed
    /// always and offered to every DeviceLink as
    /// [`BROKER_IDENTITY_REFERENCE`].
    identity: Option<ObjectKey>,
    followed: Followed,
    tasks: HashMap<ObjectKey, AbortOnDrop>,
    updates: mpsc::UnboundedSender<(ObjectKey, Update)>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Following {
    /// A follower and the receiver of its objects' updates, which the owner
    /// hands back to [`Following::record`].
    pub fn new(client: Client) -> (Following, mpsc::UnboundedReceiver<(ObjectKey, Update)>) {
        let (updates, received) = mpsc::unbounded_channel();
        let following = Following {
            client,
            identity: None,
            followed: Followed::new(),
            tasks: HashMap::new(),
            updates,
        };
        (following, received)
    }

    /// Follows exactly `wanted`: new objects from now on, and no longer the
    /// others (what they held is forgotten).
    pub fn want(&mut self, mut wanted: HashSet<ObjectKey>) {
        wanted.extend(self.identity.clone());
        self.tasks.retain(|k, _| wanted.contains(k));
        self.followed.retain(|k, _| wanted.contains(k));
        for key in wanted {
            if !self.tasks.contains_key(&key) {
                let task = follow(self.client.clone(), key.clone(), self.updates.clone());
                self.followed.insert(key.clone(), Read::Unread(None));
                self.tasks.insert(key, AbortOnDrop(task));
            }
        }
    }

    /// Takes in an update from a follow task. A failed read counts only
    /// while the object was never read: afterwards its last data stands.
    pub fn record(&mut self, key: &ObjectKey, update: Update) {
        record(&mut self.followed, key, update)
    }

    /// Follows the Secret `name` in `namespace` as the reader's broker
    /// identity, from now on.
    pub fn follow_identity(&mut self, namespace: &str, name: &str) {
        self.identity = Some(ObjectKey {
            namespace: namespace.into(),
            kind: ObjectKind::Secret,
            name: name.into(),
        });
        let wanted = self.followed.keys().cloned().collect();
        self.want(wanted);
    }

    /// Whether `key` is the reader's broker identity (every DeviceLink
    /// sees it).
    pub fn is_identity(&self, key: &ObjectKey) -> bool {
        self.identity.as_ref() == Some(key)
    }

    /// The references of `owner`, an object of `namespace` that is not a
    /// DeviceLink (a KafkaBridge), resolved against what is followed;
    /// downwardAPI items name fields of `owner`. The reader's broker
    /// identity is not offered: it is for the DeviceLinks of its node.
    pub fn resolve_for(
        &self,
        namespace: &str,
        references: &[DeviceLinkReference],
        owner: &Value,
    ) -> References {
        resolve_in(namespace, references, owner, &self.followed)
    }

    /// The DeviceLink's references, resolved against what is followed.
    pub fn resolve(&self, link: &DeviceLink) -> References {
        let owner = serde_json::to_value(link).unwrap_or_default();
        self.resolve_link_parts(
            &link.namespace().unwrap_or_default(),
            &link.spec.references,
            &owner,
        )
    }

    /// [`Self::resolve`] for a DeviceLink kept only in part: its namespace,
    /// its references, and the fields their downwardAPI items name (as
    /// [`downward_fields`] keeps them).
    pub fn resolve_link_parts(
        &self,
        namespace: &str,
        references: &[DeviceLinkReference],
        owner: &Value,
    ) -> References {
        let mut references = resolve_in(namespace, references, owner, &self.followed);
        if let Some(key) = &self.identity {
            let entry = entry_of(key, &self.followed, &[]);
            references
                .entries
                .insert(BROKER_IDENTITY_REFERENCE.to_string(), entry);
        }
        references
    }
}

/// The references of `owner` (an object of `namespace` that is not a
/// DeviceLink: a DeviceDiscovery, whose scan signs in with them), each
/// Secret and ConfigMap read once, now: for a task that uses them once and
/// reads them again the next time, rather than following them.
pub async fn read_once(
    client: &Client,
    namespace: &str,
    references: &[DeviceLinkReference],
    owner: &Value,
) -> References {
    let mut read = Followed::new();
    for key in objects_referenced(namespace, references) {
        let data = match key.kind {
            ObjectKind::Secret => Api::<Secret>::namespaced(client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await
                .map(|o| o.map(secret_data)),
            ObjectKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await
                .map(|o| o.map(config_map_data)),
        };
        let state = match data {
            Ok(Some(data)) => Read::Present(data),
            Ok(None) => Read::Absent,
            Err(e) => Read::Unreadable(e.to_string()),
        };
        read.insert(key, state);
    }
    resolve_in(namespace, references, owner, &read)
}

fn record(followed: &mut Followed, key: &ObjectKey, update: Update) {
    let Some(read) = followed.get_mut(key) else {
        return; // no longer followed
    };
    match update {
        Update::Data(Some(data)) => *read = Read::Present(data),
        Update::Data(None) => *read = Read::Absent,
        Update::Failed(why) => {
            if let Read::Unread(last) = read {
                *last = Some(why);
            }
        }
    }
}

/// Follows one object, sending its data (or `None` once it is known to be
/// absent) on every change and each failure to read it, until the handle is
/// aborted.
fn follow(
    client: Client,
    key: ObjectKey,
    updates: mpsc::UnboundedSender<(ObjectKey, Update)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
        let mut events = match key.kind {
            ObjectKind::Secret => {
                watcher(Api::<Secret>::namespaced(client, &key.namespace), config)
                    .default_backoff()
                    .map(|e| e.map(|e| data_event(e, secret_data)))
                    .boxed()
            }
            ObjectKind::ConfigMap => {
                watcher(Api::<ConfigMap>::namespaced(client, &key.namespace), config)
                    .default_backoff()
                    .map(|e| e.map(|e| data_event(e, config_map_data)))
                    .boxed()
            }
        };
        let mut listed = None;
        while let Some(event) = events.next().await {
            let update = match event {
                Ok(watcher::Event::Init) => {
                    listed = None;
                    continue;
                }
                Ok(watcher::Event::InitApply(data)) => {
                    listed = Some(data);
                    continue;
                }
                Ok(watcher::Event::InitDone) => Update::Data(listed.take()),
                Ok(watcher::Event::Apply(data)) => Update::Data(Some(data)),
                Ok(watcher::Event::Delete(_)) => Update::Data(None),
                Err(e) => {
                    warn!(object = ?key, error = %e, "cannot read referenced object; retrying");
                    Update::Failed(failure(&e))
                }
            };
            if updates.send((key.clone(), update)).is_err() {
                return;
            }
        }
    })
}

/// What went wrong, in the API server's words when it answered.
fn failure(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.message.clone(),
        watcher::Error::WatchError(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn data_event<K>(event: watcher::Event<K>, data: fn(K) -> Data) -> watcher::Event<Data> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(data(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(data(o)),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(data(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn secret_data(secret: Secret) -> Data {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn config_map_data(config_map: ConfigMap) -> Data {
    let text = config_map
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()));
    let binary = config_map
        .binary_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0));
    text.chain(binary).collect()
}

#[cfg(test)]
mod tests {
    /// `link`'s references resolved against `objects`, from what is kept
    /// of it (as an adaptor keeps it).
    fn resolve(link: &DeviceLink, objects: &Followed) -> References {
        let whole = serde_json::to_value(link).unwrap();
        let owner = downward_fields(&whole, &link.spec.references);
        resolve_in(
            &link.namespace().unwrap_or_default(),
            &link.spec.references,
            &owner,
            objects,
        )
    }

    use super::*;

    fn link(references: Value) -> DeviceLink {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "DeviceLink",
            "metadata": {"name": "fan", "namespace": "plant", "labels": {"line": "3"}},
            "spec": {
                "adaptor": {"node": "edge-1", "name": "adaptors.edge.cattle.io/dummy"},
                "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice"},
                "references": references,
                "template": {"spec": {}},
            },
        }))
        .unwrap()
    }

    fn item(name: &str, item: &str) -> ReferenceItem {
        ReferenceItem {
            name: name.into(),
            item: item.into(),
        }
    }

    #[test]
    fn secret_items_resolve_once_read_and_only_listed_items_are_offered() {
        let link = link(serde_json::json!([
            {"name": "auth", "secret": {"name": "mqtt-auth", "items": ["password"]}},
        ]));
        let keys = objects_of(&link);
        let mut followed: Followed = keys
            .iter()
            .map(|k| (k.clone(), Read::Unread(None)))
            .collect();
        let refs = resolve(&link, &followed);
        assert!(refs.pending());
        assert_eq!(
            refs.text(&item("auth", "password")),
            Err(ReferenceError::Pending("auth".into(), None))
        );

        let data = Data::from([
            ("password".into(), b"s3cret".to_vec()),
            ("other".into(), b"x".to_vec()),
        ]);
        followed.insert(keys[0].clone(), Read::Present(data));
        let refs = resolve(&link, &followed);
        assert!(!refs.pending());
        assert_eq!(refs.text(&item("auth", "password")).unwrap(), "s3cret");
        assert!(matches!(
            refs.get(&item("auth", "other")),
            Err(ReferenceError::NoItem(..))
        ));
        assert!(
            !format!("{refs:?}").contains("s3cret"),
            "Debug never shows values"
        );

        followed.insert(keys[0].clone(), Read::Absent);
        assert!(matches!(
            resolve(&link, &followed).get(&item("auth", "password")),
            Err(ReferenceError::Missing(..))
        ));

        // Read once (a scan's sign-in): a failure is what the reader says,
        // not a wait for the next attempt.
        followed.insert(keys[0].clone(), Read::Unreadable("forbidden".into()));
        let refs = resolve(&link, &followed);
        assert!(!refs.pending());
        assert_eq!(
            refs.text(&item("auth", "password"))
                .unwrap_err()
                .to_string(),
            r#"reference "auth": Secret "mqtt-auth" could not be read: forbidden"#
        );
    }

    #[test]
    fn a_failed_read_is_told_until_the_object_is_read_and_then_changes_nothing() {
        let link = link(serde_json::json!([
            {"name": "auth", "secret": {"name": "mqtt-auth"}},
        ]));
        let key = objects_of(&link).remove(0);
        let mut followed = Followed::from([(key.clone(), Read::Unread(None))]);
        record(
            &mut followed,
            &key,
            Update::Failed("secrets \"mqtt-auth\" is forbidden".into()),
        );
        let refs = resolve(&link, &followed);
        let why = refs
            .text(&item("auth", "password"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            why,
            "reference \"auth\" is still being read (the last attempt failed: secrets \"mqtt-auth\" is forbidden)"
        );

        let data = Data::from([("password".into(), b"s3cret".to_vec())]);
        record(&mut followed, &key, Update::Data(Some(data)));
        record(
            &mut followed,
            &key,
            Update::Failed("connection refused".into()),
        );
        let refs = resolve(&link, &followed);
        assert_eq!(refs.text(&item("auth", "password")).unwrap(), "s3cret");

        let other = ObjectKey {
            name: "other".into(),
            ..key.clone()
        };
        record(&mut followed, &other, Update::Data(None));
        assert!(
            !followed.contains_key(&other),
            "objects not followed are not recorded"
        );
    }

    #[test]
    fn only_the_objects_of_references_used_under_a_prefix() {
        let mut link = link(serde_json::json!([
            {"name": "broker", "secret": {"name": "mqtt-auth"}},
            {"name": "server", "secret": {"name": "opcua-auth"}},
        ]));
        link.spec.template.spec = Some(serde_json::json!({
            "protocol": {"basicAuth": {"passwordRef": {"name": "server", "item": "password"}}},
            "extension": {"mqtt": {"client": {"basicAuth": {"passwordRef": {"name": "broker", "item": "password"}}}}},
        }));
        let names = |keys: Vec<ObjectKey>| keys.into_iter().map(|k| k.name).collect::<Vec<_>>();
        assert_eq!(
            names(objects_used_under(
                &link,
                devicelink_api::devicelink::MQTT_EXTENSION_REFERENCE_PATHS
            )),
            ["mqtt-auth"]
        );
        assert_eq!(names(objects_of(&link)), ["mqtt-auth", "opcua-auth"]);
    }

    #[test]
    fn downward_api_items_come_from_the_devicelink() {
        let link = link(serde_json::json!([
            {"name": "self", "downwardAPI": {"items": [
                {"name": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"name": "line", "fieldRef": {"fieldPath": "metadata.labels['line']"}},
                {"name": "node", "fieldRef": {"fieldPath": "spec.adaptor.node"}},
            ]}},
        ]));
        let refs = resolve(&link, &Followed::new());
        assert_eq!(refs.text(&item("self", "ns")).unwrap(), "plant");
        assert_eq!(refs.text(&item("self", "line")).unwrap(), "3");
        assert_eq!(refs.text(&item("self", "node")).unwrap(), "edge-1");
        // Only what the items name is kept.
        let whole = serde_json::to_value(&link).unwrap();
        assert_eq!(
            downward_fields(&whole, &link.spec.references),
            serde_json::json!({
                "metadata": {"namespace": "plant", "labels": {"line": "3"}},
                "spec": {"adaptor": {"node": "edge-1"}},
            })
        );
    }
}
