//! What happens before a DeviceLink goes away: its device is deleted and
//! released (by the adaptor, or by the operator when no adaptor can), then
//! the adaptor pod and its identity if nothing else needs them.

use std::sync::{Arc, atomic::Ordering};

use devicelink_api::{
    DeviceLink,
    adaptor::AdaptorKind,
    condition,
    finalizer::{self, DEVICE_FINALIZER},
};
use k8s_openapi::api::{
    core::v1::{Pod, ServiceAccount},
    rbac::v1::ClusterRoleBinding,
};
use kube::{
    Api, ResourceExt, api::DynamicObject, core::ApiResource, runtime::reflector::ObjectRef,
};
use tracing::{info, warn};

use super::{
    Context,
    grants::release_grants,
    writes::{delete_ignoring_missing, patch_metadata},
};
use crate::{adaptor_access, adaptor_pod, device_watch::DeviceMeta, error::Result, stages};

/// Where the cleanup of a deleted DeviceLink stands.
pub(super) enum Cleanup {
    Done,
    /// The device is still going away; look again.
    Waiting,
}

/// The model and cached metadata of a DeviceLink's device, if it exists.
pub(super) fn cached_device(
    link: &DeviceLink,
    ctx: &Context,
) -> Option<(ApiResource, Arc<DeviceMeta>)> {
    let crds = ctx.crds.state();
    let model = stages::find_model(link, crds.iter().map(|c| c.as_ref()))?;
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
pub(super) async fn cleanup(link: &DeviceLink, ctx: &Context) -> Result<Cleanup> {
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
        let uid = link.uid();
        remove_adaptor_pod_unless_needed(adaptor, &link.spec.adaptor.node, uid.as_deref(), ctx)
            .await?;
    }
    Ok(Cleanup::Done)
}

/// Removes the adaptor pod of `adaptor` on `node`, and its identity, unless
/// a DeviceLink or a DeviceDiscovery other than the one going away
/// (`going`, a uid) still needs it.
pub(super) async fn remove_adaptor_pod_unless_needed(
    adaptor: &AdaptorKind,
    node: &str,
    going: Option<&str>,
    ctx: &Context,
) -> Result<()> {
    let other = |uid: Option<String>| uid.as_deref() != going;
    let by_link = ctx.links.state().iter().any(|l| {
        other(l.uid())
            && l.metadata.deletion_timestamp.is_none()
            && l.spec.adaptor.node == node
            && l.spec.adaptor.name == adaptor.name
    });
    // Before the discoveries are known only DeviceLinks count; a pod a
    // discovery still needs is made again at its next look.
    let discoveries_known = ctx.discoveries_filled.load(Ordering::Acquire);
    let by_discovery = discoveries_known
        && ctx.discoveries.state().iter().any(|d| {
            other(d.uid())
                && d.metadata.deletion_timestamp.is_none()
                && d.spec.node == node
                && super::discovery::adaptor_of(&d.spec).is_some_and(|a| a.name == adaptor.name)
        });
    if by_link || by_discovery {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.adaptor_namespace);
    let name = adaptor_pod::pod_name(adaptor, node);
    info!(pod = %name, "nothing needs this adaptor pod any more; removing it");
    delete_ignoring_missing(&api, &name).await?;
    let account = adaptor_access::name(adaptor, node);
    delete_ignoring_missing(
        &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
        &account,
    )
    .await?;
    delete_ignoring_missing(
        &Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ctx.config.adaptor_namespace),
        &account,
    )
    .await
}

/// A device being deleted is released by its adaptor, which stops it and
/// clears its retained MQTT message first. When no ready adaptor pod is
/// there to do it (node, pod or adaptor gone), or it has not done so within
/// `--device-release-grace`, the operator removes the finalizer itself so that the
/// deletion completes.
pub(super) async fn release_device(
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
