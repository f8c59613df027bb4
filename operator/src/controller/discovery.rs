//! Discovery, the operator's part (docs/discovery.md): each
//! DeviceDiscovery gets the adaptor pod of its protocol on its node, as a
//! DeviceLink does (the adaptor scans), and each DiscoveredDevice someone
//! adopts (or any find, with `adoption: Automatic`) gets its DeviceLink.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use devicelink_api::{
    ConditionStatus, DeviceLink,
    adaptor::{self, AdaptorKind},
    condition::kube_condition,
    discovery::{
        ADOPT, Adoption, DISCOVERED_LABEL, DeviceDiscovery, DeviceDiscoverySpec, DiscoveredDevice,
        proposed_link,
    },
    finalizer,
};
use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{Controller, WatchStreamExt, controller::Action, reflector::Store, watcher},
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Context, MANAGER, deletion::remove_adaptor_pod_unless_needed, objects::ensure_adaptor_pod,
    watches::Changes, writes::patch_metadata,
};
use crate::error::{Error, Result};

/// Lets the operator remove the adaptor pod a deleted discovery no longer
/// needs.
const FINALIZER: &str = "edge.cattle.io/discovery-operator";

/// The adaptor that scans for `spec`: the one of the protocol it names.
pub(super) fn adaptor_of(spec: &DeviceDiscoverySpec) -> Option<&'static AdaptorKind> {
    spec.modbus.as_ref().and(adaptor::find_short("modbus"))
}

/// DeviceDiscoveries, with their cache (the DeviceLinks' cleanup asks it
/// whether an adaptor pod is still needed).
pub(super) fn discoveries(
    client: &kube::Client,
) -> (Store<DeviceDiscovery>, Changes<DeviceDiscovery>) {
    let (store, writer) = kube::runtime::reflector::store();
    let events = kube::runtime::reflector(
        writer,
        watcher(Api::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects()
    .boxed();
    (store, events)
}

/// Runs both controllers until the operator stops leading.
pub(super) async fn run(ctx: Arc<Context>, discoveries: Changes<DeviceDiscovery>) {
    let store = ctx.discoveries.clone();
    let filled = {
        let ctx = ctx.clone();
        async move {
            let _ = ctx.discoveries.wait_until_ready().await;
            ctx.discoveries_filled.store(true, Ordering::Release);
        }
    };
    let scanning = Controller::for_stream(
        crate::watch_filter::errors_logged(discoveries, "devicediscoveries"),
        store,
    )
    .run(reconcile_discovery, retry, ctx.clone())
    .for_each(|r| async move { logged("discovery", r) });
    let found: Api<DiscoveredDevice> = Api::all(ctx.client.clone());
    let adopting = Controller::new(found, watcher::Config::default())
        .run(reconcile_found, retry, ctx)
        .for_each(|r| async move { logged("find", r) });
    tokio::join!(scanning, adopting, filled);
}

fn logged<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, result: std::result::Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(?object, "{what} reconciled"),
        Err(e) => tracing::debug!(error = %e, "{what} reconcile failed"),
    }
}

fn retry<K>(_: Arc<K>, err: &Error, _: Arc<Context>) -> Action {
    if !err.is_conflict() {
        warn!(error = %err, "discovery reconcile failed; retrying");
    }
    Action::requeue(Duration::from_secs(5))
}

/// A discovery's adaptor pod, made as a DeviceLink's is; once the
/// discovery is deleted, removed if nothing else needs it.
async fn reconcile_discovery(discovery: Arc<DeviceDiscovery>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.caches_filled.load(Ordering::Acquire) {
        // Whether a pod is needed is judged on the DeviceLinks' full list.
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let namespace = discovery.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DeviceDiscovery> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(adaptor) = adaptor_of(&discovery.spec) else {
        return Ok(Action::await_change());
    };
    let node = &discovery.spec.node;
    if discovery.metadata.deletion_timestamp.is_some() {
        let uid = discovery.uid();
        remove_adaptor_pod_unless_needed(adaptor, node, uid.as_deref(), &ctx).await?;
        patch_metadata(
            &api,
            &discovery.metadata,
            finalizer::removing(&discovery.metadata, FINALIZER),
        )
        .await?;
        return Ok(Action::await_change());
    }
    if patch_metadata(
        &api,
        &discovery.metadata,
        finalizer::adding(&discovery.metadata, FINALIZER),
    )
    .await?
    .is_some()
    {
        return Ok(Action::await_change()); // Its update brings us back.
    }
    // Until the pod is Ready (a pod's changes wake DeviceLinks, not
    // discoveries), look again now and then.
    let pod = ensure_adaptor_pod(adaptor, node, &ctx).await?;
    let again = match pod.status {
        devicelink_api::ConditionStatus::True => Duration::from_secs(300),
        _ => Duration::from_secs(10),
    };
    record_adaptor(&api, &discovery, pod).await?;
    Ok(Action::requeue(again))
}

/// Says in the discovery's status whether its adaptor pod runs
/// (`AdaptorExisted`, as a DeviceLink's): until it does, nothing scans.
/// Written only when it changed.
async fn record_adaptor(
    api: &Api<DeviceDiscovery>,
    discovery: &DeviceDiscovery,
    pod: devicelink_api::Outcome,
) -> Result<()> {
    let current = discovery.status.as_ref().map(|s| s.conditions.as_slice());
    let Some(condition) = kube_condition(
        current.unwrap_or_default(),
        "AdaptorExisted",
        pod.status,
        &pod.reason,
        &pod.message,
        None,
    ) else {
        return Ok(());
    };
    let patch = json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DeviceDiscovery",
        "status": {"conditions": [condition]},
    });
    api.patch_status(
        &discovery.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Creates the DeviceLink of a find that is to be adopted, and says so in
/// its status (or why not).
async fn reconcile_found(found: Arc<DiscoveredDevice>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.discoveries_filled.load(Ordering::Acquire) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = found.namespace().ok_or(Error::NotNamespaced)?;
    let adopted = found.status.as_ref().and_then(|s| s.adopted_as.as_ref());
    if adopted.is_some() || found.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(discovery) = ctx.discoveries.state().into_iter().find(|d| {
        d.namespace().as_ref() == Some(&namespace) && d.name_any() == found.spec.discovery
    }) else {
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let asked = found.annotations().get(ADOPT).is_some_and(|v| v == "true");
    if !asked && discovery.spec.adoption != Adoption::Automatic {
        return Ok(Action::await_change());
    }
    // Only what the discovery's own scan wrote is adopted: a find must be
    // owned by it and found from its node.
    let owned = found
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == discovery.metadata.uid.as_ref());
    let outcome = if !owned || found.spec.node != discovery.spec.node {
        Err((
            "NotItsDiscovery",
            format!(
                "it was not found by discovery {} (not owned by it, or found from another node)",
                discovery.name_any()
            ),
        ))
    } else {
        match proposed_link(&found, &discovery) {
            Ok(link) => create_link(&ctx, &namespace, &link).await?,
            Err(why) => Err(("NothingToPropose", why)),
        }
    };
    record_adoption(&ctx, &found, &namespace, outcome).await?;
    Ok(Action::await_change())
}

/// Creates `link`, or finds it made already (by an earlier adoption whose
/// status write was lost); another DeviceLink of its name is not touched.
async fn create_link(
    ctx: &Context,
    namespace: &str,
    link: &DeviceLink,
) -> Result<std::result::Result<String, (&'static str, String)>> {
    let api: Api<DeviceLink> = Api::namespaced(ctx.client.clone(), namespace);
    let name = link.name_any();
    match api.create(&PostParams::default(), link).await {
        Ok(_) => {
            info!(devicelink = %format!("{namespace}/{name}"), "created from an adopted find");
            Ok(Ok(name))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&name).await?;
            Ok(
                match existing.labels().get(DISCOVERED_LABEL) == Some(&name) {
                    true => Ok(name),
                    false => Err((
                        "NameTaken",
                        format!(
                            "a DeviceLink named {name} exists and was not made from this find: delete or rename it"
                        ),
                    )),
                },
            )
        }
        Err(kube::Error::Api(e)) if matches!(e.code, 400 | 403 | 422) => Ok(Err((
            "Refused",
            format!("the API server refused its DeviceLink: {}", e.message),
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Writes `adoptedAs` and the `Adopted` condition (the operator's fields
/// of the status; the adaptor applies the others).
async fn record_adoption(
    ctx: &Context,
    found: &DiscoveredDevice,
    namespace: &str,
    outcome: std::result::Result<String, (&'static str, String)>,
) -> Result<()> {
    let (adopted_as, status, reason, message) = match outcome {
        Ok(name) => (
            Some(name.clone()),
            ConditionStatus::True,
            "Adopted",
            format!("DeviceLink {name} was made from it"),
        ),
        Err((reason, why)) => {
            warn!(found = %found.name_any(), reason, error = %why, "could not adopt");
            (None, ConditionStatus::False, reason, why)
        }
    };
    let current = found
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let changed = kube_condition(current, "Adopted", status, reason, &message, None);
    // The same refusal again is not written: the write would wake this
    // reconcile, which would refuse again. (What is applied must hold the
    // condition still, or server-side apply would drop it.)
    let condition = match (changed, &adopted_as) {
        (Some(changed), _) => changed,
        (None, None) => return Ok(()),
        (None, Some(_)) => current
            .iter()
            .find(|c| c.type_ == "Adopted")
            .cloned()
            .expect("kube_condition found it unchanged"),
    };
    let mut written = json!({"conditions": [condition]});
    if let Some(name) = adopted_as {
        written["adoptedAs"] = json!(name);
    }
    let patch = json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DiscoveredDevice",
        "status": written,
    });
    let api: Api<DiscoveredDevice> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        &found.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}
