//! The objects a DeviceLink needs: the adaptor pod of its kind on its node
//! (with the pod's identity), and its device made from the template.

use devicelink_api::{DeviceLink, Outcome, adaptor::AdaptorKind};
use k8s_openapi::api::{
    core::v1::{Pod, ServiceAccount},
    rbac::v1::ClusterRoleBinding,
};
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    core::ApiResource,
    runtime::reflector::ObjectRef,
};
use tracing::{info, warn};

use super::{
    AppliedDevice, Context, MANAGER,
    deletion::release_device,
    writes::{apply_object, delete_ignoring_missing},
};
use crate::{adaptor_access, adaptor_pod, device, device_watch, error::Result, fingerprint};

/// AdaptorExisted: the adaptor pod for this kind runs on the node and is Ready.
pub(super) async fn ensure_adaptor_pod(
    adaptor: &AdaptorKind,
    node: &str,
    ctx: &Context,
) -> Result<Outcome> {
    let desired = adaptor_pod::desired(&ctx.config, adaptor, node);
    let name = desired.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.config.adaptor_namespace);
    let existing = ctx
        .pods
        .get(&ObjectRef::new(&name).within(&ctx.config.adaptor_namespace));
    let pod_ref = format!("{}/{name}", ctx.config.adaptor_namespace);
    match existing {
        Some(pod) if pod.metadata.deletion_timestamp.is_some() => Ok(Outcome::unknown(
            "Confirming",
            format!("adaptor pod {pod_ref} is terminating; a new one follows"),
        )),
        Some(pod) if !adaptor_pod::is_current(&pod, &desired) || is_finished(&pod) => {
            // Pod specs are immutable and a finished pod never runs again:
            // replace it. Its deletion wakes us to create the new one.
            info!(pod = %pod_ref, "replacing adaptor pod");
            delete_ignoring_missing(&api, &name).await?;
            Ok(Outcome::unknown(
                "Confirming",
                format!("replacing adaptor pod {pod_ref}"),
            ))
        }
        Some(pod) if adaptor_pod::is_ready(&pod) => Ok(Outcome::ok("Found")),
        Some(pod) => Ok(match adaptor_pod::not_ready_because(&pod) {
            Some(why) => Outcome::fail(
                "NotReady",
                format!("adaptor pod {pod_ref} is not ready: {why}"),
            ),
            None => Outcome::unknown(
                "Confirming",
                format!("waiting for adaptor pod {pod_ref} to become ready"),
            ),
        }),
        None => {
            info!(pod = %pod_ref, "creating adaptor pod");
            match create_adaptor_pod(adaptor, node, &desired, ctx).await {
                Ok(()) => Ok(Outcome::unknown(
                    "Confirming",
                    format!("created adaptor pod {pod_ref}; waiting for it to become ready"),
                )),
                Err(e) => match e.refusal() {
                    // Policy, admission or validation said no (say, a
                    // cluster that forbids the privileged pod serial
                    // devices need): the user must change something.
                    Some(why) => {
                        warn!(pod = %pod_ref, error = %why, "adaptor pod refused");
                        Ok(Outcome::fail(
                            "Refused",
                            format!("the API server refused adaptor pod {pod_ref}: {why}"),
                        ))
                    }
                    None => Err(e),
                },
            }
        }
    }
}

/// The adaptor pod with its identity: ServiceAccount, the binding to its
/// kind's ClusterRole, and the pod.
async fn create_adaptor_pod(
    adaptor: &AdaptorKind,
    node: &str,
    pod: &Pod,
    ctx: &Context,
) -> Result<()> {
    let namespace = &ctx.config.adaptor_namespace;
    let (account, binding) = adaptor_access::identity(&ctx.config, adaptor, node);
    apply_object(
        &Api::<ServiceAccount>::namespaced(ctx.client.clone(), namespace),
        &account,
    )
    .await?;
    apply_object(
        &Api::<ClusterRoleBinding>::all(ctx.client.clone()),
        &binding,
    )
    .await?;
    apply_object(&Api::<Pod>::namespaced(ctx.client.clone(), namespace), pod).await
}

pub(super) fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// DeviceCreated: the device object exists as the template describes it.
pub(super) async fn ensure_device(
    link: &DeviceLink,
    model: &ApiResource,
    adaptor: &AdaptorKind,
    ctx: &Context,
) -> Outcome {
    let desired = device::desired(link, model, adaptor.short_name);
    let fingerprint = fingerprint::of(&desired);
    let namespace = link.namespace().unwrap_or_default();
    let link_ref = ObjectRef::from_obj(link);
    if let Some(cached) = ctx.devices.get(model, &namespace, &link.name_any()) {
        if cached.metadata.deletion_timestamp.is_some() {
            if let Err(e) = release_device(link, model, &cached, ctx).await {
                warn!(error = %e, "could not release the device");
            }
            // Its deletion event brings us back to create it again.
            return Outcome::unknown(
                "Creating",
                format!(
                    "{} {namespace}/{} is being deleted; it is created again once gone",
                    model.kind,
                    link.name_any()
                ),
            );
        }
        let current = AppliedDevice {
            uid: cached.metadata.uid.clone(),
            generation: cached.metadata.generation,
            fingerprint: fingerprint.clone(),
        };
        // Labels do not change the generation: an edit of ours (which
        // would move the device to another node's adaptor) is seen here,
        // and the apply below puts them back.
        let ours = |labels: &Option<std::collections::BTreeMap<String, String>>| {
            labels
                .iter()
                .flatten()
                .filter(|(k, _)| device_watch::is_ours(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        if ctx.applied.lock().unwrap().get(&link_ref) == Some(&current)
            && ours(&cached.metadata.labels) == ours(&desired.metadata.labels)
        {
            return Outcome::ok("Success");
        }
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, model);
    match api
        .patch(
            &link.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(applied) => {
            ctx.applied.lock().unwrap().insert(
                link_ref,
                AppliedDevice {
                    uid: applied.metadata.uid,
                    generation: applied.metadata.generation,
                    fingerprint,
                },
            );
            Outcome::ok("Success")
        }
        // The API server validates the template against the model's schema;
        // its message names the offending field.
        Err(kube::Error::Api(e)) => Outcome::fail(
            "Fail",
            format!(
                "creating {} {namespace}/{} from spec.template: {}{}",
                model.kind,
                link.name_any(),
                e.message,
                yaml_1_1_hint(&e.message).unwrap_or_default()
            ),
        ),
        Err(e) => Outcome::fail(
            "Fail",
            format!("creating {} from spec.template: {e}", model.kind),
        ),
    }
}

/// What to say when the API server refused a boolean where a string is
/// wanted: most likely YAML 1.1 at work. kubectl reads YAML 1.1, where an
/// unquoted ON, OFF, YES, NO, Y or N is a boolean (Octopus samples have
/// `defaultValue: OFF`), so the string never reaches the API server.
fn yaml_1_1_hint(message: &str) -> Option<String> {
    // How the API server says it: validating an object, and (as the
    // operator applies server-side) building the typed patch.
    const REFUSED: &str = ": Invalid value: \"boolean\": ";
    const UNTYPED: &str = ": expected string, got &value.valueUnstructured{Value:";
    let field_before = |at: usize| {
        let field = message[..at].rsplit([' ', '\n']).next()?;
        // The device's fields are the template's.
        Some(format!("spec.template.{}", field.trim_start_matches('.')))
    };
    let validated = message.match_indices(REFUSED).filter(|(at, _)| {
        message[*at..]
            .lines()
            .next()
            .is_some_and(|l| l.contains("must be of type string"))
    });
    let typed = message.match_indices(UNTYPED).filter(|(at, _)| {
        let value = &message[at + UNTYPED.len()..];
        value.starts_with("true}") || value.starts_with("false}")
    });
    let fields: Vec<String> = validated
        .chain(typed)
        .filter_map(|(at, _)| field_before(at))
        .collect();
    if fields.is_empty() {
        return None;
    }
    Some(format!(
        "; {} came as true or false where text is wanted: YAML 1.1 (which kubectl reads) takes an unquoted ON, OFF, YES, NO, Y or N for a boolean, so quote it (defaultValue: \"OFF\")",
        fields.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::yaml_1_1_hint;

    #[test]
    fn a_boolean_refused_for_a_string_is_explained() {
        // As the API server (1.34) refuses a BluetoothDevice applied with
        // `defaultValue: OFF` unquoted.
        let refused = "BluetoothDevice.devices.edge.cattle.io \"lamp\" is invalid: \n* spec.properties[0].visitor.defaultValue: Invalid value: \"boolean\": spec.properties[0].visitor.defaultValue in body must be of type string: \"boolean\"\n* <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
        let hint = yaml_1_1_hint(refused).unwrap();
        assert!(
            hint.starts_with(
                "; spec.template.spec.properties[0].visitor.defaultValue came as true or false"
            ),
            "{hint}"
        );
        assert!(hint.contains("quote it"), "{hint}");
        // As it refuses the operator's server-side apply of such a device.
        let applied = "failed to create typed patch object (e2e-yaml-1-1/porch-fan; devices.edge.cattle.io/v1alpha1, Kind=DummySpecialDevice): .spec.protocol.location: expected string, got &value.valueUnstructured{Value:false}";
        assert!(
            yaml_1_1_hint(applied)
                .unwrap()
                .starts_with("; spec.template.spec.protocol.location came as true or false")
        );
        // Other refusals get no hint.
        assert_eq!(
            yaml_1_1_hint("spec.gear: Unsupported value: \"turbo\""),
            None
        );
        assert_eq!(
            yaml_1_1_hint(
                "spec.count: Invalid value: \"boolean\": spec.count in body must be of type integer: \"boolean\""
            ),
            None
        );
    }
}
