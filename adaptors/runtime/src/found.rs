//! What a scan found, written down: a DiscoveredDevice per find (made or
//! updated, never a second one), those the scan no longer found marked
//! gone, and the discovery's status saying how the scan went.
//!
//! All by server-side apply as the adaptor's field manager, so that what
//! the operator writes of the same objects (adoption) stays its own.

use std::collections::{BTreeMap, HashMap};

use devicelink_api::discovery::{
    AnsweredRange, BrowsedVariable, DISCOVERY_LABEL, DeviceDiscovery, DiscoveredDevice,
    DiscoveredDeviceStatus, DiscoveredProtocol, GattCharacteristic, MessageField, OfferedEndpoint,
    found_name,
};
use devicelink_api::{ConditionStatus, condition::kube_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use tracing::warn;

/// What one scan found, and what it cost.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub finds: Vec<Found>,
    /// Addresses (with port) tried.
    pub addresses: u64,
    /// Requests made, connects included.
    pub requests: u64,
    /// What the scan was asked to reach and could not, and why (a
    /// discovery server or broker that refused or did not answer; not a
    /// silent address of a range, which is no device).
    pub unreached: Vec<String>,
}

/// One device that answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    /// `address:port` (Modbus), the endpoint URL (OPC-UA), the topic
    /// (MQTT), the MAC address (BLE).
    pub address: String,
    pub unit_id: Option<i32>,
    /// What it says it is, by name (`vendorName`, `productCode`, ...).
    pub identity: BTreeMap<String, String>,
    pub registers: Vec<AnsweredRange>,
    pub endpoints: Vec<OfferedEndpoint>,
    pub variables: Vec<BrowsedVariable>,
    pub fields: Vec<MessageField>,
    pub characteristics: Vec<GattCharacteristic>,
    /// Why it could not be looked into, if it could not.
    pub not_browsed: Option<String>,
}

/// Writes the finds of `scan` and marks gone the ones it did not find; an
/// error says what could not be written.
pub(crate) async fn record(
    client: &Client,
    manager: &str,
    discovery: &DeviceDiscovery,
    protocol: DiscoveredProtocol,
    scan: &Scan,
    now: &Time,
) -> Result<(), String> {
    let namespace = discovery.namespace().unwrap_or_default();
    let api: Api<DiscoveredDevice> = Api::namespaced(client.clone(), &namespace);
    let mut known: HashMap<String, DiscoveredDevice> = api
        .list(&ListParams::default().fields(&format!("spec.discovery={}", discovery.name_any())))
        .await
        .map_err(|e| format!("listing its DiscoveredDevices: {e}"))?
        .items
        .into_iter()
        .filter(|d| owned_by(d, discovery))
        .map(|d| (d.name_any(), d))
        .collect();
    let apply = PatchParams::apply(manager).force();
    for found in &scan.finds {
        let name = found_name(&discovery.name_any(), &found.address, found.unit_id);
        let before = known.remove(&name);
        // Written once: a rescan writes only the status of what it found
        // again (the spec says where, and that does not change).
        if before.is_none() {
            let object = object(discovery, protocol, &name, found);
            api.patch(&name, &apply, &Patch::Apply(object))
                .await
                .map_err(|e| format!("writing DiscoveredDevice {name}: {e}"))?;
        }
        let earlier = before.and_then(|b| b.status).unwrap_or_default();
        let status = status_of(found, earlier, now);
        write_status(&api, &apply, &name, status).await?;
    }
    for (name, gone) in known {
        let Some(mut status) = gone.status.filter(|s| !s.gone) else {
            continue;
        };
        status.gone = true;
        // The operator's fields are its own (they are not applied here).
        (status.adopted_as, status.template, status.conditions) = (None, None, Vec::new());
        write_status(&api, &apply, &name, status).await?;
    }
    Ok(())
}

/// The status of a find, as this scan saw it. What an earlier scan
/// listed of a device this one could not look into (a BLE peripheral busy
/// with another central, an OPC-UA session refused once) is kept: one
/// failed look does not take away what is known, and `notBrowsed` says
/// why this one failed.
fn status_of(found: &Found, earlier: DiscoveredDeviceStatus, now: &Time) -> DiscoveredDeviceStatus {
    let looked_into = found.not_browsed.is_none();
    DiscoveredDeviceStatus {
        identity: found.identity.clone(),
        registers: found.registers.clone(),
        endpoints: found.endpoints.clone(),
        variables: listed_or_kept(looked_into, &found.variables, earlier.variables),
        fields: found.fields.clone(),
        characteristics: listed_or_kept(
            looked_into,
            &found.characteristics,
            earlier.characteristics,
        ),
        not_browsed: found.not_browsed.clone(),
        first_seen: Some(earlier.first_seen.unwrap_or_else(|| now.clone())),
        last_seen: Some(now.clone()),
        gone: false,
        ..Default::default()
    }
}

/// What this scan listed, or (when it could not look and listed nothing)
/// what an earlier one did.
fn listed_or_kept<T: Clone>(looked_into: bool, listed: &[T], earlier: Vec<T>) -> Vec<T> {
    if looked_into || !listed.is_empty() {
        listed.to_vec()
    } else {
        earlier
    }
}

/// Whether `found` is the discovery's (and not one of an older discovery
/// of the same name).
fn owned_by(found: &DiscoveredDevice, discovery: &DeviceDiscovery) -> bool {
    let uid = discovery.uid();
    found
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
}

/// The DiscoveredDevice of a find, without its status.
fn object(
    discovery: &DeviceDiscovery,
    protocol: DiscoveredProtocol,
    name: &str,
    found: &Found,
) -> serde_json::Value {
    let mut owner = discovery
        .controller_owner_ref(&())
        .expect("a discovery read from the API server has a name and uid");
    // Blocking the owner's deletion would need rights on the discovery's
    // finalizers that an adaptor has no use for.
    owner.block_owner_deletion = None;
    json!({
        "apiVersion": DiscoveredDevice::api_version(&()),
        "kind": DiscoveredDevice::kind(&()),
        "metadata": {
            "name": name,
            "labels": {
                DISCOVERY_LABEL: devicelink_api::labels::node_label_value(&discovery.name_any()),
            },
            "ownerReferences": [owner],
        },
        "spec": {
            "discovery": discovery.name_any(),
            "node": discovery.spec.node,
            "protocol": protocol,
            "address": found.address,
            "unitId": found.unit_id,
        },
    })
}

async fn write_status(
    api: &Api<DiscoveredDevice>,
    apply: &PatchParams,
    name: &str,
    status: DiscoveredDeviceStatus,
) -> Result<(), String> {
    let patch = json!({
        "apiVersion": DiscoveredDevice::api_version(&()),
        "kind": DiscoveredDevice::kind(&()),
        "status": status,
    });
    api.patch_status(name, apply, &Patch::Apply(patch))
        .await
        .map(drop)
        .map_err(|e| format!("writing the status of DiscoveredDevice {name}: {e}"))
}

/// Writes how the scan went into the discovery's status: its numbers, and
/// the `Scanned` condition (False, with why, if its finds could not all
/// be written). `written` is the condition as this task last wrote it
/// (read from the discovery when the task started), for when it last
/// changed.
pub(crate) async fn summarize(
    client: &Client,
    manager: &str,
    discovery: &DeviceDiscovery,
    scan: &Scan,
    (started, finished): (Time, Time),
    recorded: Result<(), String>,
    written: &mut Vec<Condition>,
) {
    let (status, reason, message) = match &recorded {
        Ok(()) => (
            ConditionStatus::True,
            "Scanned",
            format!(
                "{} addresses, {} requests, {} found{}",
                scan.addresses,
                scan.requests,
                scan.finds.len(),
                match scan.unreached.is_empty() {
                    true => String::new(),
                    false => format!("; not reached: {}", scan.unreached.join("; ")),
                }
            ),
        ),
        Err(why) => (ConditionStatus::False, "WriteFailed", why.clone()),
    };
    let generation = discovery.metadata.generation;
    if let Some(changed) = kube_condition(written, "Scanned", status, reason, &message, generation)
    {
        *written = vec![changed];
    }
    let patch = json!({
        "apiVersion": DeviceDiscovery::api_version(&()),
        "kind": DeviceDiscovery::kind(&()),
        "status": {
            "observedGeneration": generation,
            "lastScan": {
                "started": started,
                "finished": finished,
                "addresses": scan.addresses,
                "requests": scan.requests,
                "found": scan.finds.len(),
            },
            "conditions": written,
        },
    });
    let api: Api<DeviceDiscovery> =
        Api::namespaced(client.clone(), &discovery.namespace().unwrap_or_default());
    if let Err(e) = api
        .patch_status(
            &discovery.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(patch),
        )
        .await
    {
        warn!(discovery = %discovery.name_any(), error = %e, "could not write the scan's status");
    }
    if let Err(why) = recorded {
        warn!(discovery = %discovery.name_any(), error = %why, "could not record what the scan found");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn characteristic(uuid: &str) -> GattCharacteristic {
        GattCharacteristic {
            service: "180f".into(),
            uuid: uuid.into(),
            properties: vec!["read".into()],
        }
    }

    #[test]
    fn a_failed_look_keeps_what_an_earlier_scan_listed() {
        let now = devicelink_api::condition::now();
        let earlier = DiscoveredDeviceStatus {
            characteristics: vec![characteristic("2a19")],
            first_seen: Some(now.clone()),
            ..Default::default()
        };
        let busy = Found {
            address: "10:00:00:00:00:01".into(),
            not_browsed: Some("connecting: busy".into()),
            ..Found::default()
        };
        let status = status_of(&busy, earlier.clone(), &now);
        assert_eq!(status.characteristics, [characteristic("2a19")]);
        assert_eq!(status.not_browsed.as_deref(), Some("connecting: busy"));

        let looked = Found {
            characteristics: vec![characteristic("2a6e")],
            ..busy.clone()
        };
        let looked = Found {
            not_browsed: None,
            ..looked
        };
        let status = status_of(&looked, earlier, &now);
        assert_eq!(
            status.characteristics,
            [characteristic("2a6e")],
            "a look that worked says what is there now"
        );
        assert_eq!(status.first_seen, Some(now));
    }
}
