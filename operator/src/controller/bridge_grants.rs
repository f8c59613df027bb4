//! The Kafka bridge's grants: in each namespace with KafkaBridges, a Role
//! naming exactly the Secrets and ConfigMaps their `spec.references` name,
//! bound to the bridge's ServiceAccount (`--grant-bridge`). The bridge reads
//! them to connect; it may read no other Secret.
//!
//! Unlike the DeviceLinks' grants this runs beside the controller, not in
//! its reconcile: a KafkaBridge has no status of the operator's to report,
//! and its grants depend only on the KafkaBridges of one namespace.

use std::{collections::BTreeSet, time::Duration};

use devicelink_api::kafka_bridge::KafkaBridge;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{
    Api, Client, ResourceExt,
    api::ListParams,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tracing::{info, warn};

use super::writes::{apply_object, delete_ignoring_missing};
use crate::{
    adaptor_access::{self, BRIDGE, Grant, Grantee},
    config::Config,
    error::Result,
    references,
};

/// How soon a namespace whose grant could not be written is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How often every grant is checked again (one changed by hand is put back).
const RESYNC: Duration = Duration::from_secs(300);

/// Keeps the bridge's grants in line with the KafkaBridges, until dropped.
pub(super) async fn run(client: Client, config: Config) {
    let (store, writer) = reflector::store();
    let mut events = reflector(
        writer,
        watcher(
            Api::<KafkaBridge>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .boxed();
    // Namespaces whose grant may be out of line; `None` until the first
    // list is in (a grant judged before then would be revoked).
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut listed = false;
    let mut retry = tokio::time::interval(RETRY);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Ok(watcher::Event::InitDone)) => {
                    listed = true;
                    pending.extend(granted_namespaces(&client).await);
                    pending.extend(store.state().iter().filter_map(|b| b.namespace()));
                }
                Some(Ok(watcher::Event::Apply(b) | watcher::Event::Delete(b))) => {
                    pending.extend(b.namespace());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => warn!(error = %e, "watching KafkaBridges; retrying"),
            },
            _ = retry.tick() => {}
            _ = resync.tick() => if listed {
                pending.extend(granted_namespaces(&client).await);
                pending.extend(store.state().iter().filter_map(|b| b.namespace()));
            },
        }
        if !listed {
            continue;
        }
        let mut failed = BTreeSet::new();
        for namespace in std::mem::take(&mut pending) {
            let bridges = store
                .state()
                .into_iter()
                .filter(|b| b.namespace().as_deref() == Some(namespace.as_str()));
            if let Err(e) = sync(&client, &config, &namespace, grant_for(bridges)).await {
                warn!(%namespace, error = %e, "granting the bridge its references; retrying");
                failed.insert(namespace);
            }
        }
        pending = failed;
    }
}

/// What the bridge reads for these KafkaBridges (of one namespace).
fn grant_for(bridges: impl IntoIterator<Item = std::sync::Arc<KafkaBridge>>) -> Grant {
    let mut grant = Grant::default();
    for bridge in bridges {
        if bridge.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (secrets, config_maps) = references::objects_of(&bridge.spec.references);
        grant.secrets.extend(secrets);
        grant.config_maps.extend(config_maps);
    }
    grant
}

/// The namespaces where the bridge holds a grant now.
async fn granted_namespaces(client: &Client) -> Vec<String> {
    let roles: Api<Role> = Api::all(client.clone());
    let selector = ListParams::default().fields(&format!("metadata.name={BRIDGE}"));
    match roles.list_metadata(&selector).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|r| {
                r.labels()
                    .get(devicelink_api::labels::MANAGED_BY)
                    .map(String::as_str)
                    == Some(devicelink_api::labels::MANAGER)
            })
            .filter_map(|r| r.namespace())
            .collect(),
        Err(e) => {
            warn!(error = %e, "listing the bridge's grants");
            Vec::new()
        }
    }
}

/// Makes the bridge's Role in `namespace` grant exactly `grant` (nothing:
/// no Role).
async fn sync(client: &Client, config: &Config, namespace: &str, grant: Grant) -> Result<()> {
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let current = roles.get_metadata_opt(BRIDGE).await?;
    if grant.is_empty() {
        if current.is_some() {
            info!(%namespace, "no KafkaBridge here references anything any more; revoking the bridge's grant");
            delete_ignoring_missing(&bindings, BRIDGE).await?;
            delete_ignoring_missing(&roles, BRIDGE).await?;
        }
        return Ok(());
    }
    let (role, binding) =
        adaptor_access::reference_access(config, namespace, &Grantee::Bridge, &grant);
    let held = current
        .as_ref()
        .and_then(|c| adaptor_access::grant_hash(&c.metadata));
    if held.is_some() && held == adaptor_access::grant_hash(&role.metadata) {
        return Ok(());
    }
    info!(%namespace, secrets = ?grant.secrets, config_maps = ?grant.config_maps, "granting the bridge its references");
    apply_object(&roles, &role).await?;
    apply_object(&bindings, &binding).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn bridge(name: &str, secrets: &[&str], deleting: bool) -> Arc<KafkaBridge> {
        let references: Vec<_> = secrets
            .iter()
            .map(|s| serde_json::json!({"name": s, "secret": {"name": s}}))
            .collect();
        let mut bridge: KafkaBridge = serde_json::from_value(serde_json::json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "metadata": {"name": name, "namespace": "plant"},
            "spec": {
                "references": references,
                "source": {"client": {"server": "tcp://broker:1883"}, "topics": ["a/#"]},
                "sink": {"bootstrapServers": ["kafka:9092"], "topic": "devices"},
            },
        }))
        .unwrap();
        if deleting {
            bridge.metadata.deletion_timestamp = Some(devicelink_api::condition::now());
        }
        Arc::new(bridge)
    }

    #[test]
    fn the_grant_is_every_live_bridges_references() {
        let grant = grant_for([
            bridge("a", &["kafka-auth", "mqtt-auth"], false),
            bridge("b", &["mqtt-auth"], false),
            bridge("c", &["going-away"], true),
        ]);
        assert_eq!(
            grant.secrets.into_iter().collect::<Vec<_>>(),
            ["kafka-auth", "mqtt-auth"]
        );
        assert!(grant.config_maps.is_empty());
    }
}
