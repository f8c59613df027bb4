//! The DeviceLink controller: one reconcile that walks the condition
//! pipeline, plus the watches that wake it when a node, a model CRD or an
//! adaptor pod changes.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use devicelink_api::{
    ConditionStatus, DeviceLink, DeviceLinkCondition, DeviceLinkStatus, Outcome,
    condition::{self, ConditionType},
    finalizer,
};
use futures::StreamExt;
use k8s_openapi::{
    api::{
        core::v1::{ConfigMap, Node, Pod, Secret},
        rbac::v1::Role,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{PartialObjectMeta, PostParams},
    runtime::{
        Controller, WatchStreamExt, controller,
        controller::Action,
        reflector,
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};
use tracing::{info, warn};

use crate::{
    adaptor_access,
    broker::BrokerAccess,
    config::Config,
    device_watch::{self, DeviceCaches},
    error::{Error, Result},
    events::Events,
    http::Readiness,
    metrics::Metrics,
    references,
    reported::Reported,
    stages, watch_filter,
};

mod bridge_grants;
mod deletion;
mod discovery;
mod grants;
mod objects;
mod watches;
mod writes;

use deletion::{Cleanup, cached_device, cleanup};
use grants::{AccessKey, Reader, release_moved_grant};
use objects::{ensure_adaptor_pod, ensure_device};
use watches::{matching, referencing, served_by};
use writes::patch_metadata;

/// Lets the operator stop the device and remove an unneeded adaptor pod
/// before the DeviceLink goes away.
const FINALIZER: &str = "edge.cattle.io/devicelink-operator";
/// How often a device waiting for its adaptor is looked at again.
const RELEASE_CHECK: Duration = Duration::from_secs(5);
/// How often a stage that is on its way (Unknown) is looked at again.
const ON_ITS_WAY_CHECK: Duration = Duration::from_secs(10);
/// How soon a DeviceLink woken before the caches were filled is looked at
/// again.
const CACHES_FILLING: Duration = Duration::from_millis(250);
/// How often a stage that failed (False) is looked at again.
const FAILED_CHECK: Duration = Duration::from_secs(60);
/// The reason of DeviceCreated while the managed broker does not yet allow
/// the adaptor the device's topics.
const BROKER_ACCESS_PENDING: &str = "BrokerAccessPending";
/// Field manager for everything the operator writes.
const MANAGER: &str = "devicelink-operator";

struct Context {
    client: Client,
    config: Config,
    links: Store<DeviceLink>,
    nodes: Store<Node>,
    crds: Store<CustomResourceDefinition>,
    pods: Store<Pod>,
    /// DeviceDiscoveries: each needs the adaptor pod of its protocol on
    /// its node, as a DeviceLink does.
    discoveries: Store<devicelink_api::discovery::DeviceDiscovery>,
    /// Whether `discoveries` holds its first full list: apart from
    /// `caches_filled`, so that a cluster without the discovery CRDs still
    /// runs its DeviceLinks.
    discoveries_filled: AtomicBool,
    /// The Roles that give adaptor pods their referenced Secrets and
    /// ConfigMaps (metadata only: the grant digest is an annotation).
    roles: Store<PartialObjectMeta<Role>>,
    /// Whether the caches above hold their first full list. A reflector
    /// fills its store only when that list ends, after the list's events
    /// have already woken the DeviceLinks they concern: judged before then,
    /// a node or model CRD that exists reads as missing (NodeExisted or
    /// ModelExisted False, NotFound), and nothing wakes the DeviceLink
    /// again. (A flag set by the one task that waits for the stores: their
    /// readiness future wakes only its latest waiter.)
    caches_filled: AtomicBool,
    events: Events,
    metrics: Metrics,
    devices: DeviceCaches,
    /// What the managed broker allows each adaptor (crate::broker).
    broker: BrokerAccess,
    /// What we last applied to each device: (uid, generation it got,
    /// fingerprint of what we sent). While the cached device still matches,
    /// a reconcile needs no request to know the device is as wanted.
    applied: Mutex<HashMap<ObjectRef<DeviceLink>, AppliedDevice>>,
    /// Which grant of each reader each DeviceLink was last counted in, so
    /// that moving a DeviceLink to another node takes its grant away.
    granted_to: Mutex<HashMap<(ObjectRef<DeviceLink>, Reader), AccessKey>>,
    /// The same for each DeviceDiscovery whose scan signs in: the grant of
    /// the adaptor pod that scans.
    scan_granted_to:
        Mutex<HashMap<ObjectRef<devicelink_api::discovery::DeviceDiscovery>, AccessKey>>,
    /// The resourceVersions each DeviceLink had before our writes since
    /// the cache last caught up (a new DeviceLink's reconcile writes twice:
    /// its finalizer, then its status). While the cache still shows one of
    /// them, our changes have not reached it yet: a reconcile then would
    /// only act on stale data (and its write would conflict), so it waits
    /// for the watch event of the last change instead.
    written_over: Mutex<HashMap<ObjectRef<DeviceLink>, Vec<String>>>,
}

impl Context {
    /// Whether the cached DeviceLink is still a version our writes
    /// changed; once the cache has moved past them, the record is
    /// forgotten.
    fn cache_is_behind(&self, link: &DeviceLink) -> bool {
        let mut written = self.written_over.lock().unwrap();
        let link_ref = ObjectRef::from_obj(link);
        let behind = written.get(&link_ref).is_some_and(|before| {
            link.metadata
                .resource_version
                .as_ref()
                .is_some_and(|cached| before.contains(cached))
        });
        if !behind {
            written.remove(&link_ref);
        }
        behind
    }

    /// Records a write to `link` that produced `after`.
    fn wrote(&self, link: &DeviceLink, after: &DeviceLink) {
        let (Some(before), Some(after)) = (
            link.metadata.resource_version.clone(),
            after.metadata.resource_version.as_ref(),
        ) else {
            return;
        };
        if before != *after {
            let mut written = self.written_over.lock().unwrap();
            let versions = written.entry(ObjectRef::from_obj(link)).or_default();
            // A reconcile writes a DeviceLink twice at most; a few more
            // cover reconciles the cache did not catch up between.
            if versions.len() == 4 {
                versions.remove(0);
            }
            versions.push(before);
        }
    }
}

#[derive(Clone, PartialEq, Debug)]
struct AppliedDevice {
    uid: Option<String>,
    generation: Option<i64>,
    fingerprint: String,
}

/// Runs the controller until `shutdown` completes. `links` is the writer
/// half of the DeviceLink cache whose reader the metrics already count.
pub async fn run(
    client: Client,
    config: Config,
    links: Writer<DeviceLink>,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    readiness.set(false);
    let links_api: Api<DeviceLink> = Api::all(client.clone());
    let reader = links.as_reader();
    // Events are written while this replica leads, what adaptors report
    // on DeviceLinks among them.
    let (events, recorder) = Events::new(client.clone(), MANAGER, &config.identity());
    let _recorder = AbortOnDrop(tokio::spawn(recorder.run()));
    let mut reported = Reported::default();
    let reporting = events.clone();
    let link_events = reflector(
        links,
        watcher(links_api, watcher::Config::default().any_semantic()).modify(watch_filter::slim),
    )
    .default_backoff()
    .inspect(move |event| {
        for h in event.iter().flat_map(|e| reported.observe(e)) {
            reporting.record(h);
        }
    })
    .applied_objects();
    let link_events = watch_filter::errors_logged(link_events, "devicelinks");
    // Bounded: each reconcile in flight holds a connection to the API server.
    let controller = Controller::for_stream(link_events, reader.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency));
    let links = reader;

    // What else wakes a DeviceLink, each with the cache it fills.
    let (nodes, node_events) = watches::nodes(&client);
    let (crds, crd_events) = watches::crds(&client);
    let (pods, pod_events) = watches::adaptor_pods(&client, &config.adaptor_namespace);
    let (roles, role_events) = watches::grant_roles(&client);
    let (discoveries, discovery_events) = discovery::cached(&client);
    let (devices, device_events) = device_watch::watch(&client, device_watch::shipped_models());
    let secret_events = watches::metadata_of::<Secret>(&client);
    let config_map_events = watches::metadata_of::<ConfigMap>(&client);

    let broker = BrokerAccess::new(&config);
    // Keeps the managed broker's identities while this replica leads: the
    // task ends with this function, also when it is dropped (leadership
    // lost).
    let _broker_sync = (!config.managed_broker.is_empty()).then(|| {
        AbortOnDrop(tokio::spawn(crate::broker::run(
            client.clone(),
            config.clone(),
            links.clone(),
            broker.clone(),
        )))
    });
    // The Kafka bridge's grants, also only while this replica leads.
    let _bridge_grants = config.grant_bridge.then(|| {
        AbortOnDrop(tokio::spawn(bridge_grants::run(
            client.clone(),
            config.clone(),
        )))
    });
    let ctx = Arc::new(Context {
        broker,
        events,
        metrics,
        devices,
        applied: Mutex::default(),
        granted_to: Mutex::default(),
        scan_granted_to: Mutex::default(),
        written_over: Mutex::default(),
        client,
        config,
        links: links.clone(),
        nodes,
        crds,
        pods,
        discoveries,
        discoveries_filled: AtomicBool::new(false),
        roles,
        caches_filled: AtomicBool::new(false),
    });
    // Discoveries' adaptor pods and adoptions, also only while leading.
    let _discovery = AbortOnDrop(tokio::spawn(discovery::run(ctx.clone(), discovery_events)));

    let (by_node, by_model, by_pod) = (links.clone(), links.clone(), links.clone());
    let (by_secret, by_config_map, by_role) = (links.clone(), links.clone(), links.clone());
    let ready_when_filled = {
        let ctx = ctx.clone();
        async move {
            let _ = tokio::join!(
                links.wait_until_ready(),
                ctx.nodes.wait_until_ready(),
                ctx.crds.wait_until_ready(),
                ctx.pods.wait_until_ready(),
                ctx.roles.wait_until_ready()
            );
            ctx.caches_filled.store(true, Ordering::Release);
            readiness.set(true);
            info!("caches filled; ready");
        }
    };
    use watch_filter::errors_logged as quiet;
    let mut controller = controller
        .watches_stream(quiet(node_events, "nodes"), move |node: Node| {
            let name = node.name_any();
            matching(&by_node, move |l| l.spec.adaptor.node == name)
        })
        .watches_stream(
            quiet(crd_events, "crds"),
            move |crd: CustomResourceDefinition| {
                matching(&by_model, move |l| {
                    l.spec.model.kind == crd.spec.names.kind
                        && l.spec.model.api_version.split('/').next()
                            == Some(crd.spec.group.as_str())
                })
            },
        )
        .watches_stream(quiet(pod_events, "adaptor pods"), move |pod: Pod| {
            let pod_labels = pod.labels().clone();
            matching(&by_pod, move |l| served_by(l, &pod_labels))
        })
        .watches_stream(
            quiet(secret_events, "secrets"),
            move |secret: PartialObjectMeta<Secret>| {
                referencing(&by_secret, &secret.metadata, |l| {
                    references::referenced_objects(l).0
                })
            },
        )
        .watches_stream(
            quiet(config_map_events, "configmaps"),
            move |cm: PartialObjectMeta<ConfigMap>| {
                referencing(&by_config_map, &cm.metadata, |l| {
                    references::referenced_objects(l).1
                })
            },
        )
        // A grant Role changed or deleted by hand is put back.
        .watches_stream(
            quiet(role_events, "grant roles"),
            move |role: PartialObjectMeta<Role>| {
                let role_labels = role.labels().clone();
                let namespace = role.namespace();
                let console = role.name_any() == adaptor_access::CONSOLE;
                matching(&by_role, move |l| {
                    l.namespace() == namespace
                        && if console {
                            !grants::read_by(Reader::Console, l).is_empty()
                        } else {
                            served_by(l, &role_labels)
                        }
                })
            },
        )
        .graceful_shutdown_on(shutdown);
    // A device deleted or edited by hand is put back from the template.
    for (model, events) in device_events {
        let events = quiet(events, "devices");
        controller = controller.watches_stream_with(events, |d| device_watch::owner(&d), model);
    }
    let controller = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((link, _)) => tracing::debug!(%link, "reconciled"),
                Err(err) => tracing::debug!(error = %err, "reconcile failed"),
            }
        });
    tokio::join!(controller, ready_when_filled);
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn reconcile(link: Arc<DeviceLink>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = link.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DeviceLink> = Api::namespaced(ctx.client.clone(), &namespace);
    if !ctx.caches_filled.load(Ordering::Acquire) {
        return Ok(Action::requeue(CACHES_FILLING));
    }
    if ctx.cache_is_behind(&link) {
        // The watch event of our own last write brings us back.
        return Ok(Action::await_change());
    }
    if link.metadata.deletion_timestamp.is_some() {
        if !finalizer::has(&link.metadata, FINALIZER) {
            return Ok(Action::await_change());
        }
        return match cleanup(&link, &ctx).await? {
            Cleanup::Done => {
                let patch = finalizer::removing(&link.metadata, FINALIZER);
                patch_metadata(&api, &link.metadata, patch).await?;
                ctx.written_over
                    .lock()
                    .unwrap()
                    .remove(&ObjectRef::from_obj(link.as_ref()));
                Ok(Action::await_change())
            }
            Cleanup::Waiting => Ok(Action::requeue(RELEASE_CHECK)),
        };
    }
    let Some(link) = with_finalizer(link, &api, &ctx).await? else {
        // Gone before it got the finalizer: nothing to do.
        return Ok(Action::await_change());
    };
    apply(&link, &ctx).await
}

/// The DeviceLink with our finalizer on it, added if missing; `None` if it
/// is gone. A new DeviceLink goes on through the pipeline with the patched
/// object at once: waiting for the patch's watch event instead would put
/// it behind every DeviceLink created meanwhile, once more (thousands, when
/// a fleet is applied together).
async fn with_finalizer(
    link: Arc<DeviceLink>,
    api: &Api<DeviceLink>,
    ctx: &Context,
) -> Result<Option<Arc<DeviceLink>>> {
    let Some(patch) = finalizer::adding(&link.metadata, FINALIZER) else {
        return Ok(Some(link));
    };
    let Some(mut after) = patch_metadata(api, &link.metadata, Some(patch)).await? else {
        return Ok(None);
    };
    // As the cache keeps it: the status write below sends it back whole.
    watch_filter::slim(&mut after);
    ctx.wrote(&link, &after);
    Ok(Some(Arc::new(after)))
}

fn error_policy(link: Arc<DeviceLink>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(err.metric_label());
    if err.is_conflict() {
        return Action::requeue(Duration::from_millis(500));
    }
    warn!(devicelink = %ObjectRef::from_obj(link.as_ref()), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Walks the pipeline and records the result.
async fn apply(link: &DeviceLink, ctx: &Context) -> Result<Action> {
    release_moved_grant(link, ctx).await?;
    let mut status = link.status.clone().unwrap_or_default();
    let outcomes = evaluate(link, ctx, &mut status).await?;
    // A stage that is not True may change by time alone, with no object
    // changing (an adaptor pod that never becomes ready, a refusal by a
    // policy that was relaxed): look again, sooner while it is on its way.
    let look_again = match outcomes.last().map(|o| &o.status) {
        Some(ConditionStatus::Unknown) => Some(ON_ITS_WAY_CHECK),
        Some(ConditionStatus::False) => Some(FAILED_CHECK),
        _ => None,
    };
    status.conditions = condition::advance(link.conditions(), &outcomes, &condition::now());
    status.observed_generation = link.metadata.generation;
    write_status(link, status, ctx).await?;
    // A device deleted by hand waits for its adaptor; look again in a while
    // in case the adaptor never comes.
    let releasing = cached_device(link, ctx)
        .is_some_and(|(_, device)| device.metadata.deletion_timestamp.is_some());
    Ok(if releasing {
        Action::requeue(RELEASE_CHECK)
    } else if let Some(after) = look_again {
        Action::requeue(after)
    } else {
        Action::await_change()
    })
}

/// Decides the operator's stages in order, stopping at the first that is not True.
async fn evaluate(
    link: &DeviceLink,
    ctx: &Context,
    status: &mut DeviceLinkStatus,
) -> Result<Vec<Outcome>> {
    let node = ctx.nodes.get(&ObjectRef::new(&link.spec.adaptor.node));
    let crds = ctx.crds.state();
    let (mut pipeline, declared) = stages::declared(
        link,
        node.as_deref(),
        crds.iter().map(|c| c.as_ref()),
        status,
    );
    let Some((model, adaptor)) = declared else {
        return Ok(pipeline.into_outcomes());
    };

    // AdaptorExisted, second half: its pod on the node, running and ready.
    let adaptor_pod = ensure_adaptor_pod(adaptor, &link.spec.adaptor.node, ctx).await?;
    status.adaptor_name = if adaptor_pod.is_true() {
        adaptor.name.to_string()
    } else {
        String::new()
    };
    if !pipeline.passed(adaptor_pod) {
        return Ok(pipeline.into_outcomes());
    }

    // The adaptor may read what this DeviceLink references (and no more)
    // before its device exists.
    grants::count_in_grant(link, ctx).await?;
    // DeviceCreated waits for every reference to resolve, and for the
    // managed broker to let its adaptor use the device's topics.
    let device = match references::check(&ctx.client, link).await? {
        Some(missing) => missing,
        None => match ctx.broker.waiting_for(link) {
            Some(why) => Outcome::unknown(BROKER_ACCESS_PENDING, why),
            None => ensure_device(link, &model, adaptor, ctx).await,
        },
    };
    pipeline.passed(device);
    Ok(pipeline.into_outcomes())
}

/// Writes the status if it differs from what is stored, and records an Event
/// for each condition that changed.
async fn write_status(link: &DeviceLink, status: DeviceLinkStatus, ctx: &Context) -> Result<()> {
    if link.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let changed: Vec<DeviceLinkCondition> = status
        .conditions
        .iter()
        .filter(|c| {
            // A condition type not ours (written by someone else) is kept
            // as it is and announced by nobody.
            parse_type(&c.type_).is_some_and(|t| {
                condition::find(link.conditions(), t)
                    .is_none_or(|old| old.status != c.status || old.reason != c.reason)
            })
        })
        .cloned()
        .collect();

    let api: Api<DeviceLink> =
        Api::namespaced(ctx.client.clone(), &link.namespace().unwrap_or_default());
    let mut updated = link.clone();
    updated.status = Some(status);
    // Replacing with our resourceVersion: if the adaptor wrote DeviceConnected
    // meanwhile, this fails with a conflict and we run again on fresh data.
    let after = api
        .replace_status(&link.name_any(), &PostParams::default(), &updated)
        .await?;
    ctx.wrote(link, &after);

    ctx.events.transitions(link, &changed);
    Ok(())
}

fn parse_type(t: &str) -> Option<ConditionType> {
    ConditionType::PIPELINE
        .into_iter()
        .find(|c| c.as_str() == t)
}

#[cfg(test)]
mod tests;
