//! The catalog end to end (docs/discovery.md): the DeviceTemplates shipped
//! in deploy/catalog/ and a discovery with `adoption: Matched` on the
//! loopback plant (e2e/src/modbus.rs). The meter and the drive, which a
//! template matches, become connected DeviceLinks whose properties read
//! what the simulators hold, without anyone writing an address or a
//! register; the device no template matches waits for a person. A template
//! whose device the model's schema refuses is named on the find instead
//! of making a DeviceLink, and one whose extension (a server of the
//! template's choosing) names credentials is refused by the API server.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    catalog::{DeviceTemplate, TEMPLATE_LABEL},
    discovery::{DeviceDiscovery, DiscoveredDevice},
    modbus::ModbusDevice,
};
use devicelink_e2e::{
    LocalKubelet, apply, begin,
    discovery::{adopt, allow_ranges, apply_catalog, apply_refused, catalog, discovery, finds},
    eventually_showing,
    modbus::Plant,
    process::{free_port, start_operator},
    wait_connected, wait_property, wait_property_field,
};
use k8s_openapi::api::core::v1::Event;
use kube::{Api, api::ListParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// The `Adopted` condition of find `name`: (reason, message), once its
/// reason is `reason`.
async fn adopted(api: &Api<DiscoveredDevice>, name: &str, reason: &str) -> String {
    eventually_showing(&format!("{name} Adopted {reason}"), WAIT, || async {
        let f = api.get(name).await.map_err(|e| e.to_string())?;
        let condition = f
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .find(|c| c.type_ == "Adopted")
            .cloned();
        match condition {
            Some(c) if c.reason == reason => Ok(c.message),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

#[tokio::test]
async fn finds_a_template_matches_become_devicelinks_of_its_kind() {
    let namespace = "e2e-modbus-catalog";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    apply_catalog(&client, namespace).await;
    let templates: Api<DeviceTemplate> = Api::namespaced(client.clone(), namespace);
    // A later revision of the drive, more specific than the shipped entry
    // (so it wins), whose register map the ModbusDevice schema refuses.
    apply::<DeviceTemplate>(
        &templates,
        &json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceTemplate",
            "metadata": {"name": "initech-vfd-7-rev2", "namespace": namespace},
            "spec": {"protocol": "modbus",
                     "identity": {"vendorName": "Initech", "productCode": "VFD-7", "revision": "2.0"},
                     "template": {"spec": {"properties": [{"name": "setpoint", "type": "uint16",
                         "visitor": {"register": "HoldingRegister", "offset": 70000}}]}}}}),
    )
    .await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let port = free_port();
    let _plant = Plant::start(port).await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let mut plant = discovery(namespace, "plant", "127.0.0.0/29", port);
    plant["spec"]["adoption"] = json!("Matched");
    apply::<DeviceDiscovery>(&discoveries, &plant).await;

    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let all = finds(&found, "plant", 3).await;
    let [meter, drive, plain] = [0, 1, 2].map(|i| all[i].metadata.name.clone().unwrap());

    // The meter: adopted from its template; what the simulator holds
    // comes out as the template says (scaled, 32-bit, writable).
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &meter).await;
    let labels = link.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[TEMPLATE_LABEL], "acme-pm-200");
    assert_eq!(labels["edge.cattle.io/discovered-device"], meter);
    let spec = link.spec.template.spec.clone().unwrap();
    assert_eq!(spec["protocol"]["tcp"]["endpoint"], all[0].spec.address);
    assert_eq!(
        spec["properties"][0]["description"],
        format!(
            "Line voltage in volts (PM-200 at {}, unit 1).",
            all[0].spec.address
        ),
        "placeholders are filled from the find"
    );
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    for (property, value) in [
        ("voltage", "230.1"),
        ("current", "15.2"),
        ("energy", "123.456"),
    ] {
        wait_property_field(&devices, &meter, property, "operatedValue", value).await;
    }
    wait_property(&devices, &meter, "ct-ratio", "40").await;
    let f = found.get(&meter).await.unwrap().status.unwrap();
    assert_eq!(f.template.as_deref(), Some("acme-pm-200"));
    assert_eq!(f.adopted_as.as_deref(), Some(meter.as_str()));

    // The drive: its most specific template is refused by the model's
    // schema, which the find says, naming the field; no DeviceLink.
    let why = adopted(&found, &drive, "DeviceRefused").await;
    assert!(why.contains("offset"), "{why}");
    // Also told as an Event on the find, as the meter's adoption is.
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    for (name, reason, type_) in [
        (&drive, "DeviceRefused", "Warning"),
        (&meter, "Adopted", "Normal"),
    ] {
        eventually_showing(&format!("a {reason} Event on {name}"), WAIT, || async {
            let selector =
                format!("involvedObject.kind=DiscoveredDevice,involvedObject.name={name}");
            let listed = events
                .list(&ListParams::default().fields(&selector))
                .await
                .map_err(|e| e.to_string())?;
            let seen: Vec<(String, String)> = listed
                .items
                .iter()
                .map(|e| {
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.type_.clone().unwrap_or_default(),
                    )
                })
                .collect();
            seen.contains(&(reason.to_string(), type_.to_string()))
                .then_some(())
                .ok_or(format!("{seen:?}"))
        })
        .await;
    }
    assert!(links.get_opt(&drive).await.unwrap().is_none());
    assert_eq!(
        found
            .get(&drive)
            .await
            .unwrap()
            .status
            .unwrap()
            .template
            .as_deref(),
        Some("initech-vfd-7-rev2")
    );
    // Once the bad entry goes, the shipped one makes its DeviceLink.
    templates
        .delete("initech-vfd-7-rev2", &Default::default())
        .await
        .unwrap();
    wait_connected(&links, &drive).await;
    wait_property(&devices, &drive, "running", "true").await;
    wait_property(&devices, &drive, "setpoint", "500").await;
    wait_property_field(&devices, &drive, "frequency", "operatedValue", "49.8").await;

    // The plain device (no identification) matches nothing: it waits for
    // a person, and says how to adopt it.
    let why = adopted(&found, &plain, "AwaitingApproval").await;
    assert!(why.contains("edge.cattle.io/adopt=true"), "{why}");
    assert!(links.get_opt(&plain).await.unwrap().is_none());
    adopt(&found, &plain).await;
    wait_connected(&links, &plain).await;
    wait_property(&devices, &plain, "holding-0", "7").await;
}

#[tokio::test]
async fn a_template_whose_extension_names_credentials_is_refused() {
    let namespace = "e2e-modbus-catalog-refs";
    let (_guard, client) = begin(namespace).await;
    let templates: Api<DeviceTemplate> = Api::namespaced(client.clone(), namespace);
    let mut meter = catalog(namespace).remove(0);
    meter["spec"]["template"]["spec"]["extension"] = json!({"mqtt": {
        "client": {"server": "tcp://collector.example:1883",
                   "basicAuth": {"usernameRef": {"name": "site", "item": "user"}}},
        "message": {"topic": "plant/:name"}}});
    let words = [
        "extension.mqtt.client.basicAuth.usernameRef",
        "cannot name credentials",
    ];
    apply_refused(&templates, "acme-pm-200", &meter, 422, &words).await;
}
