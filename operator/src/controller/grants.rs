//! Keeping each grant (the Role naming the Secrets and ConfigMaps an adaptor
//! pod, or the console, may read in a namespace) in line with the
//! DeviceLinks there, and with the DeviceDiscoveries whose scans sign in.

use devicelink_api::{
    DeviceLink, devicelink::MQTT_EXTENSION_REFERENCE_PATHS, discovery::DeviceDiscovery,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};
use tracing::info;

use super::{
    Context,
    writes::{apply_object, delete_ignoring_missing},
};
use crate::{
    adaptor_access::{self, Grant, Grantee},
    error::Result,
    references,
};

/// Who reads a DeviceLink's referenced objects: the adaptor pod serving it
/// reads all of them, the console only those of its MQTT extension.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Reader {
    AdaptorPod,
    Console,
}

/// One grantee's access in one namespace.
#[derive(Clone, PartialEq, Debug)]
pub(super) struct AccessKey {
    namespace: String,
    grantee: Grantee,
}

impl AccessKey {
    fn of(link: &DeviceLink, reader: Reader) -> Option<AccessKey> {
        let grantee = match reader {
            Reader::AdaptorPod => Grantee::AdaptorPod {
                adaptor: devicelink_api::adaptor::find(&link.spec.adaptor.name)?,
                node: link.spec.adaptor.node.clone(),
            },
            Reader::Console => Grantee::Console,
        };
        Some(AccessKey {
            namespace: link.namespace()?,
            grantee,
        })
    }

    /// The grant of the adaptor pod that scans for `discovery`.
    fn of_scan(discovery: &DeviceDiscovery) -> Option<AccessKey> {
        Some(AccessKey {
            namespace: discovery.namespace()?,
            grantee: Grantee::AdaptorPod {
                adaptor: super::discovery::adaptor_of(&discovery.spec)?,
                node: discovery.spec.node.clone(),
            },
        })
    }

    fn scans(&self, discovery: &DeviceDiscovery) -> bool {
        AccessKey::of_scan(discovery).as_ref() == Some(self)
    }

    fn serves(&self, link: &DeviceLink) -> bool {
        link.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && match &self.grantee {
                Grantee::AdaptorPod { adaptor, node } => {
                    link.spec.adaptor.node == *node
                        && devicelink_api::adaptor::find(&link.spec.adaptor.name)
                            .is_some_and(|a| a.short_name == adaptor.short_name)
                }
                Grantee::Console => true,
                Grantee::Bridge => false,
            }
    }
}

/// The Secrets and ConfigMaps of `link` that `reader` reads.
pub(super) fn read_by(reader: Reader, link: &DeviceLink) -> Grant {
    let (secrets, config_maps) = match reader {
        Reader::AdaptorPod => references::referenced_objects(link),
        Reader::Console => references::objects_used_under(link, MQTT_EXTENSION_REFERENCE_PATHS),
    };
    Grant {
        secrets,
        config_maps,
    }
}

/// The Secrets and ConfigMaps the scans of `discovery` sign in with.
fn read_by_scan(discovery: &DeviceDiscovery) -> Grant {
    let (secrets, config_maps) = references::objects_scanned_with(discovery);
    Grant {
        secrets,
        config_maps,
    }
}

/// The readers the operator grants objects to.
fn readers(ctx: &Context) -> &'static [Reader] {
    if ctx.config.grant_console {
        &[Reader::AdaptorPod, Reader::Console]
    } else {
        &[Reader::AdaptorPod]
    }
}

/// Makes the Role of one grantee in one namespace name exactly the Secrets
/// and ConfigMaps its DeviceLinks there reference, and (an adaptor pod's)
/// those its scans there sign in with (none: no Role).
async fn sync_grant(key: &AccessKey, reader: Reader, ctx: &Context) -> Result<()> {
    let mut grant = Grant::default();
    for link in ctx.links.state() {
        if link.metadata.deletion_timestamp.is_none() && key.serves(&link) {
            let read = read_by(reader, &link);
            grant.secrets.extend(read.secrets);
            grant.config_maps.extend(read.config_maps);
        }
    }
    if reader == Reader::AdaptorPod {
        for discovery in ctx.discoveries.state() {
            if discovery.metadata.deletion_timestamp.is_none() && key.scans(&discovery) {
                let read = read_by_scan(&discovery);
                grant.secrets.extend(read.secrets);
                grant.config_maps.extend(read.config_maps);
            }
        }
    }
    let name = key.grantee.name();
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let cached = ctx.roles.get(&ObjectRef::new(&name).within(&key.namespace));
    if grant.is_empty() {
        if cached.is_some() {
            info!(namespace = %key.namespace, %name, "no Secret or ConfigMap to grant here any more; revoking");
            delete_ignoring_missing(&bindings, &name).await?;
            delete_ignoring_missing(&roles, &name).await?;
        }
        return Ok(());
    }
    let (role, binding) =
        adaptor_access::reference_access(&ctx.config, &key.namespace, &key.grantee, &grant);
    let current = cached
        .as_ref()
        .and_then(|c| adaptor_access::grant_hash(&c.metadata));
    if current.is_some() && current == adaptor_access::grant_hash(&role.metadata) {
        return Ok(());
    }
    info!(namespace = %key.namespace, %name, secrets = ?grant.secrets, config_maps = ?grant.config_maps, "granting referenced objects");
    apply_object(&roles, &role).await?;
    apply_object(&bindings, &binding).await?;
    Ok(())
}

/// A DeviceLink moved to another node or adaptor no longer counts in the
/// grant of the adaptor pod that served it.
pub(super) async fn release_moved_grant(link: &DeviceLink, ctx: &Context) -> Result<()> {
    for &reader in readers(ctx) {
        let counted = (ObjectRef::from_obj(link), reader);
        let previous = ctx.granted_to.lock().unwrap().get(&counted).cloned();
        if let Some(previous) = previous
            && !previous.serves(link)
        {
            sync_grant(&previous, reader, ctx).await?;
            ctx.granted_to.lock().unwrap().remove(&counted);
        }
    }
    Ok(())
}

/// A DeviceLink being deleted no longer counts in any grant.
pub(super) async fn release_grants(link: &DeviceLink, ctx: &Context) -> Result<()> {
    release_moved_grant(link, ctx).await?;
    // Being deleted, it is no longer counted: the same rule as counting it.
    count_in_grant(link, ctx).await
}

/// Counts the DeviceLink in the grants of those who read its references (or,
/// being deleted, takes it out). A DeviceLink that references nothing, and
/// was not counted before, changes no grant and costs no scan of the others.
pub(super) async fn count_in_grant(link: &DeviceLink, ctx: &Context) -> Result<()> {
    for &reader in readers(ctx) {
        let counted = (ObjectRef::from_obj(link), reader);
        let referencing = !read_by(reader, link).is_empty();
        let counts = referencing && link.metadata.deletion_timestamp.is_none();
        let was_counted = ctx.granted_to.lock().unwrap().contains_key(&counted);
        let Some(key) = AccessKey::of(link, reader) else {
            continue;
        };
        if !was_counted && !referencing {
            continue;
        }
        sync_grant(&key, reader, ctx).await?;
        let mut granted = ctx.granted_to.lock().unwrap();
        if counts {
            granted.insert(counted, key);
        } else {
            granted.remove(&counted);
        }
    }
    Ok(())
}

/// Counts the discovery's sign-in in the grant of the adaptor pod that
/// scans for it (or, being deleted or signing in no more, takes it out;
/// moved to another node or protocol, out of the old pod's).
pub(super) async fn count_scan_in_grant(discovery: &DeviceDiscovery, ctx: &Context) -> Result<()> {
    let counted = ObjectRef::from_obj(discovery);
    let previous = ctx.scan_granted_to.lock().unwrap().get(&counted).cloned();
    let key = AccessKey::of_scan(discovery);
    let counts = discovery.metadata.deletion_timestamp.is_none()
        && !read_by_scan(discovery).is_empty()
        && key.is_some();
    if let Some(previous) = &previous
        && (!counts || key.as_ref() != Some(previous))
    {
        sync_grant(previous, Reader::AdaptorPod, ctx).await?;
    }
    match key.filter(|_| counts) {
        Some(key) => {
            sync_grant(&key, Reader::AdaptorPod, ctx).await?;
            ctx.scan_granted_to.lock().unwrap().insert(counted, key);
        }
        None => {
            ctx.scan_granted_to.lock().unwrap().remove(&counted);
        }
    }
    Ok(())
}
