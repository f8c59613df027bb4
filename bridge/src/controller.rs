//! Runs a pipeline for every KafkaBridge this bridge serves, started again
//! when its spec or a value it takes from a Secret changes, and writes what
//! each reports to the object's status.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use devicelink_api::kafka_bridge::KafkaBridge;
use devicelink_mqtt::{observe::durable_reader, topic::TopicContext};
use devicelink_references::{Following, References, objects_referenced};
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    commands,
    devices::{self, Directory},
    mapping::Mapping,
    pipeline::{self, Progress, Source},
    record::Recorder,
    sink::{Sasl, Security, Sink, SinkState, Tls},
    status::{self, Blocked},
};

/// Which bridges this process serves, and as whom.
#[derive(Clone, Debug)]
pub struct Serving {
    /// This replica's name (its pod's): part of its MQTT client IDs.
    pub instance: String,
    /// Only KafkaBridges of this namespace; all when `None`.
    pub namespace: Option<String>,
}

/// (namespace, name)
type Key = (String, String);

struct Running {
    /// What it was started from: a change means a restart.
    digest: u64,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Watches KafkaBridges and keeps their pipelines running until the watch
/// ends (never, while the API server answers: it retries). `ready` turns
/// true once the first list is in.
pub async fn run(client: Client, serving: Serving, ready: Arc<AtomicBool>) {
    let api: Api<KafkaBridge> = match &serving.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (mut following, mut updates) = Following::new(client.clone());
    let mut bridges: BTreeMap<Key, KafkaBridge> = BTreeMap::new();
    let mut listing: Option<BTreeMap<Key, KafkaBridge>> = None;
    let mut running: HashMap<Key, Running> = HashMap::new();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Ok(watcher::Event::Init)) => listing = Some(BTreeMap::new()),
                Some(Ok(watcher::Event::InitApply(b))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(key(&b), b);
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    bridges = listing.take().unwrap_or_default();
                    ready.store(true, Ordering::Release);
                }
                Some(Ok(watcher::Event::Apply(b))) => {
                    bridges.insert(key(&b), b);
                }
                Some(Ok(watcher::Event::Delete(b))) => {
                    bridges.remove(&key(&b));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching KafkaBridges; retrying");
                    continue;
                }
            },
            Some((object, update)) = updates.recv() => following.record(&object, update),
        }
        let wanted: HashSet<_> = bridges
            .iter()
            .flat_map(|((ns, _), b)| objects_referenced(ns, &b.spec.references))
            .collect();
        following.want(wanted);
        running.retain(|k, _| bridges.contains_key(k));
        for (k, bridge) in &bridges {
            let owner = serde_json::to_value(bridge).unwrap_or_default();
            let references = following.resolve_for(&k.0, &bridge.spec.references, &owner);
            let (prepared, used) = prepare(&serving, bridge, &references);
            let digest = digest_of(bridge, &used, &prepared);
            if running.get(k).is_some_and(|r| r.digest == digest) {
                continue;
            }
            running.remove(k);
            let tasks = start(&client, &serving, bridge, prepared).await;
            running.insert(k.clone(), Running { digest, tasks });
        }
    }
}

fn key(bridge: &KafkaBridge) -> Key {
    (bridge.namespace().unwrap_or_default(), bridge.name_any())
}

/// What a bridge is started from: its spec, the values its `*Ref` fields
/// took (a rotated password restarts it) and, if it cannot start, why.
fn digest_of(bridge: &KafkaBridge, used: &[String], prepared: &Result<Prepared, Blocked>) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(&bridge.spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    bridge.metadata.uid.hash(&mut hasher);
    used.hash(&mut hasher);
    if let Err(blocked) = prepared {
        blocked.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

/// Starts the bridge's pipeline and its status writer, or, when its spec
/// or references cannot be used, says why in its status.
async fn start(
    client: &Client,
    serving: &Serving,
    bridge: &KafkaBridge,
    prepared: Result<Prepared, Blocked>,
) -> Vec<JoinHandle<()>> {
    let (namespace, name) = key(bridge);
    let mut writer = status::Writer::new(client.clone(), bridge, &serving.instance);
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(blocked) => {
            tracing::warn!(%namespace, %name, why = %blocked, "KafkaBridge not started");
            writer.blocked(&blocked).await;
            return Vec::new();
        }
    };
    tracing::info!(%namespace, %name, "KafkaBridge started");
    let (sink_state, sink_states) = watch::channel(SinkState::Connecting);
    let sink = match Sink::new(
        &bridge.spec.sink,
        &prepared.security,
        &prepared.client_id,
        sink_state,
    ) {
        Ok(sink) => sink,
        Err(e) => {
            let blocked = Blocked::InvalidSink(e.to_string());
            writer.blocked(&blocked).await;
            return Vec::new();
        }
    };
    let (progress, progresses) = watch::channel(Progress::default());
    let (directory, devices) = watch::channel(Arc::new(Directory::default()));
    let mut tasks = Vec::new();
    if let Some(selector) = prepared.selector {
        let follow = devices::follow(client.clone(), namespace, selector, directory);
        tasks.push(tokio::spawn(follow));
    }
    if let Some((settings, dial)) = prepared.commands {
        tasks.push(tokio::spawn(commands::run(
            settings,
            dial,
            bridge.spec.sink.clone(),
            prepared.security,
            sink.clone(),
            devices.clone(),
            progress.clone(),
        )));
    }
    let source = Source {
        dial: prepared.dial,
        group: prepared.group,
        filters: prepared.filters,
        devices,
    };
    tasks.push(tokio::spawn(pipeline::run(
        source,
        prepared.recorder,
        sink,
        progress,
    )));
    tasks.push(tokio::spawn(writer.follow(progresses, sink_states)));
    tasks
}

struct Prepared {
    dial: devicelink_mqtt::wire::Dial,
    group: String,
    filters: Vec<String>,
    /// Which DeviceLinks' status to take, with `source.deviceLinks`.
    selector: Option<kube::core::Selector>,
    commands: Option<(commands::Settings, devicelink_mqtt::wire::Dial)>,
    recorder: Recorder,
    security: Security,
    client_id: String,
}

/// What the bridge runs with, and the values it took from references.
fn prepare(
    serving: &Serving,
    bridge: &KafkaBridge,
    references: &References,
) -> (Result<Prepared, Blocked>, Vec<String>) {
    let used = std::cell::RefCell::new(Vec::new());
    let resolve = |item: &devicelink_api::devicelink::ReferenceItem| {
        let value = references.text(item).map_err(|e| e.to_string())?;
        used.borrow_mut().push(value.clone());
        Ok(value)
    };
    let prepared = prepare_with(serving, bridge, references, &resolve);
    (prepared, used.into_inner())
}

fn prepare_with(
    serving: &Serving,
    bridge: &KafkaBridge,
    references: &References,
    resolve: devicelink_mqtt::publisher::Resolve,
) -> Result<Prepared, Blocked> {
    let (namespace, name) = key(bridge);
    let uid = bridge.uid().unwrap_or_default();
    if references.pending() {
        return Err(Blocked::ReferencesPending);
    }
    let mapping = bridge
        .spec
        .mapping
        .as_ref()
        .map(Mapping::compile)
        .transpose()
        .map_err(|e| Blocked::InvalidMapping(e.to_string()))?;
    let source = &bridge.spec.source;
    // One client ID per replica (a broker keeps one connection per ID);
    // the replicas share the subscriptions of the bridge's group.
    let prefix = source
        .client
        .client_id
        .clone()
        .unwrap_or_else(|| format!("devicelink-bridge-{uid}"));
    let client_id = format!("{prefix}-{}", serving.instance);
    let owner = TopicContext {
        namespace: namespace.clone(),
        name: name.clone(),
        uid: uid.clone(),
    };
    let dial = durable_reader(&source.client, &owner, resolve, client_id.clone())
        .map_err(|e| Blocked::InvalidSource(e.to_string()))?;
    let security = sink_security(&bridge.spec.sink, resolve).map_err(Blocked::InvalidSink)?;
    let selector = source
        .device_links
        .as_ref()
        .map(|d| devices::selector(&d.selector))
        .transpose()
        .map_err(Blocked::InvalidSource)?;
    let group = format!("devicelink-bridge-{uid}");
    let commands = match bridge.spec.commands.clone() {
        None => None,
        Some(commands) => {
            // Writes and their answers go over a connection of their own,
            // with no session: an answer to a write from before a restart
            // has nobody waiting for it.
            let mut dial = durable_reader(
                &source.client,
                &owner,
                resolve,
                format!("{client_id}-commands"),
            )
            .map_err(|e| Blocked::InvalidSource(e.to_string()))?;
            dial.clean = true;
            dial.manual_acks = false;
            let settings = commands::Settings {
                commands,
                namespace: namespace.clone(),
                bridge: format!("{namespace}/{name}"),
                group: group.clone(),
            };
            Some((settings, dial))
        }
    };
    Ok(Prepared {
        dial,
        filters: source.topics.iter().map(|t| t.0.clone()).collect(),
        group,
        selector,
        commands,
        recorder: Recorder::new(mapping, &bridge.spec.sink, format!("{namespace}/{name}")),
        security,
        client_id,
    })
}

/// The sink's TLS and SASL settings with their `*Ref` values.
fn sink_security(
    sink: &devicelink_api::kafka_bridge::KafkaSink,
    resolve: devicelink_mqtt::publisher::Resolve,
) -> Result<Security, String> {
    let value = |inline: &Option<String>,
                 by_ref: &Option<devicelink_api::devicelink::ReferenceItem>,
                 field: &str| {
        match (inline, by_ref) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(item)) => resolve(item).map(Some).map_err(|e| format!("{field}: {e}")),
            (None, None) => Ok(None),
        }
    };
    let tls = match &sink.tls {
        None => None,
        Some(tls) => {
            let ca = value(&tls.ca_file_pem, &tls.ca_file_pem_ref, "tls.caFilePEMRef")?;
            let cert = value(
                &tls.cert_file_pem,
                &tls.cert_file_pem_ref,
                "tls.certFilePEMRef",
            )?;
            let key = value(&None, &tls.key_file_pem_ref, "tls.keyFilePEMRef")?;
            Some(Tls {
                ca,
                client: cert.zip(key),
                verify: !tls.insecure_skip_verify.unwrap_or(false),
            })
        }
    };
    let sasl = match &sink.sasl {
        None => None,
        Some(sasl) => Some(Sasl {
            mechanism: sasl.mechanism,
            username: value(&sasl.username, &sasl.username_ref, "sasl.usernameRef")?
                .unwrap_or_default(),
            password: value(&None, &Some(sasl.password_ref.clone()), "sasl.passwordRef")?
                .unwrap_or_default(),
        }),
    };
    Ok(Security { tls, sasl })
}
