//! The adaptor pod: one per adaptor kind per node that has DeviceLinks for it.
//!
//! A bare pod with a name derived from (adaptor, node) rather than a
//! Deployment: the name makes it impossible for two adaptors of one kind to
//! run on one node at the same time (a serial port or a radio has one user),
//! and the operator itself recreates it when it goes away.

use std::collections::BTreeMap;

use devicelink_api::{adaptor::AdaptorKind, labels};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EnvVar, EnvVarSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodSecurityContext,
    PodSpec, SeccompProfile, SecurityContext,
};
use kube::api::ObjectMeta;

use crate::config::Config;

/// Annotation carrying a digest of the pod spec we want, so that a pod in the
/// cache can be compared without a write.
pub const SPEC_HASH: &str = "edge.cattle.io/spec-hash";

/// The service account adaptor pods of a kind run as; created with the RBAC
/// for that kind by the deploy manifests or the Helm chart.
pub fn service_account(adaptor: &AdaptorKind) -> String {
    format!("devicelink-adaptor-{}", adaptor.short_name)
}

/// Name of the adaptor pod for an adaptor kind on a node.
pub fn pod_name(adaptor: &AdaptorKind, node: &str) -> String {
    format!(
        "devicelink-adaptor-{}-{}",
        adaptor.short_name,
        labels::node_label_value(node)
    )
}

/// Labels that identify the adaptor pod for an adaptor kind on a node.
pub fn pod_labels(adaptor: &AdaptorKind, node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
        (labels::ADAPTOR.to_string(), adaptor.short_name.to_string()),
        (labels::NODE.to_string(), labels::node_label_value(node)),
    ])
}

/// The pod we want for an adaptor kind on a node.
pub fn desired(config: &Config, adaptor: &AdaptorKind, node: &str) -> Pod {
    let spec = PodSpec {
        service_account_name: Some(service_account(adaptor)),
        affinity: Some(Affinity {
            // Pin by node name the way DaemonSets do, so the scheduler still
            // checks taints, resources and readiness.
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_fields: Some(vec![NodeSelectorRequirement {
                            key: "metadata.name".into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![Container {
            name: "adaptor".into(),
            image: Some(config.image_for(adaptor.short_name)),
            command: Some(vec![adaptor.command.to_string()]),
            env: Some(vec![
                EnvVar {
                    name: "NODE_NAME".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "RUST_LOG".into(),
                    value: Some(config.adaptor_log.clone()),
                    ..Default::default()
                },
            ]),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let hash = crate::fingerprint::of(&spec);
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(adaptor, node)),
            namespace: Some(config.adaptor_namespace.clone()),
            labels: Some(pod_labels(adaptor, node)),
            annotations: Some(BTreeMap::from([(SPEC_HASH.to_string(), hash)])),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether a pod is Ready, as its kubelet (or kwok) reports.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether an existing pod was made from the pod we want now.
pub fn is_current(existing: &Pod, desired: &Pod) -> bool {
    let get = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_HASH).cloned())
    };
    get(existing).is_some() && get(existing) == get(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn dummy() -> &'static AdaptorKind {
        devicelink_api::adaptor::find_short("dummy").unwrap()
    }

    #[test]
    fn pod_is_pinned_to_its_node_and_locked_down() {
        let config = Config::parse_from(["op"]);
        let pod = desired(&config, dummy(), "edge-1");
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some("devicelink-adaptor-dummy-edge-1")
        );
        let spec = pod.spec.unwrap();
        let terms = &spec
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(
            terms[0].match_fields.as_ref().unwrap()[0].values,
            Some(vec!["edge-1".to_string()])
        );
        let sc = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(spec.security_context.unwrap().run_as_non_root, Some(true));
    }

    #[test]
    fn spec_hash_tracks_settings() {
        let a = desired(&Config::parse_from(["op"]), dummy(), "n");
        let b = desired(
            &Config::parse_from(["op", "--adaptor-image", "other"]),
            dummy(),
            "n",
        );
        assert!(is_current(&a, &a.clone()));
        assert!(!is_current(&a, &b));
    }
}
