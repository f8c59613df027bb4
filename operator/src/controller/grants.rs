//! Keeping each adaptor pod's grant (the Role naming the Secrets and
//! ConfigMaps it may read in a namespace) in line with the DeviceLinks it
//! serves there.

use devicelink_api::{DeviceLink, adaptor::AdaptorKind};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};
use tracing::info;

use super::{
    Context,
    writes::{apply_object, delete_ignoring_missing},
};
use crate::{
    adaptor_access::{self, Grant},
    error::Result,
    references,
};

/// One adaptor pod's access in one namespace.
#[derive(Clone, PartialEq, Debug)]
pub(super) struct AccessKey {
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

/// Makes the Role of one adaptor pod in one namespace name exactly the
/// Secrets and ConfigMaps its DeviceLinks there reference (none: no Role).
pub(super) async fn sync_grant(key: &AccessKey, ctx: &Context) -> Result<()> {
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
pub(super) async fn release_moved_grant(link: &DeviceLink, ctx: &Context) -> Result<()> {
    let link_ref = ObjectRef::from_obj(link);
    let previous = ctx.granted_to.lock().unwrap().get(&link_ref).cloned();
    if let Some(previous) = previous
        && !previous.serves(link)
    {
        sync_grant(&previous, ctx).await?;
        ctx.granted_to.lock().unwrap().remove(&link_ref);
    }
    Ok(())
}

/// A DeviceLink being deleted no longer counts in any grant.
pub(super) async fn release_grants(link: &DeviceLink, ctx: &Context) -> Result<()> {
    release_moved_grant(link, ctx).await?;
    // Being deleted, it is no longer counted: the same rule as counting it.
    count_in_grant(link, ctx).await
}

/// Counts the DeviceLink in the grant of the adaptor pod that serves it (or,
/// being deleted, takes it out). A DeviceLink that references nothing, and
/// was not counted before, changes no grant and costs no scan of the others.
pub(super) async fn count_in_grant(link: &DeviceLink, ctx: &Context) -> Result<()> {
    let link_ref = ObjectRef::from_obj(link);
    let referencing = !link.spec.references.is_empty();
    let counts = referencing && link.metadata.deletion_timestamp.is_none();
    let counted = ctx.granted_to.lock().unwrap().contains_key(&link_ref);
    let Some(key) = AccessKey::of(link) else {
        return Ok(());
    };
    if !counted && !referencing {
        return Ok(());
    }
    sync_grant(&key, ctx).await?;
    let mut granted = ctx.granted_to.lock().unwrap();
    if counts {
        granted.insert(link_ref, key);
    } else {
        granted.remove(&link_ref);
    }
    Ok(())
}
