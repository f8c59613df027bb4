//! Watches the devices assigned to this adaptor and hands each to its
//! model's driver (driver.rs: a task per device, or one stepper for all).
//!
//! One loop owns the table of devices, so there are no locks: device events
//! start, update or stop devices; DeviceLink events are passed to the
//! device and to the report (writer.rs) of the device with the same
//! namespace and name.

use std::{
    collections::{HashMap, HashSet},
    fmt::Debug,
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches, Parser};
use devicelink_api::{adaptor, labels};
use devicelink_cells::latest;
use futures::{FutureExt, StreamExt, stream};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;
use tracing::info;

use crate::{
    context::{self, DeviceContext, Handles, Spec},
    discovery::Discoverer,
    driver::{Driver, Parts, Stepping, Tasks},
    health::{self, Health, LoopHealth},
    link::{Arriving, Link},
    metrics,
    model::Model,
    release,
    status_budget::StatusBudget,
    steps::{Bell, Steps},
    write_ledger::WriteLedger,
    writer::{self, Report, Writer},
};
use devicelink_mqtt::{BufferBudget, MqttMetrics, publisher::DeviceMqtt};
use devicelink_references::{Following, ObjectKey, References, Update as ObjectUpdate};

/// Settings every adaptor takes, from flags or the environment (the operator
/// sets them in the adaptor pod).
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct RuntimeConfig {
    /// The node this adaptor serves.
    #[arg(long, env = "NODE_NAME")]
    pub node: String,

    /// Least time between two status writes of one device to the API server.
    #[arg(long, env = "DEVICELINK_STATUS_INTERVAL", default_value = "5s", value_parser = parse_interval)]
    pub status_interval: Duration,

    /// Most device status writes a second the adaptor makes to the API
    /// server, all devices together; past it devices take turns, each
    /// writing its newest status when its turn comes. Less while the API
    /// server is slow to answer (see status_budget.rs).
    #[arg(
        long,
        env = "DEVICELINK_STATUS_WRITES_PER_SECOND",
        default_value_t = 100.0
    )]
    pub status_writes_per_second: f64,

    /// Where the adaptor keeps state that must survive a restart (the MQTT
    /// File store); an emptyDir of the adaptor pod.
    #[arg(
        long,
        env = "DEVICELINK_DATA_DIR",
        default_value = "/var/lib/devicelink"
    )]
    pub data_dir: PathBuf,

    /// Address of the /metrics and /healthz endpoint; empty to serve none.
    #[arg(
        long,
        env = "DEVICELINK_METRICS_ADDRESS",
        default_value = "0.0.0.0:9102"
    )]
    pub metrics_address: String,

    /// Carry the MQTT messages of devices whose connection settings are
    /// equal on one shared connection (devices with a clientID, a will, a
    /// persistent session or `sharedConnection: false` keep their own).
    #[arg(long, env = "DEVICELINK_SHARE_MQTT_CONNECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub share_mqtt_connections: bool,

    /// Bytes the MQTT buffers of all devices may hold together, shared
    /// equally among the devices with an MQTT extension (each device's
    /// messageChannelBytes is capped by its share); 0 for no budget.
    /// Default: half of --memory-limit.
    #[arg(long, env = "DEVICELINK_MQTT_BUFFER_BYTES")]
    pub mqtt_buffer_bytes: Option<u64>,

    /// The adaptor's memory limit in bytes (the operator sets it from the
    /// pod's, through the downward API).
    #[arg(long, env = "DEVICELINK_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,

    /// The servers (URLs, comma-separated) of the broker the operator
    /// manages: a DeviceLink on it without basicAuth connects with
    /// --broker-identity.
    #[arg(long, env = "DEVICELINK_MANAGED_BROKER", value_delimiter = ',')]
    pub managed_broker: Vec<String>,

    /// The Secret (`namespace/name`, items username and password) holding
    /// this adaptor's identity on the managed broker; the operator makes
    /// and rotates it, and the adaptor follows it.
    #[arg(long, env = "DEVICELINK_BROKER_IDENTITY")]
    pub broker_identity: Option<String>,
}

impl RuntimeConfig {
    /// The MQTT buffer budget in bytes, if there is one.
    pub fn mqtt_buffer_budget(&self) -> Option<usize> {
        self.mqtt_buffer_bytes
            .or(self.memory_limit.map(|limit| limit / 2))
            .filter(|&bytes| bytes > 0)
            .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    devicelink_api::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration from 0 to 8760h, such as 5s"))
}

struct Running<K> {
    /// The device's spec and the values of its references, together: one
    /// channel a device, not one for each.
    spec: latest::Sender<Spec<K>>,
    report: Arc<Report>,
    handles: Arc<Handles>,
    /// Rung after each change of a stepped device (steps.rs).
    bell: Option<Bell>,
}

impl<K> Running<K> {
    /// Its driver is told of a change of its spec (a task sees it in its
    /// channel; a stepper is rung).
    fn changed(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }
}

/// The DeviceLinks of this adaptor's devices and the Secrets and ConfigMaps
/// they reference.
struct Links {
    known: HashMap<String, Arc<Link>>,
    following: Following,
}

impl Links {
    /// The resolved references of the device `key`.
    fn references(&self, key: &str) -> Arc<References> {
        Arc::new(
            self.known
                .get(key)
                .map(|l| {
                    self.following
                        .resolve_link_parts(&l.namespace, &l.references, &l.downward)
                })
                .unwrap_or_else(References::awaiting_link),
        )
    }

    /// Follows exactly the objects the known DeviceLinks reference.
    fn follow_referenced(&mut self) {
        let wanted = self.known.values().flat_map(|l| l.objects()).collect();
        self.following.want(wanted);
    }
}

impl<K> Drop for Running<K> {
    fn drop(&mut self) {
        // The device task sees its watch close and returns (a stepper
        // sees its report closed); nothing more of it is written.
        self.report.close();
        self.changed();
    }
}

// One update is in hand at a time: boxing every DeviceLink event would cost
// an allocation each for no memory saved.
#[allow(clippy::large_enum_variant)]
enum Update<K> {
    Device(watcher::Result<watcher::Event<K>>),
    Link(watcher::Result<watcher::Event<Arriving>>),
}

/// An adaptor process: one adaptor kind on one node, driving each device
/// model its kind names: with a function called in a new task per device
/// ([`Adaptor::drive`]), or as steps ([`Adaptor::steps`]).
///
/// ```no_run
/// # async fn fan(_: devicelink_adaptor_runtime::DeviceContext<devicelink_api::dummy::DummySpecialDevice>) {}
/// # async fn run() -> anyhow::Result<()> {
/// devicelink_adaptor_runtime::Adaptor::new("dummy")
///     .drive::<devicelink_api::dummy::DummySpecialDevice, _, _>(fan)
///     .run()
///     .await
/// # }
/// ```
pub struct Adaptor {
    short_name: String,
    kind: Option<&'static adaptor::AdaptorKind>,
    register: Vec<Registration>,
    models: Vec<Driven>,
    discoverer: Option<Arc<dyn Discoverer>>,
}

/// Registers a protocol's own metrics once the adaptor's registry exists.
type Registration = Box<dyn FnOnce(&mut prometheus_client::registry::Registry)>;

/// Starts the loop of one model, given what every loop shares.
type ModelLoop = Box<dyn FnOnce(Env) -> futures::future::BoxFuture<'static, ()>>;

/// A model the adaptor drives, and how.
struct Driven {
    model: String,
    /// Stepped (steps.rs): its stepper has a health of its own.
    stepped: bool,
    start: ModelLoop,
}

/// What every model's loop shares.
#[derive(Clone)]
struct Env {
    /// For watches and reads.
    client: Client,
    /// For the devices' writes, a few at a time.
    writer: Client,
    kind: &'static adaptor::AdaptorKind,
    shared: Arc<Shared>,
    health: Arc<LoopHealth>,
    /// The stepper's, for a stepped model.
    steps_health: Option<Arc<LoopHealth>>,
    shutdown: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
}

impl Adaptor {
    /// The adaptor of kind `short_name` (as in `devicelink_api::adaptor`).
    pub fn new(short_name: &str) -> Adaptor {
        Adaptor {
            short_name: short_name.to_string(),
            kind: adaptor::find_short(short_name),
            register: Vec::new(),
            models: Vec::new(),
            discoverer: None,
        }
    }

    /// Scans the DeviceDiscoveries of this adaptor's node that `discoverer`
    /// takes (docs/discovery.md).
    pub fn discover(mut self, discoverer: impl Discoverer) -> Adaptor {
        self.discoverer = Some(Arc::new(discoverer));
        self
    }

    /// Registers the adaptor's own metrics (under the `devicelink_adaptor`
    /// prefix) beside the runtime's.
    pub fn with_metrics(
        mut self,
        register: impl FnOnce(&mut prometheus_client::registry::Registry) + 'static,
    ) -> Adaptor {
        self.register.push(Box::new(register));
        self
    }

    /// Drives every device of model `K` assigned to this adaptor with
    /// `drive`, in a task of its own per device.
    pub fn drive<K, F, Fut>(mut self, drive: F) -> Adaptor
    where
        K: Model,
        F: Fn(DeviceContext<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let model = K::kind(&()).to_string();
        let driver = Tasks(Arc::new(drive));
        self.models.push(Driven {
            model,
            stepped: false,
            start: Box::new(move |env| model_loop::<K, _>(env, driver).boxed()),
        });
        self
    }

    /// Drives every device of model `S::Model` assigned to this adaptor as
    /// the steps `S`, all in one task (steps.rs): for protocol code that
    /// never waits, such as a simulation.
    pub fn steps<S: Steps>(mut self) -> Adaptor {
        let model = S::Model::kind(&()).to_string();
        self.models.push(Driven {
            model,
            stepped: true,
            start: Box::new(move |env| {
                let health = env.steps_health.clone().expect("a stepped model's health");
                model_loop::<S::Model, _>(env, Stepping::start::<S>(health)).boxed()
            }),
        });
        self
    }

    /// The adaptor's kind, if its models are exactly those the kind names
    /// (`devicelink_api::adaptor`).
    fn checked_kind(&self) -> anyhow::Result<&'static adaptor::AdaptorKind> {
        let short_name = &self.short_name;
        let kind = self
            .kind
            .ok_or_else(|| anyhow::anyhow!("unknown adaptor {short_name}"))?;
        for Driven { model, .. } in &self.models {
            anyhow::ensure!(
                kind.models.contains(&model.as_str()),
                "adaptor {short_name} is registered for {:?}, not {model} (devicelink_api::adaptor)",
                kind.models
            );
        }
        for model in kind.models {
            anyhow::ensure!(
                self.models.iter().any(|driven| driven.model == *model),
                "adaptor {short_name} is registered for {model} (devicelink_api::adaptor) but does not drive it"
            );
        }
        Ok(kind)
    }

    /// Sets up logging, reads flags and environment, serves metrics and
    /// health, and runs every model's loop until the process is told to
    /// stop. Fails at once if the adaptor kind is unknown or a model is not
    /// one its kind names (`devicelink_api::adaptor`).
    pub async fn run(self) -> anyhow::Result<()> {
        devicelink_process::init_logging();
        let short_name = &self.short_name;
        let kind = self.checked_kind()?;
        let config = RuntimeConfig::read(short_name)?;
        let kubeconfig = kube::Config::infer().await?;
        let client = Client::try_from(kubeconfig.clone())?;
        // The devices' writes (status, conditions, Events) go through a
        // client of their own that makes few requests at once: ten
        // thousand devices starting together would otherwise open
        // hundreds of connections to the API server, each with its
        // buffers. The watches keep theirs open on the other client.
        let writer = kube::client::ClientBuilder::try_from(kubeconfig)?
            .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
                writer::WRITES_AT_ONCE,
            ))
            .build();
        info!(node = %config.node, adaptor = kind.name, "adaptor starting");
        let shared = Arc::new(Shared::new(short_name, config.clone()));
        let mut health = Health::default();
        let loops: Vec<_> = self
            .models
            .into_iter()
            .map(|driven| {
                let steps = driven
                    .stepped
                    .then(|| health.add_loop(&format!("{} steps", driven.model)));
                (health.add_loop(&driven.model), steps, driven.start)
            })
            .collect();
        let registers = self.register;
        let budget = shared.status_budget.clone();
        metrics::serve(
            &config.metrics_address,
            Arc::new(health),
            &shared.metrics,
            move |registry| {
                budget.register(registry);
                registers.into_iter().for_each(|r| r(registry))
            },
        );
        let shutdown = devicelink_process::bounded_stop(STOP_WITHIN);
        let running = loops.into_iter().map(|(health, steps_health, start)| {
            start(Env {
                client: client.clone(),
                writer: writer.clone(),
                kind,
                shared: shared.clone(),
                health,
                steps_health,
                shutdown: shutdown.clone(),
            })
        });
        if let Some(discoverer) = self.discoverer {
            let discovering = crate::discovery::run(
                client.clone(),
                config.node.clone(),
                shared.manager.clone(),
                discoverer,
            );
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = discovering => {}
                    () = stop => {}
                }
            });
        }
        futures::future::join_all(running).await;
        Ok(())
    }
}

/// Watches the devices of model `K` assigned to this adaptor and their
/// DeviceLinks, and drives each device with `driver`, until shutdown.
async fn model_loop<K, D>(env: Env, driver: D)
where
    K: Model,
    D: Driver<K>,
{
    let Env {
        client,
        writer,
        kind,
        shared,
        health,
        steps_health: _,
        shutdown,
    } = env;
    let mut updates = updates::<K>(&client, kind, &shared.config);
    let (mut following, mut object_updates) = Following::new(client.clone());
    if let Some((namespace, name)) = shared
        .config
        .broker_identity
        .as_deref()
        .and_then(|i| i.split_once('/'))
    {
        following.follow_identity(namespace, name);
    }
    let mut table = Table {
        running: HashMap::new(),
        releasing: HashMap::new(),
        links: Links {
            known: HashMap::new(),
            following,
        },
        seen_in_relist: HashSet::new(),
        links_in_relist: HashSet::new(),
        writes: Writer::start::<K>(writer::Settings {
            client: writer.clone(),
            manager: shared.manager.clone(),
            status_interval: shared.config.status_interval,
            budget: shared.status_budget.clone(),
        }),
        writer,
        shared,
        driver,
        health: health.clone(),
    };
    let mut shutdown = shutdown;
    let mut beat = tokio::time::interval(health::BEAT);
    loop {
        health.beat();
        tokio::select! {
            () = &mut shutdown => break,
            _ = beat.tick() => {}
            u = updates.next() => match u {
                Some(Update::Device(Ok(event))) => table.on_device(event),
                Some(Update::Link(Ok(event))) => table.on_link(event),
                Some(Update::Device(Err(e)) | Update::Link(Err(e))) => {
                    tracing::warn!(error = %e, "watch failed; retrying")
                }
                None => break,
            },
            Some((key, update)) = object_updates.recv() => table.on_reference(&key, update),
        }
    }
    info!(model = %K::kind(&()), "adaptor stopping");
    table.close().await;
}

/// Objects per page when a watch lists. A page is read whole, as text
/// and then as objects, before any of it is kept reduced: the adaptor's
/// peak while it starts or lists again. 100, not client-go's 500: a fifth
/// of that peak, for more requests only when a watch lists.
const LIST_PAGE: u32 = 100;

/// The watches of this adaptor's devices of model `K` and of their
/// DeviceLinks, as one stream. Each object is kept only with what the
/// runtime reads of it.
fn updates<K: Model>(
    client: &Client,
    kind: &adaptor::AdaptorKind,
    config: &RuntimeConfig,
) -> stream::BoxStream<'static, Update<K>> {
    let devices = watcher(
        Api::<K>::all(client.clone()),
        watcher::Config::default()
            .page_size(LIST_PAGE)
            .labels(&format!(
                "{}={},{}={}",
                labels::NODE,
                labels::node_label_value(&config.node),
                labels::ADAPTOR,
                kind.short_name
            )),
    )
    .default_backoff()
    // Kept for every device, so only what the adaptor reads: not the
    // managedFields, labels or annotations (kubectl's last-applied copy
    // alone can be the size of the object); the status is kept (it holds
    // the write ledger), and status writes patch only the status.
    .modify(|d| {
        let meta = d.meta_mut();
        meta.managed_fields = None;
        meta.labels = None;
        meta.annotations = None;
    })
    .map(Update::Device);
    let links = watcher(
        Api::<Arriving>::all(client.clone()),
        watcher::Config::default()
            .page_size(LIST_PAGE)
            .fields(&format!(
                "spec.adaptor.node={},spec.adaptor.name={},spec.model.kind={}",
                config.node,
                kind.name,
                K::kind(&())
            )),
    )
    .default_backoff()
    // Each is kept as a Link (link.rs), reduced to what the runtime reads.
    .map(Update::Link);
    stream::select(devices, links).boxed()
}

/// What one model's loop owns: the devices it drives, those it lets go of,
/// and their DeviceLinks. Only the loop touches it, so it needs no locks.
struct Table<K, D> {
    running: HashMap<String, Running<K>>,
    /// Deleted devices being let go of (see release.rs).
    releasing: HashMap<String, JoinHandle<()>>,
    links: Links,
    /// What a relist in progress has seen so far, of each watch.
    seen_in_relist: HashSet<String>,
    links_in_relist: HashSet<String>,
    /// What the devices write to the API server, all written by one task.
    writes: Writer,
    /// The client of the devices' writes (the release's too).
    writer: Client,
    shared: Arc<Shared>,
    driver: D,
    health: Arc<LoopHealth>,
}

impl<K, D> Table<K, D>
where
    K: Model,
    D: Driver<K>,
{
    fn on_device(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.seen_in_relist.clear(),
            watcher::Event::InitApply(device) => {
                self.seen_in_relist.insert(key(&device));
                self.apply(device);
            }
            watcher::Event::InitDone => {
                // Not kept past the relist: a key for each device.
                let seen = std::mem::take(&mut self.seen_in_relist);
                self.running.retain(|k, _| seen.contains(k));
                self.health.devices_listed();
            }
            watcher::Event::Apply(device) => self.apply(device),
            watcher::Event::Delete(device) => {
                self.releasing.remove(&key(&device));
                if self.running.remove(&key(&device)).is_some() {
                    info!(device = %key(&device), "device removed; stopped");
                }
            }
        }
    }

    /// A device as it now is: driven, or let go of once being deleted.
    fn apply(&mut self, device: K) {
        if device.meta().deletion_timestamp.is_some() {
            self.release(device);
        } else {
            self.upsert(device);
        }
    }

    fn upsert(&mut self, device: K) {
        upsert(
            &mut self.running,
            &self.links,
            device,
            &self.writes,
            &self.shared,
            &self.driver,
        );
    }

    /// A device being deleted: its task stops, and it is let go of
    /// (release.rs) once, however often its deletion is seen.
    fn release(&mut self, device: K) {
        let k = key(&device);
        if self.releasing.get(&k).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let (publisher, outbox) = match self.running.remove(&k) {
            Some(r) => (
                r.handles.publisher.lock().unwrap().take(),
                r.handles.mqtt.outbox.clone(),
            ),
            // Not driven here yet (the adaptor restarted): connect just to
            // clear the retained status.
            None => {
                let mqtt = self.shared.device_mqtt().0;
                let publisher = context::start_publisher(
                    &device,
                    &context::topic_context(&device),
                    &self.links.references(&k),
                    &mqtt,
                )
                .ok()
                .flatten();
                (publisher, mqtt.outbox)
            }
        };
        info!(device = %k, "device deleted; stopped, releasing it");
        let api =
            Api::<K>::namespaced(self.writer.clone(), &device.namespace().unwrap_or_default());
        let releasing = release::release(api, Arc::new(device), publisher, outbox);
        self.releasing.insert(k, tokio::spawn(releasing));
    }

    fn on_link(&mut self, event: watcher::Event<Arriving>) {
        // Which device's references may have changed: one for a change,
        // all after a (re)list, none while listing.
        let touched: Option<Option<String>> = match event {
            watcher::Event::Init => {
                self.links_in_relist.clear();
                None
            }
            watcher::Event::InitApply(link) => {
                let k = key(&link);
                self.links_in_relist.insert(k.clone());
                know_link(&mut self.links, &self.running, k, link);
                None
            }
            watcher::Event::Apply(link) => {
                let k = key(&link);
                know_link(&mut self.links, &self.running, k.clone(), link);
                Some(Some(k))
            }
            watcher::Event::InitDone => {
                let seen = std::mem::take(&mut self.links_in_relist);
                self.links.known.retain(|k, _| seen.contains(k));
                self.health.links_listed();
                Some(None)
            }
            watcher::Event::Delete(link) => {
                let k = key(&link);
                self.links.known.remove(&k);
                Some(Some(k))
            }
        };
        if let Some(touched) = touched {
            self.links.follow_referenced();
            for (k, r) in &self.running {
                if touched.as_ref().is_none_or(|t| t == k) {
                    let now = self.links.references(k);
                    if r.spec
                        .send_if_modified(|s| replace_if_changed(&mut s.references, now))
                    {
                        r.changed();
                    }
                }
            }
        }
    }

    /// A referenced Secret or ConfigMap changed (or could not be read):
    /// the devices whose DeviceLinks use it see it.
    fn on_reference(&mut self, object: &ObjectKey, update: ObjectUpdate) {
        let links = &mut self.links;
        links.following.record(object, update);
        for (k, r) in &self.running {
            let uses =
                |l: &Link| links.following.is_identity(object) || l.objects().contains(object);
            if links.known.get(k).is_some_and(|l| uses(l)) {
                let now = links.references(k);
                if r.spec
                    .send_if_modified(|s| replace_if_changed(&mut s.references, now))
                {
                    r.changed();
                }
            }
        }
    }

    /// Stopping: messages in flight get disconnectQuiesce to reach the
    /// broker, but not beyond what stopping may take (a quiesce is the
    /// user's to set); then the File store's pending writes.
    async fn close(mut self) {
        let closing: Vec<_> = self
            .running
            .drain()
            .filter_map(|(_, r)| r.handles.publisher.lock().unwrap().take())
            .map(|p| p.close())
            .collect();
        if tokio::time::timeout(CLOSE_WITHIN, futures::future::join_all(closing))
            .await
            .is_err()
        {
            tracing::warn!(within = ?CLOSE_WITHIN, "MQTT connections not closed in time; abandoned");
        }
        // Messages still waiting are on their way to the File store; let
        // the writer finish them (off the async threads), within what is
        // left.
        let flushed =
            tokio::task::spawn_blocking(|| devicelink_mqtt::store::flush(FLUSH_WITHIN)).await;
        if !matches!(flushed, Ok(true)) {
            tracing::warn!(within = ?FLUSH_WITHIN, "File store writes not finished in time; abandoned");
        }
    }
}

/// How long an adaptor takes at most to stop after SIGTERM or Ctrl-C,
/// whatever is unreachable: well within a pod's default grace (30 s).
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// Of that, how long messages in flight may take to reach their brokers.
const CLOSE_WITHIN: Duration = Duration::from_secs(7);
/// Then how long File store writes already asked for may take.
const FLUSH_WITHIN: Duration = Duration::from_secs(2);

fn key(obj: &impl Resource) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Records a DeviceLink and hands it to its device's task, if running.
fn know_link<K>(
    links: &mut Links,
    running: &HashMap<String, Running<K>>,
    k: String,
    link: Arriving,
) {
    let link = Arc::new(Link::from(link));
    if let Some(r) = running.get(&k) {
        r.report.set_link(link.clone());
    }
    links.known.insert(k, link);
}

fn replace_if_changed(old: &mut Arc<References>, now: Arc<References>) -> bool {
    let changed = **old != *now;
    if changed {
        *old = now;
    }
    changed
}

/// Hands a new spec to the device's task, or starts one for a device new
/// here.
fn upsert<K, D>(
    running: &mut HashMap<String, Running<K>>,
    links: &Links,
    device: K,
    writes: &Writer,
    shared: &Shared,
    driver: &D,
) where
    K: Model,
    D: Driver<K>,
{
    let k = key(&device);
    let mut device = device;
    if let Some(r) = running.get(&k) {
        keep_for_the_task(&mut device);
        let device = context::Kept::new(device);
        r.spec.send_modify(|s| s.device = device);
        r.changed();
        return;
    }
    info!(device = %k, "device assigned; starting");
    let started = start(&k, device, links, writes, shared, driver);
    running.insert(k, started);
}

/// Reduces the copy of a device its task is handed to what the runtime and
/// the protocol code read: its name, namespace, generation and spec, and
/// the UID of the DeviceLink that owns it (for `:uid`). The
/// status is the runtime's to write and it keeps its own state; the
/// finalizer and resourceVersion matter to the release, which is handed
/// the device as the watch last brought it. One copy is kept for each of
/// thousands of devices.
fn keep_for_the_task<K: Model>(device: &mut K) {
    *device.status_mut() = None;
    let meta = device.meta_mut();
    meta.finalizers = None;
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.retain(|o| o.controller == Some(true));
        for owner in owners.iter_mut() {
            (owner.api_version, owner.kind, owner.name) = Default::default();
        }
    }
}

/// Starts a device: its task running its protocol code (supervised), and
/// its report to the adaptor's writer.
fn start<K, D>(
    k: &str,
    mut device: K,
    links: &Links,
    writes: &Writer,
    shared: &Shared,
    driver: &D,
) -> Running<K>
where
    K: Model,
    D: Driver<K>,
{
    // The status is the runtime's to write and it keeps its own state, so
    // the copy of the device kept for the task has none; what the runtime
    // needs from it (the ledger of writes from MQTT) is read once, now.
    let ledger = WriteLedger::load(&serde_json::to_value(&device).unwrap_or_default());
    keep_for_the_task(&mut device);
    let (namespace, name) = (device.namespace().unwrap_or_default(), device.name_any());
    let (spec_tx, spec_rx) = latest::channel(Spec {
        device: context::Kept::new(device),
        references: links.references(k),
    });
    let (mqtt, mqtt_rx) = shared.device_mqtt();
    let handles = Arc::new(Handles {
        mqtt,
        publisher: std::sync::Mutex::new(None),
        ledger: std::sync::Mutex::new(ledger),
    });
    let report = writes.report(namespace, name, mqtt_rx);
    if let Some(link) = links.known.get(k) {
        report.set_link(link.clone());
    }
    let bell = driver.begin(Parts {
        spec: spec_rx,
        handles: handles.clone(),
        report: report.clone(),
    });
    Running {
        spec: spec_tx,
        report,
        handles,
        bell,
    }
}

impl RuntimeConfig {
    /// The flags and environment of adaptor `short_name`, checked.
    fn read(short_name: &str) -> anyhow::Result<RuntimeConfig> {
        // Named as the program is, so `--version` says which adaptor it is.
        let matches = RuntimeConfig::command()
            .name(&*format!("devicelink-adaptor-{short_name}").leak())
            .get_matches();
        let config = RuntimeConfig::from_arg_matches(&matches)?;
        devicelink_mqtt::identity::set_managed_broker(&config.managed_broker)
            .map_err(|e| anyhow::anyhow!("--managed-broker: {e}"))?;
        anyhow::ensure!(
            config.managed_broker.is_empty() || config.broker_identity.is_some(),
            "--managed-broker needs --broker-identity (the Secret with this adaptor's identity)"
        );
        anyhow::ensure!(
            config
                .broker_identity
                .as_deref()
                .is_none_or(|i| i.contains('/')),
            "--broker-identity: write namespace/name"
        );
        Ok(config)
    }
}

/// What every device of the adaptor shares.
struct Shared {
    metrics: MqttMetrics,
    /// Field manager of status writes.
    manager: Arc<str>,
    /// The MQTT connections devices share, unless sharing is off.
    connections: Option<Arc<devicelink_mqtt::Connections>>,
    /// The adaptor's device status writes, all devices together.
    status_budget: Arc<StatusBudget>,
    /// The memory all devices' MQTT buffers share.
    buffer_budget: Arc<BufferBudget>,
    /// `config.data_dir`, one copy for all devices.
    data_dir: Arc<std::path::Path>,
    config: RuntimeConfig,
}

impl Shared {
    /// A new device's MQTT state (see [`DeviceMqtt::new`]).
    fn new(short_name: &str, config: RuntimeConfig) -> Shared {
        let metrics = MqttMetrics::default();
        Shared {
            metrics: metrics.clone(),
            manager: format!("devicelink-adaptor-{short_name}").into(),
            status_budget: Arc::new(StatusBudget::new(config.status_writes_per_second)),
            buffer_budget: Arc::new(BufferBudget::new(config.mqtt_buffer_budget())),
            connections: config.share_mqtt_connections.then(|| {
                devicelink_mqtt::Connections::new(
                    format!(
                        "devicelink-{short_name}-{}",
                        devicelink_api::labels::node_label_value(&config.node)
                    ),
                    metrics,
                )
            }),
            data_dir: config.data_dir.as_path().into(),
            config,
        }
    }

    fn device_mqtt(
        &self,
    ) -> (
        DeviceMqtt,
        latest::Receiver<Option<devicelink_api::property::MqttStatus>>,
    ) {
        let (mut mqtt, state) = DeviceMqtt::new(self.metrics.clone(), self.data_dir.clone());
        mqtt.connections = self.connections.clone();
        mqtt.outbox.share_budget(self.buffer_budget.clone());
        (mqtt, state)
    }
}
