//! Who an adaptor pod is to the API server, with least privilege.
//!
//! Each adaptor pod (one adaptor kind on one node) runs as its own
//! ServiceAccount. A ClusterRoleBinding gives it the adaptor kind's
//! ClusterRole (read its devices and DeviceLinks, write their status; from
//! the deploy manifests or the Helm chart). For Secrets and ConfigMaps it
//! gets, per namespace, a Role that names exactly the objects the DeviceLinks
//! it serves there reference, and nothing else: an edge node is the exposed
//! party, so what one node's adaptor could leak is only its own devices'
//! credentials.
//!
//! The live console, when the operator is told it is installed
//! (`--grant-console`), gets the same kind of Role per namespace, naming
//! only the objects the MQTT extensions there reference: it follows device
//! topics on those brokers and needs their credentials, and nothing else.
//! The Kafka bridge (`--grant-bridge`) gets one naming the objects the
//! KafkaBridges there reference.

use std::collections::{BTreeMap, BTreeSet};

use devicelink_api::adaptor::AdaptorKind;
use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::api::ObjectMeta;

use devicelink_api::labels;

use crate::{adaptor_pod, config::Config};

/// Annotation on the Role carrying a digest of what it grants, so that a
/// Role in the cache can be compared without a write.
pub const GRANT_HASH: &str = "edge.cattle.io/grant-hash";

/// The name of the pod's ServiceAccount, its ClusterRoleBinding and its
/// per-namespace Roles and RoleBindings: the pod's own name.
pub fn name(adaptor: &AdaptorKind, node: &str) -> String {
    adaptor_pod::pod_name(adaptor, node)
}

/// The ClusterRole every adaptor of a kind gets.
pub fn kind_cluster_role(adaptor: &AdaptorKind) -> String {
    format!("devicelink-adaptor-{}", adaptor.short_name)
}

fn subject(config: &Config, adaptor: &AdaptorKind, node: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name(adaptor, node),
        namespace: Some(config.adaptor_namespace.clone()),
        api_group: None,
    }
}

fn meta(namespace: Option<&str>, adaptor: &AdaptorKind, node: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name(adaptor, node)),
        namespace: namespace.map(str::to_string),
        labels: Some(adaptor_pod::pod_labels(adaptor, node)),
        ..Default::default()
    }
}

/// The pod's ServiceAccount and the binding to its kind's ClusterRole.
pub fn identity(
    config: &Config,
    adaptor: &AdaptorKind,
    node: &str,
) -> (ServiceAccount, ClusterRoleBinding) {
    let account = ServiceAccount {
        metadata: meta(Some(&config.adaptor_namespace), adaptor, node),
        // The adaptor talks to the API server with a projected token; it
        // needs no long-lived one.
        automount_service_account_token: Some(true),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(None, adaptor, node),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: kind_cluster_role(adaptor),
        },
        subjects: Some(vec![subject(config, adaptor, node)]),
    };
    (account, binding)
}

/// The console's ServiceAccount (in the operator's namespace) and the name
/// of its Role and RoleBinding in each namespace it is granted objects in.
pub const CONSOLE: &str = "devicelink-console";
/// The same for the Kafka bridge.
pub const BRIDGE: &str = "devicelink-bridge";

/// Who a grant of referenced Secrets and ConfigMaps is for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Grantee {
    /// One adaptor pod: an adaptor kind on a node.
    AdaptorPod {
        adaptor: &'static AdaptorKind,
        node: String,
    },
    /// The live console.
    Console,
    /// The Kafka bridge.
    Bridge,
}

impl Grantee {
    /// The name of its Role and RoleBinding (and its ServiceAccount's).
    pub fn name(&self) -> String {
        match self {
            Grantee::AdaptorPod { adaptor, node } => name(adaptor, node),
            Grantee::Console => CONSOLE.to_string(),
            Grantee::Bridge => BRIDGE.to_string(),
        }
    }

    fn subject(&self, config: &Config) -> Subject {
        match self {
            Grantee::AdaptorPod { adaptor, node } => subject(config, adaptor, node),
            Grantee::Console | Grantee::Bridge => Subject {
                kind: "ServiceAccount".into(),
                name: self.name(),
                namespace: Some(config.lease_namespace.clone()),
                api_group: None,
            },
        }
    }

    fn meta(&self, namespace: &str) -> ObjectMeta {
        let labels = match self {
            Grantee::AdaptorPod { adaptor, node } => adaptor_pod::pod_labels(adaptor, node),
            Grantee::Console | Grantee::Bridge => BTreeMap::from([
                (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                (labels::COMPONENT.to_string(), self.name()),
            ]),
        };
        ObjectMeta {
            name: Some(self.name()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        }
    }
}

/// The Secrets and ConfigMaps, by name, that a grantee may read in one
/// namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grant {
    pub secrets: BTreeSet<String>,
    pub config_maps: BTreeSet<String>,
}

impl Grant {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.config_maps.is_empty()
    }
}

/// The Role and RoleBinding in `namespace` that give `grantee` `grant`.
pub fn reference_access(
    config: &Config,
    namespace: &str,
    grantee: &Grantee,
    grant: &Grant,
) -> (Role, RoleBinding) {
    // get, and list/watch with a metadata.name field selector: RBAC checks
    // both against resourceNames, so the adaptor can follow each object.
    let rule = |resource: &str, names: &BTreeSet<String>| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.to_string()]),
        resource_names: Some(names.iter().cloned().collect()),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        non_resource_urls: None,
    };
    let mut rules = Vec::new();
    if !grant.secrets.is_empty() {
        rules.push(rule("secrets", &grant.secrets));
    }
    if !grant.config_maps.is_empty() {
        rules.push(rule("configmaps", &grant.config_maps));
    }
    let subject = grantee.subject(config);
    let mut role_meta = grantee.meta(namespace);
    role_meta.annotations = Some(
        [(
            GRANT_HASH.to_string(),
            crate::fingerprint::of(&(&rules, &subject)),
        )]
        .into(),
    );
    let role = Role {
        metadata: role_meta,
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata: grantee.meta(namespace),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: grantee.name(),
        },
        subjects: Some(vec![subject]),
    };
    (role, binding)
}

/// The digest a Role carries; equal digests mean equal grants.
pub fn grant_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(GRANT_HASH))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn dummy() -> Grantee {
        Grantee::AdaptorPod {
            adaptor: devicelink_api::adaptor::find_short("dummy").unwrap(),
            node: "edge-1".into(),
        }
    }

    #[test]
    fn role_names_exactly_the_referenced_objects() {
        let config = Config::parse_from(["op"]);
        let grant = Grant {
            secrets: ["mqtt-auth".to_string()].into(),
            config_maps: BTreeSet::new(),
        };
        let (role, binding) = reference_access(&config, "plant", &dummy(), &grant);
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1, "no ConfigMap rule without ConfigMaps");
        assert_eq!(rules[0].resources, Some(vec!["secrets".to_string()]));
        assert_eq!(rules[0].resource_names, Some(vec!["mqtt-auth".to_string()]));
        assert_eq!(role.metadata.namespace.as_deref(), Some("plant"));
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(subject.name, "devicelink-adaptor-dummy-edge-1");
        assert_eq!(subject.namespace.as_deref(), Some("devicelink-system"));
    }

    #[test]
    fn grant_hash_changes_with_the_grant() {
        let config = Config::parse_from(["op"]);
        let one = Grant {
            secrets: ["a".to_string()].into(),
            ..Default::default()
        };
        let two = Grant {
            secrets: ["a".to_string(), "b".to_string()].into(),
            ..Default::default()
        };
        let hash = |g: &Grant| {
            let (role, _) = reference_access(&config, "ns", &dummy(), g);
            grant_hash(&role.metadata).unwrap().to_string()
        };
        assert_eq!(hash(&one), hash(&one.clone()));
        assert_ne!(hash(&one), hash(&two));
    }

    #[test]
    fn the_console_grant_binds_the_console_account_in_the_operators_namespace() {
        let config = Config::parse_from(["op", "--grant-console", "--lease-namespace", "edge"]);
        let grant = Grant {
            secrets: ["mqtt-auth".to_string()].into(),
            config_maps: ["broker-ca".to_string()].into(),
        };
        let (role, binding) = reference_access(&config, "plant", &Grantee::Console, &grant);
        assert_eq!(role.metadata.name.as_deref(), Some("devicelink-console"));
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r.verbs == ["get", "list", "watch"]));
        assert_eq!(binding.role_ref.name, "devicelink-console");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("devicelink-console", Some("edge"))
        );
        let labels = role.metadata.labels.unwrap();
        assert_eq!(
            labels.get(labels::MANAGED_BY).map(String::as_str),
            Some("devicelink-operator")
        );
        assert_eq!(labels.get(labels::ADAPTOR), None, "no adaptor pod's grant");
    }
}
