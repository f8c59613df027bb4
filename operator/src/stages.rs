//! Evaluating the operator's four stages of the condition pipeline. Each
//! function decides one stage from what the caches hold (and, for the
//! writes, what the API server answers) and fills the matching status fields.

use devicelink_api::{
    DeviceLink, DeviceLinkStatus, Outcome,
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
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
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

/// NodeExisted: the node named in `spec.adaptor.node` exists.
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
    Outcome::ok("Found")
}

/// The resource of the model a DeviceLink names, if a CRD serves it.
pub fn find_model<'a>(
    link: &DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
) -> Option<ApiResource> {
    let DeviceModel { api_version, kind } = &link.spec.model;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let crd = crds.into_iter().find(|crd| {
        crd.spec.group == group
            && crd.spec.names.kind == *kind
            && crd
                .spec
                .versions
                .iter()
                .any(|v| v.name == version && v.served)
    })?;
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.clone(),
        kind: kind.clone(),
        plural: crd.spec.names.plural.clone(),
    })
}

/// ModelExisted: a CRD serves `spec.model`. Returns how to reach its objects.
pub fn model<'a>(
    link: &DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
    status: &mut DeviceLinkStatus,
) -> (Outcome, Option<ApiResource>) {
    let resource = find_model(link, crds);
    status.model = resource.as_ref().map(|_| link.spec.model.clone());
    match resource {
        Some(resource) => (Outcome::ok("Found"), Some(resource)),
        None => {
            let DeviceModel { api_version, kind } = &link.spec.model;
            (
                Outcome::fail(
                    "NotFound",
                    format!(
                        "no CRD serves {kind} in {api_version} (spec.model); install the model's CRD and the DeviceLink proceeds"
                    ),
                ),
                None,
            )
        }
    }
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
    use devicelink_api::ConditionStatus;
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
        serde_json::from_value(json!({
            "metadata": {"name": "edge-1"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "edge-1"},
                {"type": "InternalIP", "address": "10.0.0.7"},
                {"type": "InternalIP", "address": "10.0.0.8"},
                {"type": "ExternalDNS", "address": "edge-1.plant.example"},
            ]},
        }))
        .unwrap()
    }

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
        }))
        .unwrap()
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
        let nodes = [("present", Some(edge_node())), ("absent", None)];
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
                    let expected: Vec<(ConditionStatus, &str)> =
                        match (*node_case, *crd_case, adaptor_case) {
                            ("absent", _, _) => vec![(False, "NotFound")],
                            (_, "served", "modbus") => vec![(True, "Found"), (True, "Found")],
                            (_, "served", _) => {
                                vec![(True, "Found"), (True, "Found"), (False, "NotFound")]
                            }
                            _ => vec![(True, "Found"), (False, "NotFound")],
                        };
                    assert_eq!(reasons, expected, "{what}");
                    assert_eq!(
                        declared.is_some(),
                        *node_case == "present"
                            && *crd_case == "served"
                            && adaptor_case == "modbus",
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
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 24);
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
