//! Evaluating the operator's four stages of the condition pipeline. Each
//! function decides one stage from what the caches hold (and, for the
//! writes, what the API server answers) and fills the matching status fields.

use devicelink_api::{
    ConditionStatus, DeviceLink, DeviceLinkStatus, Outcome,
    adaptor::{self, AdaptorKind},
    devicelink::DeviceModel,
};
use k8s_openapi::{
    api::core::v1::Node,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::core::ApiResource;

/// The outcomes of the stages decided so far, in pipeline order; the
/// pipeline stops at the first that is not True.
#[derive(Debug, Default)]
pub struct Pipeline {
    outcomes: Vec<Outcome>,
}

impl Pipeline {
    /// Records the next stage's outcome; whether the pipeline goes on.
    pub fn passed(&mut self, outcome: Outcome) -> bool {
        let passed = outcome.is_true();
        self.outcomes.push(outcome);
        passed
    }

    pub fn into_outcomes(self) -> Vec<Outcome> {
        self.outcomes
    }
}

/// The stages decided from what the DeviceLink declares and the caches
/// hold, without a request: NodeExisted, ModelExisted, and the first half
/// of AdaptorExisted (an adaptor devicelink ships, for this model). With
/// the model's resource and the adaptor kind when all passed.
pub fn declared<'a>(
    link: &DeviceLink,
    node_found: Option<&Node>,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition> + Clone,
    status: &mut DeviceLinkStatus,
) -> (Pipeline, Option<(ApiResource, &'static AdaptorKind)>) {
    let mut pipeline = Pipeline::default();
    if !pipeline.passed(node(link, node_found, status)) {
        return (pipeline, None);
    }
    let (found, resource) = model(link, crds, status);
    if !pipeline.passed(found) {
        return (pipeline, None);
    }
    match adaptor_kind(link) {
        Ok(kind) => (pipeline, resource.map(|r| (r, kind))),
        Err(outcome) => {
            status.adaptor_name.clear();
            pipeline.passed(outcome);
            (pipeline, None)
        }
    }
}

/// NodeExisted: the node named in `spec.adaptor.node` exists. As in
/// Octopus it is True once the node exists; a node that is not Ready says
/// so in the reason (its adaptor cannot run until it is), and the pipeline
/// goes on, so everything is in place when the node comes back.
pub fn node(link: &DeviceLink, node: Option<&Node>, status: &mut DeviceLinkStatus) -> Outcome {
    let name = &link.spec.adaptor.node;
    status.node_name.clear();
    status.node_host_name.clear();
    status.node_internal_ip.clear();
    status.node_internal_dns.clear();
    status.node_external_ip.clear();
    status.node_external_dns.clear();
    let Some(node) = node else {
        return Outcome::fail(
            "NotFound",
            format!(
                "node {name:?} (spec.adaptor.node) does not exist; the DeviceLink proceeds as soon as it does"
            ),
        );
    };
    status.node_name = name.clone();
    for address in node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        let field = match address.type_.as_str() {
            "Hostname" => &mut status.node_host_name,
            "InternalIP" => &mut status.node_internal_ip,
            "InternalDNS" => &mut status.node_internal_dns,
            "ExternalIP" => &mut status.node_external_ip,
            "ExternalDNS" => &mut status.node_external_dns,
            _ => continue,
        };
        if field.is_empty() {
            *field = address.address.clone();
        }
    }
    match not_ready_because(node) {
        None => Outcome::ok("Found"),
        Some(why) => Outcome::new(
            ConditionStatus::True,
            "NotReady",
            format!(
                "node {name:?} exists but is not Ready ({why}); its adaptor runs there once it is"
            ),
        ),
    }
}

/// Why a node is not Ready, from its Ready condition; None when it is.
fn not_ready_because(node: &Node) -> Option<String> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    let Some(ready) = ready else {
        return Some("it has not reported whether it is".to_string());
    };
    if ready.status == "True" {
        return None;
    }
    let because: Vec<&str> = [ready.reason.as_deref(), ready.message.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    Some(match because.as_slice() {
        [] => format!("Ready is {}", ready.status),
        _ => format!("Ready is {}: {}", ready.status, because.join(": ")),
    })
}

/// The CRDs that serve the model a DeviceLink names (established or not),
/// with the model's group and version.
fn serving_crds<'a, 'l>(
    link: &'l DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
) -> impl Iterator<Item = &'a CustomResourceDefinition> {
    let DeviceModel { api_version, kind } = &link.spec.model;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    crds.into_iter().filter(move |crd| {
        crd.spec.group == group
            && crd.spec.names.kind == *kind
            && crd
                .spec
                .versions
                .iter()
                .any(|v| v.name == version && v.served)
    })
}

/// The resource of the model a DeviceLink names, if an established CRD
/// serves it (until then the API server answers its objects with 404).
pub fn find_model<'a>(
    link: &DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
) -> Option<ApiResource> {
    let crd = serving_crds(link, crds).find(|crd| not_established_because(crd).is_none())?;
    let api_version = &link.spec.model.api_version;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.clone(),
        kind: link.spec.model.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    })
}

/// Why the API server does not serve a CRD's objects yet; None once its
/// Established condition is True. Names that clash with another CRD's are
/// the usual reason, and NamesAccepted says which.
pub fn not_established_because(crd: &CustomResourceDefinition) -> Option<String> {
    let condition = |type_: &str| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_)
    };
    if condition("Established").is_some_and(|c| c.status == "True") {
        return None;
    }
    let why = [condition("NamesAccepted"), condition("Established")]
        .into_iter()
        .flatten()
        .find(|c| c.status != "True" && c.message.as_deref().is_some_and(|m| !m.is_empty()))
        .and_then(|c| c.message.clone());
    Some(why.unwrap_or_else(|| "the API server has not established it yet".to_string()))
}

/// ModelExisted: an established CRD serves `spec.model`. Returns how to
/// reach its objects.
pub fn model<'a>(
    link: &DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition> + Clone,
    status: &mut DeviceLinkStatus,
) -> (Outcome, Option<ApiResource>) {
    let resource = find_model(link, crds.clone());
    status.model = resource.as_ref().map(|_| link.spec.model.clone());
    if let Some(resource) = resource {
        return (Outcome::ok("Found"), Some(resource));
    }
    let DeviceModel { api_version, kind } = &link.spec.model;
    let outcome = match serving_crds(link, crds).next() {
        Some(crd) => Outcome::fail(
            "NotEstablished",
            format!(
                "CRD {} serves {kind} in {api_version} (spec.model) but is not established: {}; the DeviceLink proceeds once it is",
                crd.metadata.name.as_deref().unwrap_or_default(),
                not_established_because(crd).unwrap_or_default(),
            ),
        ),
        None => Outcome::fail(
            "NotFound",
            format!(
                "no CRD serves {kind} in {api_version} (spec.model); install the model's CRD and the DeviceLink proceeds"
            ),
        ),
    };
    (outcome, None)
}

/// The first half of AdaptorExisted: the adaptor named in `spec.adaptor.name`
/// is one devicelink ships and it handles the model.
pub fn adaptor_kind(link: &DeviceLink) -> Result<&'static AdaptorKind, Outcome> {
    let name = &link.spec.adaptor.name;
    let Some(kind) = adaptor::find(name) else {
        return Err(Outcome::fail(
            "NotFound",
            format!(
                "unknown adaptor {name:?} (spec.adaptor.name); known adaptors: {}",
                adaptor::names().join(", ")
            ),
        ));
    };
    let DeviceModel {
        api_version,
        kind: model,
    } = &link.spec.model;
    if !kind.handles(api_version, model) {
        return Err(Outcome::fail(
            "NotFound",
            format!(
                "adaptor {name} does not handle {model} in {api_version} (spec.model); it handles: {}",
                kind.models.join(", ")
            ),
        ));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link_to(adaptor: &str, api_version: &str, kind: &str) -> DeviceLink {
        serde_json::from_value(json!({
            "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
            "metadata": {"name": "meter", "namespace": "plant"},
            "spec": {
                "adaptor": {"node": "edge-1", "name": adaptor},
                "model": {"apiVersion": api_version, "kind": kind},
                "template": {"spec": {}},
            },
        }))
        .unwrap()
    }

    fn edge_node() -> Node {
        node_with_ready(json!({"type": "Ready", "status": "True", "reason": "KubeletReady"}))
    }

    /// The node edge-1 with its addresses and the given Ready condition.
    fn node_with_ready(ready: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "edge-1"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "edge-1"},
                    {"type": "InternalIP", "address": "10.0.0.7"},
                    {"type": "InternalIP", "address": "10.0.0.8"},
                    {"type": "ExternalDNS", "address": "edge-1.plant.example"},
                ],
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    ready,
                ],
            },
        }))
        .unwrap()
    }

    /// A node whose kubelet stopped posting its status.
    fn unreachable_node() -> Node {
        node_with_ready(json!({"type": "Ready", "status": "Unknown",
            "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}))
    }

    /// An established CRD.
    fn crd(
        group: &str,
        kind: &str,
        plural: &str,
        versions: &[(&str, bool)],
    ) -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group, "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural},
                "versions": versions.iter().map(|(name, served)| json!({
                    "name": name, "served": served, "storage": true,
                })).collect::<Vec<_>>(),
            },
            "status": {
                "acceptedNames": {"kind": kind, "plural": plural},
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
                ],
            },
        }))
        .unwrap()
    }

    /// The Modbus CRD whose plural another CRD of its group already has.
    fn clashing_modbus_crd() -> CustomResourceDefinition {
        let mut crd = modbus_crd();
        let message = "\"modbusdevices\" is already in use";
        crd.status = Some(
            serde_json::from_value(json!({
                "acceptedNames": {"kind": "", "plural": ""},
                "conditions": [
                    {"type": "NamesAccepted", "status": "False", "reason": "PluralConflict",
                     "message": message},
                    {"type": "Established", "status": "False", "reason": "NotAccepted",
                     "message": "not all names are accepted"},
                ],
            }))
            .unwrap(),
        );
        crd
    }

    fn modbus_crd() -> CustomResourceDefinition {
        crd(
            "devices.edge.cattle.io",
            "ModbusDevice",
            "modbusdevices",
            &[("v1alpha1", true)],
        )
    }

    /// (status, reason, message fragment) of each outcome.
    fn shown(pipeline: Pipeline) -> Vec<(ConditionStatus, String, String)> {
        pipeline
            .into_outcomes()
            .into_iter()
            .map(|o| (o.status, o.reason, o.message))
            .collect()
    }

    const MODBUS: &str = "adaptors.edge.cattle.io/modbus";
    const V1: &str = "devices.edge.cattle.io/v1alpha1";

    #[test]
    fn every_combination_of_node_model_and_adaptor_gives_its_stages() {
        use ConditionStatus::{False, True};
        let nodes = [
            ("present", Some(edge_node())),
            ("not ready", Some(unreachable_node())),
            ("absent", None),
        ];
        let crd_sets = [
            ("served", vec![modbus_crd()]),
            ("absent", vec![]),
            (
                "not served",
                vec![crd(
                    "devices.edge.cattle.io",
                    "ModbusDevice",
                    "modbusdevices",
                    &[("v1alpha1", false), ("v1beta1", true)],
                )],
            ),
            (
                "another group",
                vec![crd(
                    "devices.example.com",
                    "ModbusDevice",
                    "modbusdevices",
                    &[("v1alpha1", true)],
                )],
            ),
            ("not established", vec![clashing_modbus_crd()]),
        ];
        let adaptors = [
            ("modbus", MODBUS),
            ("unknown", "adaptors.edge.cattle.io/canbus"),
            ("other model", "adaptors.edge.cattle.io/opcua"),
        ];
        let mut checked = 0;
        for (node_case, found) in &nodes {
            for (crd_case, crds) in &crd_sets {
                for (adaptor_case, adaptor) in adaptors {
                    let what = format!("node {node_case}, CRD {crd_case}, adaptor {adaptor_case}");
                    let link = link_to(adaptor, V1, "ModbusDevice");
                    let mut status = DeviceLinkStatus::default();
                    let (pipeline, declared) = declared(&link, found.as_ref(), crds, &mut status);
                    let stages = shown(pipeline);
                    let reasons: Vec<(ConditionStatus, &str)> =
                        stages.iter().map(|(s, r, _)| (*s, r.as_str())).collect();
                    let node_stage = match *node_case {
                        "absent" => (False, "NotFound"),
                        "not ready" => (True, "NotReady"),
                        _ => (True, "Found"),
                    };
                    let expected: Vec<(ConditionStatus, &str)> =
                        match (*node_case, *crd_case, adaptor_case) {
                            ("absent", _, _) => vec![node_stage],
                            (_, "served", "modbus") => vec![node_stage, (True, "Found")],
                            (_, "served", _) => {
                                vec![node_stage, (True, "Found"), (False, "NotFound")]
                            }
                            (_, "not established", _) => {
                                vec![node_stage, (False, "NotEstablished")]
                            }
                            _ => vec![node_stage, (False, "NotFound")],
                        };
                    assert_eq!(reasons, expected, "{what}");
                    assert_eq!(
                        declared.is_some(),
                        *node_case != "absent" && *crd_case == "served" && adaptor_case == "modbus",
                        "{what}"
                    );
                    // What failed says which field and what to do.
                    if let Some((False, _, message)) = stages.last() {
                        let field = match stages.len() {
                            1 => "(spec.adaptor.node)",
                            2 => "(spec.model)",
                            _ => "spec.adaptor.name",
                        };
                        assert!(
                            message.contains(field)
                                || (stages.len() == 3 && message.contains("(spec.model)")),
                            "{what}: {message}"
                        );
                    }
                    // The status names the node and model only when found.
                    assert_eq!(
                        status.node_name.is_empty(),
                        *node_case == "absent",
                        "{what}"
                    );
                    assert_eq!(
                        status.model.is_some(),
                        *node_case != "absent" && *crd_case == "served",
                        "{what}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 45);
    }

    #[test]
    fn a_node_that_is_not_ready_says_why() {
        let link = link_to(MODBUS, V1, "ModbusDevice");
        let mut status = DeviceLinkStatus::default();
        let unreachable = node(&link, Some(&unreachable_node()), &mut status);
        assert_eq!(
            unreachable.message,
            "node \"edge-1\" exists but is not Ready (Ready is Unknown: NodeStatusUnknown: Kubelet stopped posting node status.); its adaptor runs there once it is"
        );
        assert_eq!(
            status.node_internal_ip, "10.0.0.7",
            "still shows where it is"
        );
        let bare = node_with_ready(json!({"type": "Ready", "status": "False"}));
        assert_eq!(
            node(&link, Some(&bare), &mut status).message,
            "node \"edge-1\" exists but is not Ready (Ready is False); its adaptor runs there once it is"
        );
        let unreported: Node =
            serde_json::from_value(json!({"metadata": {"name": "edge-1"}})).unwrap();
        let outcome = node(&link, Some(&unreported), &mut status);
        assert_eq!(outcome.reason, "NotReady");
        assert!(
            outcome
                .message
                .contains("it has not reported whether it is"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn a_crd_that_is_not_established_says_why() {
        let link = link_to(MODBUS, V1, "ModbusDevice");
        let mut status = DeviceLinkStatus::default();
        let (outcome, resource) = model(&link, &[clashing_modbus_crd()], &mut status);
        assert!(resource.is_none());
        assert_eq!(
            outcome.message,
            "CRD modbusdevices.devices.edge.cattle.io serves ModbusDevice in devices.edge.cattle.io/v1alpha1 (spec.model) but is not established: \"modbusdevices\" is already in use; the DeviceLink proceeds once it is"
        );
        // Just created: no conditions yet.
        let mut fresh = modbus_crd();
        fresh.status = None;
        assert_eq!(
            not_established_because(&fresh).as_deref(),
            Some("the API server has not established it yet")
        );
        assert_eq!(not_established_because(&modbus_crd()), None);
        assert!(
            find_model(&link, &[fresh]).is_none(),
            "its objects cannot be reached yet"
        );
        // Of two CRDs for the kind, the established one counts.
        let (outcome, _) = model(&link, &[clashing_modbus_crd(), modbus_crd()], &mut status);
        assert_eq!(outcome.reason, "Found");
    }

    #[test]
    fn a_found_node_fills_its_addresses_and_a_lost_one_clears_them() {
        let link = link_to(MODBUS, V1, "ModbusDevice");
        let mut status = DeviceLinkStatus::default();
        assert!(node(&link, Some(&edge_node()), &mut status).is_true());
        assert_eq!(
            (
                status.node_name.as_str(),
                status.node_host_name.as_str(),
                status.node_internal_ip.as_str(),
                status.node_external_dns.as_str(),
                status.node_external_ip.as_str(),
            ),
            ("edge-1", "edge-1", "10.0.0.7", "edge-1.plant.example", ""),
            "the first address of each type"
        );
        let gone = node(&link, None, &mut status);
        assert_eq!(
            gone.message,
            "node \"edge-1\" (spec.adaptor.node) does not exist; the DeviceLink proceeds as soon as it does"
        );
        assert_eq!(status.node_name, "");
        assert_eq!(status.node_internal_ip, "");
    }

    #[test]
    fn a_served_model_gives_its_resource_and_the_status_names_it() {
        let link = link_to(MODBUS, V1, "ModbusDevice");
        let mut status = DeviceLinkStatus::default();
        let (outcome, resource) = model(&link, &[modbus_crd()], &mut status);
        assert!(outcome.is_true());
        let resource = resource.unwrap();
        assert_eq!(
            (
                resource.group.as_str(),
                resource.version.as_str(),
                resource.plural.as_str()
            ),
            ("devices.edge.cattle.io", "v1alpha1", "modbusdevices")
        );
        assert_eq!(status.model, Some(link.spec.model.clone()));
        // A kind in no CRD: the status forgets the model it had.
        let other = link_to(MODBUS, V1, "CanbusDevice");
        let (outcome, resource) = model(&other, &[modbus_crd()], &mut status);
        assert!(resource.is_none());
        assert_eq!(status.model, None);
        assert_eq!(
            outcome.message,
            "no CRD serves CanbusDevice in devices.edge.cattle.io/v1alpha1 (spec.model); install the model's CRD and the DeviceLink proceeds"
        );
    }

    #[test]
    fn an_adaptor_is_named_with_what_there_is_instead() {
        let unknown = adaptor_kind(&link_to(
            "adaptors.edge.cattle.io/canbus",
            V1,
            "ModbusDevice",
        ))
        .unwrap_err();
        assert!(
            unknown.message.starts_with(
                "unknown adaptor \"adaptors.edge.cattle.io/canbus\" (spec.adaptor.name); known adaptors: "
            ),
            "{}",
            unknown.message
        );
        assert!(unknown.message.contains(MODBUS));
        let wrong = adaptor_kind(&link_to(
            "adaptors.edge.cattle.io/opcua",
            V1,
            "ModbusDevice",
        ))
        .unwrap_err();
        assert_eq!(
            wrong.message,
            "adaptor adaptors.edge.cattle.io/opcua does not handle ModbusDevice in devices.edge.cattle.io/v1alpha1 (spec.model); it handles: OPCUADevice"
        );
        assert_eq!(
            adaptor_kind(&link_to(MODBUS, V1, "ModbusDevice"))
                .unwrap()
                .short_name,
            "modbus"
        );
    }

    #[test]
    fn the_pipeline_stops_at_the_first_stage_not_true() {
        let mut pipeline = Pipeline::default();
        assert!(pipeline.passed(Outcome::ok("Found")));
        assert!(!pipeline.passed(Outcome::fail("NotReady", "the pod is not ready")));
        assert_eq!(pipeline.into_outcomes().len(), 2);
    }
}
