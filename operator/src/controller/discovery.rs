//! Discovery, the operator's part (docs/discovery.md): each
//! DeviceDiscovery gets the adaptor pod of its protocol on its node, as a
//! DeviceLink does (the adaptor scans), and each DiscoveredDevice gets the
//! DeviceTemplate that says what it is and, once someone adopts it (or its
//! discovery's `adoption` does), its DeviceLink.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use devicelink_api::{
    ConditionStatus, DeviceLink,
    adaptor::{self, AdaptorKind},
    ble::BluetoothDevice,
    catalog::{DeviceTemplate, best_match},
    condition::kube_condition,
    discovery::{
        ADOPT, DISCOVERED_LABEL, DeviceDiscovery, DeviceDiscoverySpec, DiscoveredDevice,
        DiscoveredProtocol, proposed_link,
    },
    finalizer,
    modbus::ModbusDevice,
    mqtt_device::MQTTDevice,
    opcua::OPCUADevice,
};
use futures::{FutureExt, StreamExt};
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
    runtime::{
        Controller, WatchStreamExt, controller::Action, reflector::ObjectRef, reflector::Store,
        watcher,
    },
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
    adaptor::find_short(spec.protocol()?.adaptor())
}

/// Objects of kind `K` in every namespace, with their cache: the
/// DeviceDiscoveries (the DeviceLinks' cleanup asks it whether an adaptor
/// pod is still needed) and the DeviceTemplates.
pub(super) fn cached<K>(client: &kube::Client) -> (Store<K>, Changes<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let events = kube::runtime::reflector(
        writer,
        watcher(Api::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
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
    let (templates, template_events) = cached::<DeviceTemplate>(&ctx.client);
    let adopting = Controller::new(found, watcher::Config::default());
    // A template that comes or changes may say what the finds of its
    // namespace are.
    let finds = adopting.store();
    let adopting = adopting
        .watches_stream(
            crate::watch_filter::errors_logged(template_events, "devicetemplates"),
            move |template| {
                let namespace = template.namespace();
                finds
                    .state()
                    .into_iter()
                    .filter(move |f| f.namespace() == namespace)
                    .map(|f| ObjectRef::from_obj(&*f))
            },
        )
        .run(reconcile_found, retry, Arc::new(Catalog { ctx, templates }))
        .for_each(|r| async move { logged("find", r) });
    tokio::join!(scanning, adopting, filled);
}

fn logged<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, result: std::result::Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(?object, "{what} reconciled"),
        Err(e) => tracing::debug!(error = %e, "{what} reconcile failed"),
    }
}

fn retry<K, C>(_: Arc<K>, err: &Error, _: Arc<C>) -> Action {
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
    // The adaptor pod may read what the scan signs in with (and no more
    // once the discovery is gone or signs in no more).
    super::grants::count_scan_in_grant(&discovery, &ctx).await?;
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

/// What the adoption of finds reads: the operator's context and the
/// catalog's templates.
struct Catalog {
    ctx: Arc<Context>,
    templates: Store<DeviceTemplate>,
}

/// Why a find has no DeviceLink (yet): a reason and a message for its
/// `Adopted` condition.
type NotAdopted = (&'static str, String);

/// Says which template matches a find and, when it is to be adopted,
/// creates its DeviceLink; its status says so (or why not).
async fn reconcile_found(found: Arc<DiscoveredDevice>, catalog: Arc<Catalog>) -> Result<Action> {
    let ctx = &catalog.ctx;
    let templates_filled = catalog
        .templates
        .wait_until_ready()
        .now_or_never()
        .is_some();
    if !ctx.discoveries_filled.load(Ordering::Acquire) || !templates_filled {
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
    let templates = catalog.templates.state();
    let template = best_match(templates.iter().map(|t| &**t), &found);
    let asked = found.annotations().get(ADOPT).is_some_and(|v| v == "true");
    let outcome = if asked || discovery.spec.adoption.adopts_unasked(template.is_some()) {
        adopt(ctx, &found, &discovery, template).await?
    } else {
        Err(waiting(&discovery))
    };
    record(ctx, &found, template.map(|t| t.name_any()), outcome).await?;
    Ok(Action::await_change())
}

/// Why a find the discovery does not adopt by itself waits.
fn waiting(discovery: &DeviceDiscovery) -> NotAdopted {
    (
        "AwaitingApproval",
        format!(
            "discovery {} adopts {}: annotate it {ADOPT}=true to create its DeviceLink",
            discovery.name_any(),
            match discovery.spec.adoption {
                devicelink_api::discovery::Adoption::Matched =>
                    "the finds a DeviceTemplate matches",
                _ => "only the finds a person approves",
            }
        ),
    )
}

/// Creates the DeviceLink of `found`, from `template` if one matches.
/// Only what the discovery's own scan wrote is adopted: a find must be
/// owned by it and found from its node.
async fn adopt(
    ctx: &Context,
    found: &DiscoveredDevice,
    discovery: &DeviceDiscovery,
    template: Option<&DeviceTemplate>,
) -> Result<std::result::Result<String, NotAdopted>> {
    let owned = found
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == discovery.metadata.uid.as_ref());
    if !owned || found.spec.node != discovery.spec.node {
        return Ok(Err((
            "NotItsDiscovery",
            format!(
                "it was not found by discovery {} (not owned by it, or found from another node)",
                discovery.name_any()
            ),
        )));
    }
    let link = match proposed_link(found, discovery, template) {
        Ok(link) => link,
        Err(why) if template.is_some() => return Ok(Err(("TemplateInvalid", why))),
        Err(why) => return Ok(Err(("NothingToPropose", why))),
    };
    if let Err(why) = device_refused(ctx, &link, found.spec.protocol).await? {
        return Ok(Err(("DeviceRefused", why)));
    }
    create_link(ctx, &link).await
}

/// Creates `link`, or finds it made already (by an earlier adoption whose
/// status write was lost); another DeviceLink of its name is not touched.
async fn create_link(
    ctx: &Context,
    link: &DeviceLink,
) -> Result<std::result::Result<String, NotAdopted>> {
    let namespace = link.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DeviceLink> = Api::namespaced(ctx.client.clone(), &namespace);
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

/// Whether the API server would take the device object of `link`, asked
/// by a dry run: a template the model's schema refuses is then named on
/// the find, before any DeviceLink is made from it. (An object of that
/// name made by an earlier adoption whose status write was lost is
/// applied over, as the DeviceLink's reconcile would.)
async fn device_refused(
    ctx: &Context,
    link: &DeviceLink,
    protocol: DiscoveredProtocol,
) -> Result<std::result::Result<(), String>> {
    let model = match protocol {
        DiscoveredProtocol::Modbus => ApiResource::erase::<ModbusDevice>(&()),
        DiscoveredProtocol::Opcua => ApiResource::erase::<OPCUADevice>(&()),
        DiscoveredProtocol::Mqtt => ApiResource::erase::<MQTTDevice>(&()),
        DiscoveredProtocol::Ble => ApiResource::erase::<BluetoothDevice>(&()),
    };
    let desired = crate::device::desired(link, &model, protocol.adaptor());
    let namespace = link.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &model);
    // As the DeviceLink's reconcile will write it (server-side apply), so
    // that what that write would refuse is refused here; strict, so that a
    // field the model does not have is named rather than dropped.
    let dry_run = PatchParams::apply(MANAGER)
        .force()
        .dry_run()
        .validation_strict();
    match api
        .patch(&link.name_any(), &dry_run, &Patch::Apply(&desired))
        .await
    {
        Ok(_) => Ok(Ok(())),
        // The API server answers 500 when an applied field is not in the
        // schema ("failed to create typed patch object"): a refusal too.
        Err(kube::Error::Api(e))
            if matches!(e.code, 400 | 403 | 422)
                || (e.code == 500 && e.message.contains("typed patch")) =>
        {
            Ok(Err(format!(
                "the API server refuses its {}: {}",
                model.kind, e.message
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the operator's part of a find's status: `template`,
/// `adoptedAs` and the `Adopted` condition, when any changed. (Each apply
/// holds all three: server-side apply drops what its manager no longer
/// sends.)
async fn record(
    ctx: &Context,
    found: &DiscoveredDevice,
    template: Option<String>,
    outcome: std::result::Result<String, NotAdopted>,
) -> Result<()> {
    let (adopted_as, status, reason, message) = match outcome {
        Ok(name) => (
            Some(name.clone()),
            ConditionStatus::True,
            "Adopted",
            format!("DeviceLink {name} was made from it"),
        ),
        Err((reason, why)) => {
            if reason != "AwaitingApproval" {
                warn!(found = %found.name_any(), reason, error = %why, "could not adopt");
            }
            (None, ConditionStatus::False, reason, why)
        }
    };
    let before = found.status.clone().unwrap_or_default();
    let changed = kube_condition(
        &before.conditions,
        "Adopted",
        status,
        reason,
        &message,
        None,
    );
    if changed.is_none() && adopted_as == before.adopted_as && template == before.template {
        // Written already: writing again would wake this reconcile.
        return Ok(());
    }
    let news = changed.is_some() && reason != "AwaitingApproval";
    let condition = changed.or_else(|| {
        before
            .conditions
            .iter()
            .find(|c| c.type_ == "Adopted")
            .cloned()
    });
    let mut written = json!({"conditions": condition.into_iter().collect::<Vec<_>>()});
    if let Some(template) = template {
        written["template"] = json!(template);
    }
    if let Some(name) = adopted_as {
        written["adoptedAs"] = json!(name);
    }
    let patch = json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DiscoveredDevice",
        "status": written,
    });
    let namespace = found.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DiscoveredDevice> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(
        &found.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    // An adoption, or why one failed, is news for whoever watches the
    // namespace's Events; a find waiting for a person is not.
    if news {
        ctx.events.record(crate::reported::Happened {
            regarding: kube::Resource::object_ref(found, &()),
            warning: status == ConditionStatus::False,
            reason: reason.to_string(),
            action: "Adopt",
            note: message,
        });
    }
    Ok(())
}
