//! MQTT discovery end to end (docs/discovery.md): devices that publish
//! JSON on a real broker (retained, as many devices keep their state), a
//! DeviceDiscovery listening to `plant/#`. Each topic heard with a JSON
//! object is a find with the fields of its message; one the shipped
//! catalog knows by its topic (`plant/+/climate`) becomes a connected
//! DeviceLink by itself, another once a person adopts it. What is not a
//! JSON object, or not under the filters, is no find. A broker outside
//! the allowed ranges is refused by the API server.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    catalog::TEMPLATE_LABEL,
    discovery::{DeviceDiscovery, DiscoveredDevice},
    mqtt_device::MQTTDevice,
};
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin,
    discovery::{adopt, allow_ranges, apply_catalog, apply_refused, finds},
    mqtt::publish_retained,
    process::start_operator,
    wait_connected, wait_property,
};
use kube::Api;
use serde_json::json;

fn discovery(namespace: &str, server: &str) -> serde_json::Value {
    json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
        "metadata": {"name": "hall", "namespace": namespace},
        "spec": {"node": "edge-worker", "interval": "10s", "adoption": "Matched",
                 "mqtt": {"server": server, "topics": ["plant/#"], "listen": "2s"},
                 "deviceLinks": {"syncInterval": "1s"}}})
}

#[tokio::test]
async fn topics_heard_become_finds_and_a_known_one_a_devicelink() {
    let namespace = "e2e-mqtt-discovery";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    apply_catalog(&client, namespace).await;
    let broker = Broker::start().await;
    let climate = br#"{"temperature": 21.5, "humidity": 40, "battery": {"level": 87}}"#;
    publish_retained(broker.port, "plant/hall-1/climate", climate).await;
    publish_retained(
        broker.port,
        "plant/hall-1/door",
        br#"{"open": false, "opened": 12}"#,
    )
    .await;
    publish_retained(broker.port, "plant/hall-1/raw", b"not json").await;
    publish_retained(broker.port, "office/printer", br#"{"pages": 3}"#).await;

    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    apply::<DeviceDiscovery>(&discoveries, &discovery(namespace, &broker.url())).await;

    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let all = finds(&found, "hall", 2).await;
    let mut by_topic: Vec<&str> = all.iter().map(|f| f.spec.address.as_str()).collect();
    by_topic.sort();
    assert_eq!(by_topic, ["plant/hall-1/climate", "plant/hall-1/door"]);
    let climate_find = all
        .iter()
        .find(|f| f.spec.address == "plant/hall-1/climate")
        .unwrap();
    let status = climate_find.status.clone().unwrap();
    assert_eq!(status.identity["topic"], "plant/hall-1/climate");
    let fields: Vec<(&str, &str, &str)> = status
        .fields
        .iter()
        .map(|f| (f.path.as_str(), f.type_.as_str(), f.example.as_str()))
        .collect();
    for field in [
        ("temperature", "float", "21.5"),
        ("humidity", "int", "40"),
        ("battery.level", "int", "87"),
    ] {
        assert!(fields.contains(&field), "{field:?} in {fields:?}");
    }
    // The operator writes the match after the adaptor wrote the find.
    let climate_name = climate_find.metadata.name.clone().unwrap();
    devicelink_e2e::eventually_showing("the climate find's template", WAIT, || async {
        let f = found.get(&climate_name).await.map_err(|e| e.to_string())?;
        let template = f.status.and_then(|s| s.template);
        (template.as_deref() == Some("acme-room-climate"))
            .then_some(())
            .ok_or(format!("{template:?}"))
    })
    .await;

    // The climate sensor: adopted from its template, connected, reading.
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &climate_name).await;
    assert_eq!(
        link.metadata.labels.unwrap_or_default()[TEMPLATE_LABEL],
        "acme-room-climate"
    );
    let spec = link.spec.template.spec.unwrap();
    assert_eq!(spec["protocol"]["client"]["server"], broker.url());
    assert_eq!(spec["protocol"]["message"]["topic"], "plant/hall-1/climate");
    let devices: Api<MQTTDevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, &climate_name, "temperature", "21.5").await;
    wait_property(&devices, &climate_name, "battery", "87").await;

    // The door: no template; adopted by hand, its fields as proposed.
    let door = all
        .iter()
        .find(|f| f.spec.address == "plant/hall-1/door")
        .unwrap();
    let door_name = door.metadata.name.clone().unwrap();
    assert!(links.get_opt(&door_name).await.unwrap().is_none());
    adopt(&found, &door_name).await;
    wait_connected(&links, &door_name).await;
    wait_property(&devices, &door_name, "opened", "12").await;
    wait_property(&devices, &door_name, "open", "false").await;

    // A broker that is not there is said so, not taken for an empty one.
    let closed = devicelink_e2e::process::free_port();
    let mut gone = discovery(namespace, &format!("tcp://127.0.0.1:{closed}"));
    gone["metadata"]["name"] = json!("gone");
    apply::<DeviceDiscovery>(&discoveries, &gone).await;
    scanned(&discoveries, "gone", |m| {
        m.contains(&format!("not reached: tcp://127.0.0.1:{closed}"))
    })
    .await;
    broker.stop().await;
}

const WAIT: Duration = Duration::from_secs(60);

/// The Scanned condition's message of discovery `name`, once `holds` is
/// true of it.
async fn scanned(api: &Api<DeviceDiscovery>, name: &str, holds: impl Fn(&str) -> bool) {
    devicelink_e2e::eventually_showing(
        &format!("the scan of {name} to say what it should"),
        WAIT,
        || async {
            let d = api.get(name).await.map_err(|e| e.to_string())?;
            let message = d
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == "Scanned")
                .map(|c| c.message.clone())
                .unwrap_or_default();
            holds(&message).then_some(()).ok_or(message)
        },
    )
    .await
}

/// A broker that refuses anonymous clients: the scan signs in as the user
/// whose name and password the discovery's references name (a Secret the
/// operator lets the scanning adaptor pod read, and no other); without
/// them the scan says the broker was not reached.
#[tokio::test]
async fn a_broker_that_refuses_anonymous_clients_is_listened_to_as_its_user() {
    let namespace = "e2e-mqtt-discovery-login";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let port = devicelink_e2e::process::free_port();
    let users = [("scanner", "l1sten"), ("sensor", "publ1sh")];
    let settings = devicelink_e2e::broker::Settings {
        users: &users,
        ..Default::default()
    };
    let broker = Broker::start_configured(port, &settings).await;
    devicelink_e2e::mqtt::publish_retained_as(
        broker.port,
        users[1],
        "plant/hall-2/climate",
        br#"{"temperature": 19.5}"#,
    )
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "broker-scanner", "namespace": namespace},
            "stringData": {"username": "scanner", "password": "l1sten"}}),
    )
    .await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let mut anonymous = discovery(namespace, &broker.url());
    anonymous["metadata"]["name"] = json!("anonymous");
    anonymous["spec"]["adoption"] = json!("Manual");
    apply::<DeviceDiscovery>(&discoveries, &anonymous).await;
    let mut signed_in = anonymous.clone();
    signed_in["metadata"]["name"] = json!("signed-in");
    signed_in["spec"]["mqtt"]["basicAuth"] = json!({
        "usernameRef": {"name": "broker", "item": "username"},
        "passwordRef": {"name": "broker", "item": "password"}});
    signed_in["spec"]["references"] =
        json!([{"name": "broker", "secret": {"name": "broker-scanner"}}]);
    apply::<DeviceDiscovery>(&discoveries, &signed_in).await;

    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let heard = finds(&found, "signed-in", 1).await;
    assert_eq!(heard[0].spec.address, "plant/hall-2/climate");
    scanned(&discoveries, "anonymous", |m| {
        m.contains(&format!("not reached: {}", broker.url()))
    })
    .await;
    assert!(finds(&found, "anonymous", 0).await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn a_broker_outside_the_allowed_ranges_is_refused() {
    let namespace = "e2e-mqtt-discovery-ranges";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let outside = discovery(namespace, "tcp://10.9.0.1:1883");
    let words = ["spec.mqtt.server: 10.9.0.1 lies outside", "127.0.0.0/24"];
    apply_refused(&discoveries, "hall", &outside, 403, &words).await;
    let named = discovery(namespace, "tcp://broker.local:1883");
    apply_refused(&discoveries, "hall", &named, 422, &["IP address"]).await;
}
