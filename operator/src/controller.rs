//! The DeviceLink controller: one reconcile that walks the condition
//! pipeline, plus the watches that wake it when a node, a model CRD or an
//! adaptor pod changes.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use devicelink_api::{
    DeviceLink, DeviceLinkCondition, DeviceLinkStatus, Outcome,
    adaptor::AdaptorKind,
    condition::{self, ConditionType},
    finalizer::{self, DEVICE_FINALIZER},
    labels,
};
use futures::StreamExt;
use k8s_openapi::{
    api::{
        core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount},
        rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        DeleteParams, DynamicObject, ObjectMeta, PartialObjectMeta, Patch, PatchParams, PostParams,
    },
    core::ApiResource,
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
    adaptor_access::{self, Grant},
    adaptor_pod,
    config::Config,
    device,
    device_watch::{self, DeviceCaches, DeviceMeta},
    error::{Error, Result},
    events::Events,
    fingerprint,
    http::Readiness,
    metrics::Metrics,
    references, stages, watch_filter,
};

/// Lets the operator stop the device and remove an unneeded adaptor pod
/// before the DeviceLink goes away.
const FINALIZER: &str = "edge.cattle.io/devicelink-operator";
/// How often a device waiting for its adaptor is looked at again.
const RELEASE_CHECK: Duration = Duration::from_secs(5);
/// Field manager for everything the operator writes.
const MANAGER: &str = "devicelink-operator";

struct Context {
    client: Client,
    config: Config,
    links: Store<DeviceLink>,
    nodes: Store<Node>,
    crds: Store<CustomResourceDefinition>,
    pods: Store<Pod>,
    /// The Roles that give adaptor pods their referenced Secrets and
    /// ConfigMaps (metadata only: the grant digest is an annotation).
    roles: Store<PartialObjectMeta<Role>>,
    events: Events,
    metrics: Metrics,
    devices: DeviceCaches,
    /// What we last applied to each device: (uid, generation it got,
    /// fingerprint of what we sent). While the cached device still matches,
    /// a reconcile needs no request to know the device is as wanted.
    applied: Mutex<HashMap<ObjectRef<DeviceLink>, AppliedDevice>>,
    /// Which adaptor pod's grant each DeviceLink was last counted in, so
    /// that moving a DeviceLink to another node takes its grant away.
    granted_to: Mutex<HashMap<ObjectRef<DeviceLink>, AccessKey>>,
    /// The resourceVersion each DeviceLink had when we last changed it.
    /// While the cache still shows that version, our change has not reached
    /// it yet: a reconcile then would only act on stale data (and its write
    /// would conflict), so it waits for the change's watch event instead.
    written_over: Mutex<HashMap<ObjectRef<DeviceLink>, String>>,
}

impl Context {
    fn cache_is_behind(&self, link: &DeviceLink) -> bool {
        let written = self.written_over.lock().unwrap();
        match (
            written.get(&ObjectRef::from_obj(link)),
            &link.metadata.resource_version,
        ) {
            (Some(before), Some(now)) => before == now,
            _ => false,
        }
    }

    /// Forgets a recorded write once the cache has moved past it.
    fn caught_up(&self, link: &DeviceLink) {
        self.written_over
            .lock()
            .unwrap()
            .remove(&ObjectRef::from_obj(link));
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
            self.written_over
                .lock()
                .unwrap()
                .insert(ObjectRef::from_obj(link), before);
        }
    }
}

/// One adaptor pod's access in one namespace.
#[derive(Clone, PartialEq, Debug)]
struct AccessKey {
    namespace: String,
    adaptor: &'static AdaptorKind,
    node: String,
}

impl AccessKey {
    fn of(link: &DeviceLink) -> Option<AccessKey> {
        Some(AccessKey {
            namespace: link.namespace()?,
            adaptor: devicelink_api::adaptor::find(&link.spec.adaptor.name)?,
            node: link.spec.adaptor.node.clone(),
        })
    }

    fn serves(&self, link: &DeviceLink) -> bool {
        link.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && link.spec.adaptor.node == self.node
            && devicelink_api::adaptor::find(&link.spec.adaptor.name)
                .is_some_and(|a| a.short_name == self.adaptor.short_name)
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
    let link_events = reflector(
        links,
        watcher(links_api, watcher::Config::default().any_semantic()).modify(watch_filter::slim),
    )
    .default_backoff()
    .applied_objects();
    // Bounded: each reconcile in flight holds a connection to the API server.
    let controller = Controller::for_stream(link_events, reader.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency));
    let links = reader;

    let (nodes, nodes_writer) = reflector::store();
    let node_events = reflector(
        nodes_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).modify(slim_node),
    )
    .default_backoff();
    // Heartbeats change nothing a DeviceLink shows; addresses do.
    let node_events = watch_filter::changes_and_deletions(node_events, node_signature);

    let (crds, crds_writer) = reflector::store();
    let crd_events = reflector(
        crds_writer,
        watcher(
            Api::<CustomResourceDefinition>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(slim_crd),
    )
    .default_backoff();
    let crd_events = watch_filter::changes_and_deletions(crd_events, |crd| {
        watch_filter::identity(&crd.metadata)
    });

    let (pods, pods_writer) = reflector::store();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &config.adaptor_namespace);
    let pod_events = reflector(
        pods_writer,
        watcher(pods_api, made_by_us()).modify(watch_filter::slim),
    )
    .default_backoff()
    .touched_objects();

    let (roles, roles_writer) = reflector::store();
    let role_events = reflector(
        roles_writer,
        watcher(
            Api::<PartialObjectMeta<Role>>::all(client.clone()),
            made_by_us(),
        )
        .modify(watch_filter::slim),
    )
    .default_backoff()
    .touched_objects();

    let (devices, device_events) = device_watch::watch(&client, device_watch::shipped_models());
    // Referenced Secrets and ConfigMaps: metadata is enough to know that one
    // appeared, changed or went away.
    let secret_events = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let config_map_events = watcher(
        Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();

    let ctx = Arc::new(Context {
        events: Events::new(client.clone(), MANAGER, &config.identity()),
        metrics,
        devices,
        applied: Mutex::default(),
        granted_to: Mutex::default(),
        written_over: Mutex::default(),
        client,
        config,
        links: links.clone(),
        nodes,
        crds,
        pods,
        roles,
    });

    let (by_node, by_model, by_pod) = (links.clone(), links.clone(), links.clone());
    let (by_secret, by_config_map, by_role) = (links.clone(), links.clone(), links.clone());
    let ready_when_filled = {
        let (links, nodes, crds, pods, roles) = (
            links,
            ctx.nodes.clone(),
            ctx.crds.clone(),
            ctx.pods.clone(),
            ctx.roles.clone(),
        );
        async move {
            let _ = tokio::join!(
                links.wait_until_ready(),
                nodes.wait_until_ready(),
                crds.wait_until_ready(),
                pods.wait_until_ready(),
                roles.wait_until_ready()
            );
            readiness.set(true);
            info!("caches filled; ready");
        }
    };
    let mut controller = controller
        .watches_stream(node_events, move |node: Node| {
            let name = node.name_any();
            matching(&by_node, move |l| l.spec.adaptor.node == name)
        })
        .watches_stream(crd_events, move |crd: CustomResourceDefinition| {
            matching(&by_model, move |l| {
                l.spec.model.kind == crd.spec.names.kind
                    && l.spec.model.api_version.split('/').next() == Some(crd.spec.group.as_str())
            })
        })
        .watches_stream(pod_events, move |pod: Pod| {
            let pod_labels = pod.labels().clone();
            matching(&by_pod, move |l| served_by(l, &pod_labels))
        })
        .watches_stream(secret_events, move |secret: PartialObjectMeta<Secret>| {
            referencing(&by_secret, &secret.metadata, |l| {
                references::referenced_objects(l).0
            })
        })
        .watches_stream(
            config_map_events,
            move |cm: PartialObjectMeta<ConfigMap>| {
                referencing(&by_config_map, &cm.metadata, |l| {
                    references::referenced_objects(l).1
                })
            },
        )
        // A grant Role changed or deleted by hand is put back.
        .watches_stream(role_events, move |role: PartialObjectMeta<Role>| {
            let role_labels = role.labels().clone();
            let namespace = role.namespace();
            matching(&by_role, move |l| {
                l.namespace() == namespace && served_by(l, &role_labels)
            })
        })
        .graceful_shutdown_on(shutdown);
    // A device deleted or edited by hand is put back from the template.
    for (model, events) in device_events {
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

/// A node as the operator keeps it: its identity and addresses.
fn slim_node(node: &mut Node) {
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
fn slim_crd(crd: &mut CustomResourceDefinition) {
    watch_filter::slim(crd);
    crd.status = None;
    for version in &mut crd.spec.versions {
        version.schema = None;
        version.additional_printer_columns = None;
        version.subresources = None;
    }
}

/// Selects the objects the operator made (adaptor pods, grant Roles).
fn made_by_us() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER))
}

/// What of a node a DeviceLink shows: which node it is, and its addresses.
fn node_signature(node: &Node) -> impl std::hash::Hash + Eq + use<> {
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
fn served_by(
    link: &DeviceLink,
    object_labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    object_labels.get(labels::NODE) == Some(&labels::node_label_value(&link.spec.adaptor.node))
        && devicelink_api::adaptor::find(&link.spec.adaptor.name).is_some_and(|a| {
            object_labels.get(labels::ADAPTOR).map(String::as_str) == Some(a.short_name)
        })
}

/// The DeviceLinks in the object's namespace whose references name it.
fn referencing(
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
fn matching(
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

async fn reconcile(link: Arc<DeviceLink>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = link.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DeviceLink> = Api::namespaced(ctx.client.clone(), &namespace);
    if ctx.cache_is_behind(&link) {
        // The watch event of our own last write brings us back.
        return Ok(Action::await_change());
    }
    ctx.caught_up(&link);
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
    if let Some(patch) = finalizer::adding(&link.metadata, FINALIZER) {
        // The update brings the DeviceLink back with the finalizer on it.
        if let Some(after) = patch_metadata(&api, &link.metadata, Some(patch)).await? {
            ctx.wrote(&link, &after);
        }
        return Ok(Action::await_change());
    }
    apply(&link, &ctx).await
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
    status.conditions = condition::advance(link.conditions(), &outcomes, &condition::now());
    status.observed_generation = link.metadata.generation;
    write_status(link, status, ctx).await?;
    // A device deleted by hand waits for its adaptor; look again in a while
    // in case the adaptor never comes.
    let releasing = cached_device(link, ctx)
        .is_some_and(|(_, device)| device.metadata.deletion_timestamp.is_some());
    Ok(if releasing {
        Action::requeue(RELEASE_CHECK)
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
    let mut outcomes = Vec::with_capacity(4);

    let node = ctx.nodes.get(&ObjectRef::new(&link.spec.adaptor.node));
    outcomes.push(stages::node(link, node.as_deref(), status));
    if !outcomes[0].is_true() {
        return Ok(outcomes);
    }

    let crds = ctx.crds.state();
    let (model_outcome, model) = stages::model(link, crds.iter().map(|c| c.as_ref()), status);
    outcomes.push(model_outcome);
    let Some(model) = model else {
        return Ok(outcomes);
    };

    let adaptor = match stages::adaptor_kind(link) {
        Ok(kind) => kind,
        Err(outcome) => {
            status.adaptor_name.clear();
            outcomes.push(outcome);
            return Ok(outcomes);
        }
    };
    let adaptor_outcome = ensure_adaptor_pod(adaptor, &link.spec.adaptor.node, ctx).await?;
    status.adaptor_name = if adaptor_outcome.is_true() {
        adaptor.name.to_string()
    } else {
        String::new()
    };
    outcomes.push(adaptor_outcome);
    if !outcomes[2].is_true() {
        return Ok(outcomes);
    }

    // The adaptor may read what this DeviceLink references (and no more)
    // before its device exists. A DeviceLink that references nothing, and
    // did not before, changes no grant.
    let link_ref = ObjectRef::from_obj(link);
    let counted = ctx.granted_to.lock().unwrap().contains_key(&link_ref);
    if let Some(key) = AccessKey::of(link).filter(|_| counted || !link.spec.references.is_empty()) {
        sync_grant(&key, ctx).await?;
        let mut granted = ctx.granted_to.lock().unwrap();
        if link.spec.references.is_empty() {
            granted.remove(&link_ref);
        } else {
            granted.insert(link_ref, key);
        }
    }
    // DeviceCreated waits for every reference to resolve.
    if let Some(missing) = references::check(&ctx.client, link).await? {
        outcomes.push(missing);
        return Ok(outcomes);
    }
    outcomes.push(ensure_device(link, &model, adaptor, ctx).await);
    Ok(outcomes)
}

/// AdaptorExisted: the adaptor pod for this kind runs on the node and is Ready.
async fn ensure_adaptor_pod(adaptor: &AdaptorKind, node: &str, ctx: &Context) -> Result<Outcome> {
    let desired = adaptor_pod::desired(&ctx.config, adaptor, node);
    let name = desired.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.adaptor_namespace);
    let existing = ctx
        .pods
        .get(&ObjectRef::new(&name).within(&ctx.config.adaptor_namespace));
    let pod_ref = format!("{}/{name}", ctx.config.adaptor_namespace);
    match existing {
        Some(pod) if pod.metadata.deletion_timestamp.is_some() => Ok(Outcome::unknown(
            "Confirming",
            format!("adaptor pod {pod_ref} is terminating; a new one follows"),
        )),
        Some(pod) if !adaptor_pod::is_current(&pod, &desired) || is_finished(&pod) => {
            // Pod specs are immutable and a finished pod never runs again:
            // replace it. Its deletion wakes us to create the new one.
            info!(pod = %pod_ref, "replacing adaptor pod");
            delete_ignoring_missing(&api, &name).await?;
            Ok(Outcome::unknown(
                "Confirming",
                format!("replacing adaptor pod {pod_ref}"),
            ))
        }
        Some(pod) if adaptor_pod::is_ready(&pod) => Ok(Outcome::ok("Found")),
        Some(_) => Ok(Outcome::unknown(
            "Confirming",
            format!("waiting for adaptor pod {pod_ref} to become ready"),
        )),
        None => {
            info!(pod = %pod_ref, "creating adaptor pod");
            let (account, binding) = adaptor_access::identity(&ctx.config, adaptor, node);
            apply_object(
                &Api::<ServiceAccount>::namespaced(
                    ctx.client.clone(),
                    &ctx.config.adaptor_namespace,
                ),
                &account,
            )
            .await?;
            apply_object(
                &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
                &binding,
            )
            .await?;
            apply_object(&api, &desired).await?;
            Ok(Outcome::unknown(
                "Confirming",
                format!("created adaptor pod {pod_ref}; waiting for it to become ready"),
            ))
        }
    }
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Makes the Role of one adaptor pod in one namespace name exactly the
/// Secrets and ConfigMaps its DeviceLinks there reference (none: no Role).
async fn sync_grant(key: &AccessKey, ctx: &Context) -> Result<()> {
    let mut grant = Grant::default();
    for link in ctx.links.state() {
        if link.metadata.deletion_timestamp.is_none() && key.serves(&link) {
            let (secrets, config_maps) = references::referenced_objects(&link);
            grant.secrets.extend(secrets);
            grant.config_maps.extend(config_maps);
        }
    }
    let name = adaptor_access::name(key.adaptor, &key.node);
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let cached = ctx.roles.get(&ObjectRef::new(&name).within(&key.namespace));
    if grant.is_empty() {
        if cached.is_some() {
            info!(namespace = %key.namespace, %name, "adaptor pod needs no Secret or ConfigMap here any more; revoking");
            delete_ignoring_missing(&bindings, &name).await?;
            delete_ignoring_missing(&roles, &name).await?;
        }
        return Ok(());
    }
    let (role, binding) = adaptor_access::reference_access(
        &ctx.config,
        &key.namespace,
        key.adaptor,
        &key.node,
        &grant,
    );
    let current = cached
        .as_ref()
        .and_then(|c| adaptor_access::grant_hash(&c.metadata));
    if current.is_some() && current == adaptor_access::grant_hash(&role.metadata) {
        return Ok(());
    }
    info!(namespace = %key.namespace, %name, secrets = ?grant.secrets, config_maps = ?grant.config_maps, "granting adaptor pod its referenced objects");
    apply_object(&roles, &role).await?;
    apply_object(&bindings, &binding).await?;
    Ok(())
}

/// A DeviceLink moved to another node or adaptor no longer counts in the
/// grant of the adaptor pod that served it.
async fn release_moved_grant(link: &DeviceLink, ctx: &Context) -> Result<()> {
    let link_ref = ObjectRef::from_obj(link);
    let previous = ctx.granted_to.lock().unwrap().get(&link_ref).cloned();
    if let Some(previous) = previous {
        if !previous.serves(link) {
            sync_grant(&previous, ctx).await?;
            ctx.granted_to.lock().unwrap().remove(&link_ref);
        }
    }
    Ok(())
}

/// A DeviceLink being deleted no longer counts in any grant.
async fn release_grants(link: &DeviceLink, ctx: &Context) -> Result<()> {
    release_moved_grant(link, ctx).await?;
    ctx.granted_to
        .lock()
        .unwrap()
        .remove(&ObjectRef::from_obj(link));
    if let Some(key) = AccessKey::of(link) {
        sync_grant(&key, ctx).await?;
    }
    Ok(())
}

/// Server-side applies an object the operator owns entirely.
async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        &object.meta().name.clone().unwrap_or_default(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// DeviceCreated: the device object exists as the template describes it.
async fn ensure_device(
    link: &DeviceLink,
    model: &ApiResource,
    adaptor: &AdaptorKind,
    ctx: &Context,
) -> Outcome {
    let desired = device::desired(link, model, adaptor.short_name);
    let fingerprint = fingerprint::of(&desired);
    let namespace = link.namespace().unwrap_or_default();
    let link_ref = ObjectRef::from_obj(link);
    if let Some(cached) = ctx.devices.get(model, &namespace, &link.name_any()) {
        if cached.metadata.deletion_timestamp.is_some() {
            if let Err(e) = release_device(link, model, &cached, ctx).await {
                warn!(error = %e, "could not release the device");
            }
            // Its deletion event brings us back to create it again.
            return Outcome::unknown(
                "Creating",
                format!(
                    "{} {namespace}/{} is being deleted; it is created again once gone",
                    model.kind,
                    link.name_any()
                ),
            );
        }
        let current = AppliedDevice {
            uid: cached.metadata.uid.clone(),
            generation: cached.metadata.generation,
            fingerprint: fingerprint.clone(),
        };
        if ctx.applied.lock().unwrap().get(&link_ref) == Some(&current) {
            return Outcome::ok("Success");
        }
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, model);
    match api
        .patch(
            &link.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(applied) => {
            ctx.applied.lock().unwrap().insert(
                link_ref,
                AppliedDevice {
                    uid: applied.metadata.uid,
                    generation: applied.metadata.generation,
                    fingerprint,
                },
            );
            Outcome::ok("Success")
        }
        // The API server validates the template against the model's schema;
        // its message names the offending field.
        Err(kube::Error::Api(e)) => Outcome::fail(
            "Fail",
            format!(
                "creating {} {namespace}/{} from spec.template: {}",
                model.kind,
                link.name_any(),
                e.message
            ),
        ),
        Err(e) => Outcome::fail(
            "Fail",
            format!("creating {} from spec.template: {e}", model.kind),
        ),
    }
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
            condition::find(link.conditions(), parse_type(&c.type_))
                .is_none_or(|old| old.status != c.status || old.reason != c.reason)
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

    if let Err(e) = ctx.events.transitions(link, &changed).await {
        warn!(error = %e, "could not record event");
    }
    Ok(())
}

fn parse_type(t: &str) -> ConditionType {
    ConditionType::PIPELINE
        .into_iter()
        .find(|c| c.as_str() == t)
        .unwrap_or(ConditionType::NodeExisted)
}

/// Where the cleanup of a deleted DeviceLink stands.
enum Cleanup {
    Done,
    /// The device is still going away; look again.
    Waiting,
}

/// The model and cached metadata of a DeviceLink's device, if it exists.
fn cached_device(link: &DeviceLink, ctx: &Context) -> Option<(ApiResource, Arc<DeviceMeta>)> {
    let crds = ctx.crds.state();
    let mut scratch = DeviceLinkStatus::default();
    let (_, model) = stages::model(link, crds.iter().map(|c| c.as_ref()), &mut scratch);
    let model = model?;
    let device = ctx.devices.get(
        &model,
        &link.namespace().unwrap_or_default(),
        &link.name_any(),
    )?;
    Some((model, device))
}

/// Runs before a DeviceLink goes away: deletes its device and waits until
/// the adaptor has stopped it and released it (or releases it itself when no
/// adaptor can), then removes the adaptor pod if no other DeviceLink needs it.
async fn cleanup(link: &DeviceLink, ctx: &Context) -> Result<Cleanup> {
    ctx.applied
        .lock()
        .unwrap()
        .remove(&ObjectRef::from_obj(link));
    release_grants(link, ctx).await?;
    if let Some((model, device)) = cached_device(link, ctx) {
        if device.metadata.deletion_timestamp.is_none() {
            let api: Api<DynamicObject> = Api::namespaced_with(
                ctx.client.clone(),
                &link.namespace().unwrap_or_default(),
                &model,
            );
            delete_ignoring_missing(&api, &link.name_any()).await?;
        } else {
            release_device(link, &model, &device, ctx).await?;
        }
        // Its deletion event (or the recheck) brings us back.
        return Ok(Cleanup::Waiting);
    }

    if let Some(adaptor) = devicelink_api::adaptor::find(&link.spec.adaptor.name) {
        let node = &link.spec.adaptor.node;
        let still_needed = ctx.links.state().iter().any(|other| {
            other.uid() != link.uid()
                && other.metadata.deletion_timestamp.is_none()
                && other.spec.adaptor.node == *node
                && other.spec.adaptor.name == link.spec.adaptor.name
        });
        if !still_needed {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.adaptor_namespace);
            let name = adaptor_pod::pod_name(adaptor, node);
            info!(pod = %name, "no DeviceLink needs this adaptor pod any more; removing it");
            delete_ignoring_missing(&api, &name).await?;
            let account = adaptor_access::name(adaptor, node);
            delete_ignoring_missing(
                &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
                &account,
            )
            .await?;
            delete_ignoring_missing(
                &Api::<ServiceAccount>::namespaced(
                    ctx.client.clone(),
                    &ctx.config.adaptor_namespace,
                ),
                &account,
            )
            .await?;
        }
    }
    Ok(Cleanup::Done)
}

/// A device being deleted is released by its adaptor, which stops it and
/// clears its retained MQTT message first. When no ready adaptor pod is
/// there to do it (node, pod or adaptor gone), or it has not done so within
/// `--device-release-grace`, the operator removes the finalizer itself so that the
/// deletion completes.
async fn release_device(
    link: &DeviceLink,
    model: &ApiResource,
    device: &DeviceMeta,
    ctx: &Context,
) -> Result<()> {
    let Some(patch) = finalizer::removing(&device.metadata, DEVICE_FINALIZER) else {
        return Ok(());
    };
    let node_exists = ctx
        .nodes
        .get(&ObjectRef::new(&link.spec.adaptor.node))
        .is_some();
    let adaptor_ready = node_exists
        && devicelink_api::adaptor::find(&link.spec.adaptor.name).is_some_and(|a| {
            let name = adaptor_pod::pod_name(a, &link.spec.adaptor.node);
            ctx.pods
                .get(&ObjectRef::new(&name).within(&ctx.config.adaptor_namespace))
                .is_some_and(|p| adaptor_pod::is_ready(&p))
        });
    let waited = device
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| condition::now().0.duration_since(t.0).unsigned_abs())
        .unwrap_or_default();
    if adaptor_ready && waited < ctx.config.device_release_grace {
        return Ok(());
    }
    let why = if adaptor_ready {
        "its adaptor did not release it in time"
    } else {
        "no ready adaptor pod serves it"
    };
    warn!(device = %format!("{}/{}", link.namespace().unwrap_or_default(), link.name_any()), "releasing the device: {why}; its retained MQTT message, if any, stays on the broker");
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &link.namespace().unwrap_or_default(),
        model,
    );
    patch_metadata(&api, &device.metadata, Some(patch)).await?;
    Ok(())
}

/// Applies a finalizer patch (see `devicelink_api::finalizer`) and returns
/// the patched object; an object already gone needs none.
async fn patch_metadata<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    patch: Option<serde_json::Value>,
) -> Result<Option<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(patch) = patch else { return Ok(None) };
    let name = meta.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(patched) => Ok(Some(patched)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
