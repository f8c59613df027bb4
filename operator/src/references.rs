//! `spec.references`: Secret and ConfigMap keys and DeviceLink fields that
//! the device's settings use by name (the `*Ref` fields of the template).
//!
//! The operator checks that every referenced object and key exists before it
//! creates the device, so that a missing one is a condition and an Event
//! naming it rather than an adaptor failing later. It never copies values:
//! the adaptor reads them itself, with access to exactly these objects.

use std::collections::BTreeSet;

use devicelink_api::{
    DeviceLink, Outcome,
    devicelink::{DeviceLinkReference, REFERENCE_PATHS},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

use crate::error::Result;

/// The reason of DeviceCreated while a reference does not resolve.
const NOT_FOUND: &str = "ReferenceNotFound";

/// The Secrets and ConfigMaps a DeviceLink references, by name.
pub fn referenced_objects(link: &DeviceLink) -> (BTreeSet<String>, BTreeSet<String>) {
    objects_in(&link.spec.references)
}

/// The Secrets and ConfigMaps, by name, that a list of references names
/// (a KafkaBridge's).
pub fn objects_of(references: &[DeviceLinkReference]) -> (BTreeSet<String>, BTreeSet<String>) {
    objects_in(references)
}

/// The Secrets and ConfigMaps, by name, that the scans of a
/// DeviceDiscovery sign in with.
pub fn objects_scanned_with(
    discovery: &devicelink_api::discovery::DeviceDiscovery,
) -> (BTreeSet<String>, BTreeSet<String>) {
    objects_in(discovery.spec.scan_references())
}

/// The Secrets and ConfigMaps, by name, of the references that the
/// DeviceLink's template uses at `*Ref` fields under `prefix`.
pub fn objects_used_under(link: &DeviceLink, prefix: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    objects_in(link.spec.references_used_under(prefix))
}

fn objects_in<'a>(
    references: impl IntoIterator<Item = &'a DeviceLinkReference>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut secrets = BTreeSet::new();
    let mut config_maps = BTreeSet::new();
    for r in references {
        if let Some(s) = &r.secret {
            secrets.insert(s.name.clone());
        }
        if let Some(c) = &r.config_map {
            config_maps.insert(c.name.clone());
        }
    }
    (secrets, config_maps)
}

/// Checks every reference and every `*Ref` use; `None` when all resolve.
pub async fn check(client: &Client, link: &DeviceLink) -> Result<Option<Outcome>> {
    let namespace = link.namespace().unwrap_or_default();
    let mut available: Vec<(String, BTreeSet<String>, String)> = Vec::new();
    for (i, reference) in link.spec.references.iter().enumerate() {
        match keys_of(client, &namespace, i, reference).await? {
            Ok((keys, what)) => available.push((reference.name.clone(), keys, what)),
            Err(message) => return Ok(Some(Outcome::fail(NOT_FOUND, message))),
        }
    }
    let template = link.spec.template.spec.clone().unwrap_or_default();
    for path in REFERENCE_PATHS {
        let pointer = format!("/{}", path.replace('.', "/"));
        let Some(used) = template.pointer(&pointer) else {
            continue;
        };
        let name = used["name"].as_str().unwrap_or_default();
        let item = used["item"].as_str().unwrap_or_default();
        // The API server already refused names that are not entries.
        let Some((_, keys, what)) = available.iter().find(|(n, _, _)| n == name) else {
            continue;
        };
        if !keys.contains(item) {
            return Ok(Some(Outcome::fail(
                NOT_FOUND,
                format!(
                    "spec.template.spec.{path} uses item {item:?} of reference {name:?}, but {what} has no such item; it has: {}",
                    keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )));
        }
    }
    Ok(None)
}

/// The item names one reference offers, and how to name it in messages; or
/// a message saying what is missing.
async fn keys_of(
    client: &Client,
    namespace: &str,
    index: usize,
    reference: &DeviceLinkReference,
) -> Result<Result<(BTreeSet<String>, String), String>> {
    // A GET never returns a Secret's stringData: data holds every key.
    let found = if let Some(source) = &reference.secret {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let keys = api.get_opt(&source.name).await?.map(|s| {
            s.data
                .unwrap_or_default()
                .into_keys()
                .collect::<BTreeSet<_>>()
        });
        Some((source, "secret", keys))
    } else if let Some(source) = &reference.config_map {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let keys = api.get_opt(&source.name).await?.map(|c| {
            let data = c.data.unwrap_or_default().into_keys();
            data.chain(c.binary_data.unwrap_or_default().into_keys())
                .collect()
        });
        Some((source, "configMap", keys))
    } else {
        None
    };
    if let Some((source, kind, keys)) = found {
        let what = format!("{kind} {:?}", source.name);
        let field = format!("spec.references[{index}].{kind}");
        return Ok(match keys {
            Some(keys) => narrow(keys, &source.items, &what, &field),
            None => Err(missing(&what, &field, namespace)),
        });
    }
    if let Some(source) = &reference.downward_api {
        let keys = source.items.iter().map(|i| i.name.clone()).collect();
        return Ok(Ok((
            keys,
            format!("downwardAPI reference {:?}", reference.name),
        )));
    }
    Ok(Ok((
        BTreeSet::new(),
        format!("reference {:?}", reference.name),
    )))
}

fn missing(what: &str, field: &str, namespace: &str) -> String {
    format!(
        "{what} ({field}.name) does not exist in namespace {namespace:?}; the DeviceLink proceeds as soon as it does"
    )
}

/// The keys to offer: those listed in `items` (each must exist), or all.
fn narrow(
    present: BTreeSet<String>,
    items: &[String],
    what: &str,
    field: &str,
) -> Result<(BTreeSet<String>, String), String> {
    if items.is_empty() {
        return Ok((present, what.to_string()));
    }
    let absent: Vec<&String> = items.iter().filter(|i| !present.contains(*i)).collect();
    if !absent.is_empty() {
        return Err(format!(
            "{what} has no key {absent:?} ({field}.items); it has: {}",
            present.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok((items.iter().cloned().collect(), what.to_string()))
}
