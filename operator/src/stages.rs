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

/// ModelExisted: a CRD serves `spec.model`. Returns how to reach its objects.
pub fn model<'a>(
    link: &DeviceLink,
    crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
    status: &mut DeviceLinkStatus,
) -> (Outcome, Option<ApiResource>) {
    let DeviceModel { api_version, kind } = &link.spec.model;
    status.model = None;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let found = crds.into_iter().find(|crd| {
        crd.spec.group == group
            && crd.spec.names.kind == *kind
            && crd
                .spec
                .versions
                .iter()
                .any(|v| v.name == version && v.served)
    });
    match found {
        Some(crd) => {
            status.model = Some(link.spec.model.clone());
            let resource = ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                plural: crd.spec.names.plural.clone(),
            };
            (Outcome::ok("Found"), Some(resource))
        }
        None => (
            Outcome::fail(
                "NotFound",
                format!(
                    "no CRD serves {kind} in {api_version} (spec.model); install the model's CRD and the DeviceLink proceeds"
                ),
            ),
            None,
        ),
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
