//! Discovery end to end (docs/discovery.md): a DeviceDiscovery of a
//! loopback range the test makes (127.0.0.0/29; never any other address)
//! with two pymodbus devices of different identities, a libmodbus one
//! without identification, and an address that accepts connections and
//! never answers. The Modbus adaptor scans it; each device becomes one
//! DiscoveredDevice, a rescan adds none, a device that went away is marked
//! gone, and an adopted find becomes a connected DeviceLink. A range the
//! cluster's administrator did not allow is refused by the API server, and
//! a tenant may annotate a find but not move it to another address.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    discovery::{DeviceDiscovery, DiscoveredDevice},
    modbus::ModbusDevice,
};
use devicelink_e2e::{
    LocalKubelet, apply, begin, client_as,
    discovery::{adaptor_of, adopt, allow_ranges, apply_refused, at, discovery, finds, last_scan},
    eventually_showing,
    modbus::Plant,
    process::{free_port, start_operator},
    wait_connected, wait_property,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);
const TENANT: &str = "plant-engineer";

#[tokio::test]
async fn a_discovery_finds_each_device_once_and_an_adopted_one_connects() {
    let namespace = "e2e-modbus-discovery";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let port = free_port();
    let mut plant_devices = Plant::start(port).await;

    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let plant: DeviceDiscovery = apply(
        &discoveries,
        &discovery(namespace, "plant", "127.0.0.0/29", port),
    )
    .await;

    // Three finds, each with what it said of itself.
    let all = finds(&found, "plant", 3).await;
    let identity = |i: usize, key: &str| {
        all[i]
            .status
            .as_ref()
            .unwrap()
            .identity
            .get(key)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(all[0].spec.address, at(2, port).to_string());
    assert_eq!(identity(0, "vendorName"), "Acme");
    assert_eq!(identity(0, "productCode"), "PM-200");
    assert_eq!(identity(1, "productCode"), "VFD-7");
    assert_eq!(all[2].spec.address, at(4, port).to_string());
    assert!(
        all[2].status.as_ref().unwrap().identity.is_empty(),
        "libmodbus has no 43/14"
    );
    assert!(
        all.iter()
            .all(|f| f.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|o| Some(&o.uid) == plant.metadata.uid.as_ref())
            })),
        "finds are owned by their discovery"
    );

    // A rescan updates the finds, and adds none.
    let (first, count) = last_scan(&discoveries, "plant").await;
    assert_eq!(count, 3);
    eventually_showing("a second scan", WAIT, || async {
        let (now, _) = last_scan(&discoveries, "plant").await;
        (now != first).then_some(()).ok_or(now)
    })
    .await;
    assert_eq!(finds(&found, "plant", 3).await.len(), 3);

    // The drive goes away: its find is marked gone at the next scan.
    plant_devices.drive.stop().await;
    let drive_name = all[1].metadata.name.clone().unwrap();
    eventually_showing("the drive marked gone", WAIT, || async {
        let f = found.get(&drive_name).await.map_err(|e| e.to_string())?;
        let gone = f.status.is_some_and(|s| s.gone);
        gone.then_some(()).ok_or("not gone".to_string())
    })
    .await;

    // Adopting the meter makes its DeviceLink, which connects and reads.
    let meter_name = all[0].metadata.name.clone().unwrap();
    adopt(&found, &meter_name).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &meter_name).await;
    assert_eq!(
        link.metadata.labels.unwrap_or_default()["edge.cattle.io/discovered-device"],
        meter_name
    );
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, &meter_name, "input-0", "2301").await;
    eventually_showing("the find names its DeviceLink", WAIT, || async {
        let f = found.get(&meter_name).await.map_err(|e| e.to_string())?;
        let adopted = f.status.and_then(|s| s.adopted_as);
        (adopted.as_deref() == Some(meter_name.as_str()))
            .then_some(())
            .ok_or(format!("{adopted:?}"))
    })
    .await;

    // Deleting the discovery lets it go (the operator's finalizer) and its
    // finds with it; the DeviceLink adopted from one stays.
    discoveries
        .delete("plant", &Default::default())
        .await
        .unwrap();
    eventually_showing("the discovery and its finds gone", WAIT, || async {
        let left = found
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let discovery = discoveries
            .get_opt("plant")
            .await
            .map_err(|e| e.to_string())?;
        (discovery.is_none() && left.items.is_empty())
            .then_some(())
            .ok_or(format!("{} finds left", left.items.len()))
    })
    .await;
    assert!(links.get_opt(&meter_name).await.unwrap().is_some());
}

#[tokio::test]
async fn a_range_the_administrator_did_not_allow_is_refused() {
    let namespace = "e2e-modbus-discovery-ranges";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let outside = discovery(namespace, "elsewhere", "10.9.0.0/24", 502);
    let words = [
        "spec.modbus.targets: 10.9.0.0/24 lies outside",
        "127.0.0.0/24",
    ];
    apply_refused(&discoveries, "elsewhere", &outside, 403, &words).await;
    // Inside is taken; more than 4,096 addresses is refused by the schema.
    apply::<DeviceDiscovery>(
        &discoveries,
        &discovery(namespace, "inside", "127.0.0.8/29", 502),
    )
    .await;
    let huge = discovery(namespace, "huge", "127.0.0.0/16", 502);
    apply_refused(
        &discoveries,
        "huge",
        &huge,
        422,
        &["more than 4096 addresses"],
    )
    .await;
}

#[tokio::test]
async fn finds_are_written_by_their_nodes_adaptor_and_a_tenant_may_adopt_but_not_move_one() {
    let namespace = "e2e-modbus-discovery-tenant";
    let (_guard, client) = begin(namespace).await;
    let find = json!({
        "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DiscoveredDevice",
        "metadata": {"name": "meter", "namespace": namespace},
        "spec": {"discovery": "plant", "node": "edge-worker", "protocol": "modbus",
                 "address": "127.0.0.2:502", "unitId": 1},
    });
    // The adaptor of another node may not write a find of this one...
    let stranger = adaptor_of(&client, "modbus", "other-node").await;
    let as_stranger: Api<DiscoveredDevice> = Api::namespaced(stranger, namespace);
    let forged = eventually_showing("the stranger's binding to take effect", WAIT, || async {
        match as_stranger
            .patch("meter", &PatchParams::apply("e2e"), &Patch::Apply(&find))
            .await
        {
            Err(kube::Error::Api(e))
                if e.code == 403 && e.message.contains("own protocol and node") =>
            {
                Ok(e.message)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(forged.contains("edge-worker"), "{forged}");
    // ...its own may.
    let own = adaptor_of(&client, "modbus", "edge-worker").await;
    let as_adaptor: Api<DiscoveredDevice> = Api::namespaced(own, namespace);
    eventually_showing("the adaptor to write its find", WAIT, || async {
        as_adaptor
            .patch("meter", &PatchParams::apply("e2e"), &Patch::Apply(&find))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;

    // The tenant has Kubernetes' edit role in the namespace (which the
    // chart's discovery roles are aggregated into).
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    apply::<RoleBinding>(
        &bindings,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "edit", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}]}),
    )
    .await;
    let as_tenant: Api<DiscoveredDevice> = Api::namespaced(client_as(TENANT).await, namespace);
    // The tenant may annotate a find (adopt it)...
    eventually_showing("the tenant's edit role to include finds", WAIT, || async {
        as_tenant
            .patch(
                "meter",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"edge.cattle.io/adopt": "false"}}}),
                ),
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    // ...but not point it at another address, where adoption would send
    // a DeviceLink, nor make one up.
    let moved = as_tenant
        .patch(
            "meter",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"address": "10.0.0.66:502"}})),
        )
        .await;
    match moved {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            assert!(e.message.contains("not change its spec"), "{}", e.message);
        }
        other => panic!("a tenant moved a find: {other:?}"),
    }
    let mut made_up = find.clone();
    made_up["metadata"]["name"] = json!("made-up");
    let made_up = as_tenant
        .create(
            &Default::default(),
            &serde_json::from_value(made_up).unwrap(),
        )
        .await;
    assert!(
        matches!(&made_up, Err(kube::Error::Api(e)) if e.code == 403),
        "a tenant made a DiscoveredDevice up: {made_up:?}"
    );
    let all: Api<ClusterRoleBinding> = Api::all(client.clone());
    for node in ["other-node", "edge-worker"] {
        let _ = all
            .delete(
                &format!("e2e-devicelink-adaptor-modbus-{node}"),
                &Default::default(),
            )
            .await;
    }
}
