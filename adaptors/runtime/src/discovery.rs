//! Discovery in an adaptor: the DeviceDiscoveries of its node that ask for
//! its protocol, each scanned by its protocol's [`Discoverer`] every
//! `spec.interval`, and what each scan found written as DiscoveredDevices
//! (found.rs). A changed spec starts its scan again; a deleted discovery
//! stops it (its finds go with it: they are owned by it).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use devicelink_api::discovery::{DeviceDiscovery, DeviceDiscoverySpec, DiscoveredProtocol};
use futures::{StreamExt, future::BoxFuture};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{
    References,
    found::{self, Scan},
};

/// What a protocol adaptor does for discovery.
pub trait Discoverer: Send + Sync + 'static {
    /// The protocol its finds are of.
    fn protocol(&self) -> DiscoveredProtocol;
    /// Whether `spec` asks for this adaptor's protocol.
    fn takes(&self, spec: &DeviceDiscoverySpec) -> bool {
        spec.protocol() == Some(self.protocol())
    }
    /// Runs one scan of `spec` to its end, within its ranges and pace,
    /// signing in with what `sign_in` holds (the entries of the
    /// discovery's `references` its scan names, read for this scan).
    fn scan<'a>(
        &'a self,
        spec: &'a DeviceDiscoverySpec,
        sign_in: &'a References,
    ) -> BoxFuture<'a, Scan>;
}

/// A discovery being scanned: the spec's generation it runs with, and its
/// task.
struct Scanning {
    generation: Option<i64>,
    task: JoinHandle<()>,
}

impl Drop for Scanning {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the discoveries of `node` and scans those `discoverer` takes,
/// until the process stops.
pub(crate) async fn run(
    client: Client,
    node: String,
    manager: Arc<str>,
    discoverer: Arc<dyn Discoverer>,
) {
    let api: Api<DeviceDiscovery> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.node={node}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut scanning: HashMap<String, Scanning> = HashMap::new();
    // The discoveries a relist brought, to stop those it no longer has.
    let mut relisted: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => relisted = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(d)) => {
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(d.uid().unwrap_or_default());
                }
                keep_scanning(&mut scanning, d, &client, &manager, &discoverer);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = relisted.take() {
                    scanning.retain(|uid, _| seen.contains(uid));
                }
            }
            Ok(watcher::Event::Apply(d)) => {
                keep_scanning(&mut scanning, d, &client, &manager, &discoverer)
            }
            Ok(watcher::Event::Delete(d)) => {
                if scanning.remove(&d.uid().unwrap_or_default()).is_some() {
                    info!(discovery = %key(&d), "discovery deleted; its scan stops");
                }
            }
            Err(e) => warn!(error = %e, "watching DeviceDiscoveries failed; retrying"),
        }
    }
}

/// Starts the scan of `discovery`, or starts it again if its spec changed
/// (a status write, ours included, changes nothing).
fn keep_scanning(
    scanning: &mut HashMap<String, Scanning>,
    discovery: DeviceDiscovery,
    client: &Client,
    manager: &Arc<str>,
    discoverer: &Arc<dyn Discoverer>,
) {
    let uid = discovery.uid().unwrap_or_default();
    if !discoverer.takes(&discovery.spec) || discovery.metadata.deletion_timestamp.is_some() {
        scanning.remove(&uid);
        return;
    }
    let generation = discovery.metadata.generation;
    if scanning
        .get(&uid)
        .is_some_and(|s| s.generation == generation)
    {
        return;
    }
    info!(discovery = %key(&discovery), "scanning");
    let task = tokio::spawn(scan_loop(
        client.clone(),
        manager.clone(),
        discoverer.clone(),
        discovery,
    ));
    scanning.insert(uid, Scanning { generation, task });
}

/// Scans, records what was found, and waits for the next scan's time.
async fn scan_loop(
    client: Client,
    manager: Arc<str>,
    discoverer: Arc<dyn Discoverer>,
    discovery: DeviceDiscovery,
) {
    let interval = discovery.spec.interval();
    // The Scanned condition as this task last wrote it (the operator's
    // AdaptorExisted is its own to keep).
    let mut scanned: Vec<_> = discovery
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.type_ == "Scanned")
        .cloned()
        .collect();
    loop {
        let began = tokio::time::Instant::now();
        let started = devicelink_api::condition::now();
        // Read again for every scan: a rotated password takes effect at
        // the next one.
        let sign_in = devicelink_references::read_once(
            &client,
            &discovery.namespace().unwrap_or_default(),
            &discovery
                .spec
                .scan_references()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            &serde_json::to_value(&discovery).unwrap_or_default(),
        )
        .await;
        let scan = discoverer.scan(&discovery.spec, &sign_in).await;
        let finished = devicelink_api::condition::now();
        info!(
            discovery = %key(&discovery),
            addresses = scan.addresses,
            requests = scan.requests,
            found = scan.finds.len(),
            "scan done"
        );
        let recorded = found::record(
            &client,
            &manager,
            &discovery,
            discoverer.protocol(),
            &scan,
            &finished,
        )
        .await;
        found::summarize(
            &client,
            &manager,
            &discovery,
            &scan,
            (started, finished),
            recorded,
            &mut scanned,
        )
        .await;
        tokio::time::sleep_until(began + interval).await;
    }
}

fn key(discovery: &DeviceDiscovery) -> String {
    format!(
        "{}/{}",
        discovery.namespace().unwrap_or_default(),
        discovery.name_any()
    )
}
