//! The adaptor pod: one per adaptor kind per node that has DeviceLinks for it.
//!
//! A bare pod with a name derived from (adaptor, node) rather than a
//! Deployment: the name makes it impossible for two adaptors of one kind to
//! run on one node at the same time (a serial port or a radio has one user),
//! and the operator itself recreates it when it goes away.

use std::collections::BTreeMap;

use devicelink_api::{adaptor::AdaptorKind, labels};
use k8s_openapi::{
    api::core::v1::{
        Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
        EnvVarSource, HTTPGetAction, HostPathVolumeSource, NodeAffinity, NodeSelector,
        NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
        PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe,
        ResourceFieldSelector, SeccompProfile, SecurityContext, Volume, VolumeMount,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};
use kube::api::ObjectMeta;

use crate::{adaptor_settings::PodSettings, config::Config};

/// Annotation carrying a digest of the pod spec we want, so that a pod in the
/// cache can be compared without a write.
pub const SPEC_HASH: &str = "edge.cattle.io/spec-hash";

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

/// The adaptor's data directory (the MQTT File store): an emptyDir, which
/// lives as long as the pod, so a crashed or OOM-killed adaptor finds its
/// stored messages again when the kubelet restarts it.
const DATA_DIR: &str = "/var/lib/devicelink";
/// The data directory's size limit unless the settings say another.
const DEFAULT_DATA_SIZE_LIMIT: &str = "1Gi";

/// Where the host's system D-Bus socket is, on the host and in the pod.
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// The group that owns serial devices on Debian-like hosts.
const DIALOUT_GID: i64 = 20;

/// The pod we want for an adaptor kind on a node.
pub fn desired(config: &Config, adaptor: &AdaptorKind, node: &str) -> Pod {
    let settings = config.adaptor_settings.for_kind(adaptor.short_name);
    let host = host_access(&settings, node);
    let mut env = vec![
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
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
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
        EnvVar {
            name: "DEVICELINK_DATA_DIR".into(),
            value: Some(DATA_DIR.into()),
            ..Default::default()
        },
        // The adaptor's MQTT buffers share half of it (a tenant's devices
        // cannot buffer the pod out of memory).
        EnvVar {
            name: "DEVICELINK_MEMORY_LIMIT".into(),
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some("adaptor".into()),
                    resource: "limits.memory".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if !config.managed_broker.is_empty() {
        // Its identity on the broker the operator manages (crate::broker).
        env.extend([
            EnvVar {
                name: "DEVICELINK_MANAGED_BROKER".into(),
                value: Some(config.managed_broker.join(",")),
                ..Default::default()
            },
            EnvVar {
                name: "DEVICELINK_BROKER_IDENTITY".into(),
                value: Some(format!(
                    "{}/{}",
                    config.adaptor_namespace,
                    crate::broker::Identity::Adaptor(pod_name(adaptor, node)).secret()
                )),
                ..Default::default()
            },
        ]);
    }
    env.extend(host.env);
    env.extend(settings.env.clone().unwrap_or_default());
    let spec = PodSpec {
        // Its own account: see adaptor_access for what it may read.
        service_account_name: Some(crate::adaptor_access::name(adaptor, node)),
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
        image_pull_secrets: settings.image_pull_secrets.clone(),
        tolerations: settings.tolerations.clone(),
        priority_class_name: settings.priority_class_name.clone(),
        volumes: Some(host.volumes),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            // A claimed data volume is made writable for the adaptor.
            fs_group: Some(65532),
            supplemental_groups: host.groups,
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
            env: Some(env),
            image_pull_policy: settings.image_pull_policy.clone(),
            resources: settings.resources.clone(),
            volume_mounts: Some(host.mounts),
            ports: Some(vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                ..Default::default()
            }]),
            // Ready once the adaptor has listed its devices and started
            // them (AdaptorExisted follows it); alive while its device loop
            // turns (see the runtime's health module).
            readiness_probe: Some(probe("/readyz", 5)),
            liveness_probe: Some(probe("/healthz", 10)),
            security_context: Some(SecurityContext {
                // A privileged container may not forbid escalation (the API
                // refuses both); as a non-root user it gains no capability.
                allow_privilege_escalation: (!host.privileged).then_some(false),
                privileged: host.privileged.then_some(true),
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
    let hash = crate::fingerprint::of(&(&spec, &settings.pod_annotations));
    let mut annotations = settings.pod_annotations.clone().unwrap_or_default();
    annotations.insert(SPEC_HASH.to_string(), hash);
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(adaptor, node)),
            namespace: Some(config.adaptor_namespace.clone()),
            labels: Some(pod_labels(adaptor, node)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Where the adaptor serves /metrics, /readyz and /healthz.
const METRICS_PORT: i32 = 9102;

fn probe(path: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The pod's data volume and the host access a protocol needs, declared in
/// the adaptor settings: the only exceptions to a pod that sees nothing of
/// its host.
#[derive(Default)]
struct HostAccess {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    env: Vec<EnvVar>,
    groups: Option<Vec<i64>>,
    /// A serial device can be opened only if the device cgroup allows it,
    /// and a pod gets such a rule only by being privileged (or through a
    /// device plugin, which needs no hostPath at all). Measured on a real
    /// node: an unprivileged container opens a pty but is refused
    /// (EPERM) on any other character device, a mounted one included.
    privileged: bool,
}

fn host_access(settings: &PodSettings, node: &str) -> HostAccess {
    let mut access = HostAccess::default();
    access.volumes.push(match &settings.data_claim {
        // Outlives the pod: messages stored in an outage survive its
        // deletion, a node drain, an upgrade of the adaptor.
        Some(claim) => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.replace("{node}", node),
                read_only: None,
            }),
            ..Default::default()
        },
        // Bounded: one tenant's stores during a long broker outage must not
        // fill the node's disk (the kubelet evicts the pod instead).
        None => Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(
                    settings
                        .data_size_limit
                        .clone()
                        .unwrap_or_else(|| Quantity(DEFAULT_DATA_SIZE_LIMIT.into())),
                ),
                ..Default::default()
            }),
            ..Default::default()
        },
    });
    access.mounts.push(VolumeMount {
        name: "data".into(),
        mount_path: DATA_DIR.into(),
        ..Default::default()
    });
    let mut mount = |name: String, path: &str, kind: &str| {
        access.volumes.push(Volume {
            name: name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: path.to_string(),
                type_: Some(kind.to_string()),
            }),
            ..Default::default()
        });
        access.mounts.push(VolumeMount {
            name,
            mount_path: path.to_string(),
            ..Default::default()
        });
    };
    let serial = settings.serial_devices.clone().unwrap_or_default();
    for (i, device) in serial.iter().enumerate() {
        mount(format!("serial-{i}"), device, "CharDevice");
    }
    if settings.host_d_bus == Some(true) {
        mount("system-dbus".into(), SYSTEM_BUS_SOCKET, "Socket");
        access.env.push(EnvVar {
            name: "DBUS_SYSTEM_BUS_ADDRESS".into(),
            value: Some(format!("unix:path={SYSTEM_BUS_SOCKET}")),
            ..Default::default()
        });
    }
    if !serial.is_empty() {
        access.groups = Some(vec![DIALOUT_GID]);
        access.privileged = true;
    }
    access
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

/// Why a pod that is not Ready is failing, as its kubelet reports it; None
/// while it is only on its way (being scheduled, pulled or started).
pub fn not_ready_because(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.as_ref()?.first()?;
    let state = container.state.as_ref()?;
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or("Waiting");
        if matches!(reason, "ContainerCreating" | "PodInitializing") {
            return None;
        }
        return Some(match waiting.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_string(),
        });
    }
    if let Some(terminated) = &state.terminated {
        return Some(format!(
            "the adaptor exited ({}, code {})",
            terminated.reason.as_deref().unwrap_or("Terminated"),
            terminated.exit_code
        ));
    }
    // Running: its readiness check (GET /readyz) does not pass yet.
    let started = state.running.as_ref()?.started_at.as_ref()?;
    let running_for = k8s_openapi::jiff::Timestamp::now().duration_since(started.0);
    (running_for.as_secs() >= NOT_READY_AFTER_SECONDS).then(|| {
        format!(
            "its readiness check (GET /readyz) has not passed in the {}s it has run; `kubectl describe pod` shows the check's answer",
            running_for.as_secs()
        )
    })
}

/// How long a running adaptor may take to list its devices before
/// AdaptorExisted says it is not ready rather than on its way.
const NOT_READY_AFTER_SECONDS: i64 = 30;

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
    fn settings_reach_the_pod_and_host_access_is_only_what_is_declared() {
        let mut config = Config::parse_from(["op"]);
        let plain = desired(&config, dummy(), "n").spec.unwrap();
        let volumes = plain.volumes.unwrap();
        assert_eq!(
            volumes.len(),
            1,
            "no host access by default, only the data emptyDir"
        );
        let data = volumes[0].empty_dir.as_ref().expect("the data directory");
        assert_eq!(data.size_limit, Some(Quantity("1Gi".into())));

        // A claim per node keeps stored messages beyond the pod.
        config.adaptor_settings = crate::adaptor_settings::AdaptorSettings::parse(
            "adaptors:\n  modbus:\n    dataClaim: 'modbus-data-{node}'\n",
        )
        .unwrap();
        let modbus = devicelink_api::adaptor::find_short("modbus").unwrap();
        let claimed = desired(&config, modbus, "edge-7").spec.unwrap();
        let data = &claimed.volumes.as_ref().unwrap()[0];
        assert_eq!(
            data.persistent_volume_claim.as_ref().unwrap().claim_name,
            "modbus-data-edge-7"
        );
        assert!(data.empty_dir.is_none());
        assert_eq!(claimed.security_context.unwrap().fs_group, Some(65532));
        let other = desired(&config, dummy(), "edge-7").spec.unwrap();
        assert!(other.volumes.unwrap()[0].empty_dir.is_some(), "per kind");

        config.adaptor_settings = crate::adaptor_settings::AdaptorSettings::parse(
            "defaults:\n  imagePullSecrets: [{name: registry}]\n  tolerations: [{key: edge, operator: Exists, effect: NoSchedule}]\nadaptors:\n  dummy:\n    image: example.com/fan:{adaptor}\n    resources: {limits: {memory: 48Mi}}\n    env: [{name: EXTRA, value: '1'}]\n    serialDevices: [/dev/ttyUSB0]\n    hostDBus: true\n",
        )
        .unwrap();
        let pod = desired(&config, dummy(), "n").spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("example.com/fan:dummy"));
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("edge"));
        assert!(
            c.resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()
                .contains_key("memory")
        );
        let env: Vec<&str> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(
            env.contains(&"EXTRA") && env.contains(&"DBUS_SYSTEM_BUS_ADDRESS"),
            "{env:?}"
        );
        let paths: Vec<&str> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(paths, [DATA_DIR, "/dev/ttyUSB0", SYSTEM_BUS_SOCKET]);
        assert_eq!(
            pod.security_context.clone().unwrap().supplemental_groups,
            Some(vec![DIALOUT_GID])
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.privileged, sc.allow_privilege_escalation),
            (Some(true), None),
            "serial devices need the device cgroup opened"
        );
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(65532));

        // D-Bus alone is a socket: no privilege.
        config.adaptor_settings = crate::adaptor_settings::AdaptorSettings::parse(
            "adaptors:\n  dummy:\n    hostDBus: true\n",
        )
        .unwrap();
        let pod = desired(&config, dummy(), "n").spec.unwrap();
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(
            (sc.privileged, sc.allow_privilege_escalation),
            (None, Some(false))
        );
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
