//! BLE discovery end to end (docs/discovery.md), against BlueZ's D-Bus
//! API as BlueZoo emulates it: a thermometer, a lamp and a tag that
//! nobody asked for advertise on adapters of their own. A DeviceDiscovery
//! looks for the name `MJ_HT` and the lamp's service: the thermometer and
//! the lamp are finds with what they advertised and the characteristics
//! of their GATT services; the tag is no find. The shipped catalog knows
//! the thermometer, which becomes a connected DeviceLink by itself; the
//! lamp becomes one once a person adopts it, its characteristics proposed
//! as properties. The example (deploy/examples/ble-discovery.yaml) is
//! taken, and only the BLE adaptor of its node writes its status; a
//! discovery that names nothing to look for is refused by the API server.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    ble::BluetoothDevice,
    catalog::TEMPLATE_LABEL,
    discovery::{DeviceDiscovery, DiscoveredDevice, GattCharacteristic},
};
use devicelink_e2e::{
    apply, begin,
    ble::{Ble, Bluezoo, Peripheral, peripheral_config},
    discovery::{adaptor_of, adopt, apply_catalog, apply_refused, finds, last_scan},
    eventually_showing, property_field, repo_root, wait_connected, wait_property, yaml_documents,
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const THERMOMETER_SERVICE: &str = "226c0000-6476-4566-7562-66734470666d";
const LAMP_SERVICE: &str = "f000aa00-0451-4000-b000-000000000001";

fn discovery(namespace: &str, ble: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
        "metadata": {"name": "room", "namespace": namespace},
        // One scan in the test's time: each scan connects to every find
        // not yet connected, and the test watches the first.
        "spec": {"node": "edge-worker", "interval": "10m", "adoption": "Matched",
                 "ble": ble, "deviceLinks": {"syncInterval": "1s"}}})
}

fn characteristic<'a>(all: &'a [GattCharacteristic], uuid: &str) -> Option<&'a GattCharacteristic> {
    all.iter().find(|c| c.uuid == uuid)
}

#[tokio::test]
async fn peripherals_asked_for_become_finds_and_a_known_one_a_devicelink() {
    let namespace = "e2e-ble-discovery";
    let (_guard, client) = begin(namespace).await;
    apply_catalog(&client, namespace).await;
    let ble = Ble::start("discovery", &client, 3).await;
    let _thermometer = Peripheral::start(
        &ble.bus,
        "discovery-thermometer",
        1,
        1,
        &peripheral_config("ble-thermometer.json"),
    )
    .await;
    let _lamp = Peripheral::start(
        &ble.bus,
        "discovery-lamp",
        2,
        1,
        &peripheral_config("ble-lamp.json"),
    )
    .await;
    let tag = json!({"name": "ASSET-TAG", "services": [{"uuid": "0000181a-0000-1000-8000-00805f9b34fb",
        "characteristics": [{"uuid": "00002a6e-0000-1000-8000-00805f9b34fb", "flags": ["read"], "value": "3408"}]}]});
    let _tag = Peripheral::start(&ble.bus, "discovery-tag", 3, 1, &tag).await;

    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let asked = json!({"names": ["mj_ht"], "services": [LAMP_SERVICE], "listen": "3s"});
    apply::<DeviceDiscovery>(&discoveries, &discovery(namespace, asked)).await;

    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let all = finds(&found, "room", 2).await;
    let addresses: Vec<&str> = all.iter().map(|f| f.spec.address.as_str()).collect();
    assert_eq!(addresses, [Bluezoo::address(1), Bluezoo::address(2)]);
    let (_, count) = last_scan(&discoveries, "room").await;
    assert_eq!(count, 2, "the tag is no find");

    // The thermometer: what it advertised, and its services' characteristics.
    let thermometer = all[0].status.clone().unwrap();
    assert_eq!(thermometer.identity["localName"], "MJ_HT_V1");
    assert_eq!(thermometer.identity["address"], Bluezoo::address(1));
    let services = &thermometer.identity["services"];
    assert!(services.contains(THERMOMETER_SERVICE), "{services}");
    assert!(
        services.contains("0000180f-0000-1000-8000-00805f9b34fb"),
        "{services}"
    );
    assert_eq!(thermometer.not_browsed, None);
    let temperature = characteristic(
        &thermometer.characteristics,
        "226caa55-6476-4566-7562-66734470666d",
    )
    .unwrap_or_else(|| panic!("the temperature in {:?}", thermometer.characteristics));
    assert_eq!(temperature.service, THERMOMETER_SERVICE);
    assert_eq!(temperature.properties, ["read", "notify"]);
    let message = characteristic(
        &thermometer.characteristics,
        "226cbb55-6476-4566-7562-66734470666d",
    )
    .unwrap();
    assert_eq!(message.properties, ["read", "write", "notify"]);

    // It is in the catalog: adopted by itself, connected, reading.
    let name = all[0].metadata.name.clone().unwrap();
    eventually_showing("the thermometer's template", WAIT, || async {
        let f = found.get(&name).await.map_err(|e| e.to_string())?;
        let template = f.status.and_then(|s| s.template);
        (template.as_deref() == Some("xiaomi-mj-ht-v1"))
            .then_some(())
            .ok_or(format!("{template:?}"))
    })
    .await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &name).await;
    assert_eq!(
        link.metadata.labels.unwrap_or_default()[TEMPLATE_LABEL],
        "xiaomi-mj-ht-v1"
    );
    let spec = link.spec.template.spec.unwrap();
    assert_eq!(spec["protocol"]["endpoint"], Bluezoo::address(1));
    assert_eq!(spec["protocol"]["syncInterval"], "30s");
    let devices: Api<BluetoothDevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, &name, "model", "MJ_HT_V1").await;
    wait_property(&devices, &name, "battery", "90").await;
    // The thermometer notifies 21.00 and 21.10 in turn, twice a second.
    eventually_showing("the temperature, divided by 100", WAIT, || async {
        let d = devices.get(&name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        let seen = property_field(&status, "temperature", "operatedValue");
        seen.filter(|t| ["21", "21.1"].contains(t))
            .map(drop)
            .ok_or(format!("{seen:?}"))
    })
    .await;

    // The lamp: found by its service, no template; adopted by hand, its
    // characteristics read as proposed (bytes in hex).
    let lamp = all[1].clone();
    let lamp_status = lamp.status.clone().unwrap();
    assert_eq!(lamp_status.identity["localName"], "DESK-LAMP");
    assert_eq!(lamp_status.template, None);
    let lamp_name = lamp.metadata.name.clone().unwrap();
    assert!(links.get_opt(&lamp_name).await.unwrap().is_none());
    adopt(&found, &lamp_name).await;
    let link = wait_connected(&links, &lamp_name).await;
    let spec = link.spec.template.spec.unwrap();
    assert_eq!(spec["protocol"]["endpoint"], Bluezoo::address(2));
    assert_eq!(spec["protocol"]["syncInterval"], "1s");
    let proposed = &spec["properties"];
    assert_eq!(
        proposed[0]["accessModes"],
        json!(["ReadMany"]),
        "{proposed}"
    );
    assert_eq!(proposed[0]["visitor"]["service"], LAMP_SERVICE);
    wait_property(&devices, &lamp_name, "f000aa01", "00").await;
    wait_property(&devices, &lamp_name, "f000aa02", "64").await;
}

#[tokio::test]
async fn the_example_is_taken_and_one_that_names_nothing_is_refused() {
    let namespace = "e2e-ble-discovery-refused";
    let (_guard, client) = begin(namespace).await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let example = repo_root().join("deploy/examples/ble-discovery.yaml");
    let mut example = yaml_documents(&example).remove(0);
    example["metadata"]["namespace"] = json!(namespace);
    let dry_run = kube::api::PatchParams::apply("e2e").dry_run();
    discoveries
        .patch("office", &dry_run, &kube::api::Patch::Apply(&example))
        .await
        .expect("the API server takes deploy/examples/ble-discovery.yaml");

    // The BLE adaptor of the discovery's node writes how its scans went;
    // the Modbus adaptor of the same node may not (the
    // devicelink-adaptor-discovery policy: its own node and protocol).
    apply::<DeviceDiscovery>(&discoveries, &example).await;
    let scanned = json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
        "metadata": {"name": "office"},
        "status": {"observedGeneration": 1}});
    let params = kube::api::PatchParams::apply("e2e-adaptor").force();
    let modbus = adaptor_of(&client, "modbus", "edge-worker").await;
    let as_modbus: Api<DeviceDiscovery> = Api::namespaced(modbus, namespace);
    let refused = as_modbus
        .patch_status("office", &params, &kube::api::Patch::Apply(&scanned))
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "the Modbus adaptor wrote a BLE discovery's status: {refused:?}"
    );
    let own = adaptor_of(&client, "ble", "edge-worker").await;
    let as_ble: Api<DeviceDiscovery> = Api::namespaced(own, namespace);
    eventually_showing(
        "the BLE adaptor to write its discovery's status",
        WAIT,
        || async {
            as_ble
                .patch_status("office", &params, &kube::api::Patch::Apply(&scanned))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    for protocol in ["modbus", "ble"] {
        let _ = bindings
            .delete(
                &format!("e2e-devicelink-adaptor-{protocol}-edge-worker"),
                &Default::default(),
            )
            .await;
    }
    let anything = discovery(namespace, json!({"listen": "3s"}));
    let words = ["spec.ble", "give names or services"];
    apply_refused(&discoveries, "room", &anything, 422, &words).await;
    let bad_service = discovery(namespace, json!({"services": ["battery"]}));
    apply_refused(
        &discoveries,
        "room",
        &bad_service,
        422,
        &["spec.ble.services[0]"],
    )
    .await;
}
