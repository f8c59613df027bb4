//! Devices that speak MQTT themselves (MQTTDevice), end to end on mosquitto,
//! against a device program (paho-mqtt) that behaves like a real one: it
//! publishes its state, applies the commands it receives and publishes its
//! new state.
//!
//! A light with one JSON message (AttributedMessage): a nested value with
//! arithmetic, written from the spec and from the MQTT write topic of its
//! extension, read-only values refused, a malformed message named and
//! recovered from. A kitchen monitor with a topic per property
//! (AttributedTopic): read-only values of every type, a value of the wrong
//! type, a broker restart mid-run. A light over TLS with a username and
//! password from a Secret, and a path its messages do not have.

use std::time::Duration;

use devicelink_api::{DeviceLink, mqtt_device::MQTTDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin,
    broker::{Settings, Tls},
    certs::certificates,
    delete_links_and_wait, eventually_showing,
    mqtt::{self, Subscriber},
    mqtt_device::{self, Layout, MqttDevice, Options},
    process::{free_port, start_operator},
    property_field, wait_connected, wait_property, wait_reason,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// A property's field in the device's status, once it is there.
async fn wait_field(
    devices: &Api<MQTTDevice>,
    name: &str,
    property: &str,
    field: &str,
    want: &str,
) {
    eventually_showing(
        &format!("{name}.{property}.{field} = {want}"),
        WAIT,
        || async {
            let d = devices.get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(d.status).unwrap();
            let seen = property_field(&status, property, field);
            (seen == Some(want))
                .then_some(())
                .ok_or(format!("{seen:?}"))
        },
    )
    .await
}

/// The status value of a JSON-valued property, parsed.
async fn wait_json(devices: &Api<MQTTDevice>, name: &str, property: &str, want: Value) {
    eventually_showing(&format!("{name}.{property} = {want}"), WAIT, || async {
        let d = devices.get(name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        let seen: Option<Value> =
            property_field(&status, property, "value").and_then(|v| serde_json::from_str(v).ok());
        (seen.as_ref() == Some(&want))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    })
    .await
}

#[tokio::test]
async fn a_light_by_message_takes_writes_from_the_spec_and_from_mqtt() {
    let namespace = "e2e-mqtt-light";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let light = MqttDevice::start(Options {
        name: "bedroom-light",
        port: broker.port,
        layout: Layout::Message,
        topic: "e2e/home/bedroom/light",
        command_topic: "e2e/home/bedroom/light/set",
        state: json!({
            "switch": false,
            "action": {"gear": "low"},
            "parameter": {"power": 3500, "luminance": 245},
            "colour": {"r": 255, "g": 255, "b": 255},
            "production": {"manufacturer": "Rancher Octopus Fake Device"},
        }),
        interval: 1.0,
        more: vec![],
    })
    .await;

    let name = "bedroom-light";
    let link = mqtt_device::link(
        namespace,
        name,
        json!({
            "protocol": {
                "pattern": "AttributedMessage",
                "client": {"server": broker.url()},
                "message": {"topic": "e2e/home/bedroom/light/:operator", "operator": {"write": "set"}},
                "syncInterval": "1s",
            },
            "properties": [
                {"name": "switch", "type": "boolean", "readOnly": false, "value": true},
                {"name": "gear", "path": "action.gear", "type": "string", "readOnly": false},
                {"name": "power", "path": "parameter.power", "type": "float",
                 "arithmeticOperations": [{"type": "Divide", "value": "1000"}]},
                {"name": "luminance", "path": "parameter.luminance", "type": "int"},
                {"name": "colour", "type": "object", "readOnly": false},
                {"name": "manufacturer", "path": "production.manufacturer", "type": "string",
                 "accessModes": ["ReadOnce"]},
            ],
            "extension": {"mqtt": {
                "client": {"server": broker.url()},
                "message": {"topic": "e2e/mirror/:name/:operator", "operator": {"read": "set"}},
            }},
        }),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<MQTTDevice> = Api::namespaced(client.clone(), namespace);
    let mut mirror = Subscriber::start(broker.port, &format!("e2e/mirror/{name}")).await;
    let mut replies =
        Subscriber::start(broker.port, &format!("e2e/mirror/{name}/set/$reply")).await;
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    wait_connected(&links, name).await;

    // The spec's value reached the device, which says so.
    wait_property(&devices, name, "switch", "true").await;
    wait_field(&devices, name, "power", "operatedValue", "3.5").await;
    wait_property(&devices, name, "luminance", "245").await;
    wait_property(
        &devices,
        name,
        "manufacturer",
        "Rancher Octopus Fake Device",
    )
    .await;
    // The extension mirrors the status.
    mirror
        .next_matching(WAIT, |m| {
            property_field(m, "switch", "value") == Some("true")
        })
        .await;

    // Writes from MQTT, a nested object among them, reach the device.
    mqtt::publish(
        broker.port,
        &format!("e2e/mirror/{name}/set"),
        br#"{"gear": "high", "colour": {"r": 255, "g": 0, "b": 0}}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    wait_property(&devices, name, "gear", "high").await;
    wait_json(&devices, name, "colour", json!({"r": 255, "g": 0, "b": 0})).await;
    // Read-only ones are refused with the reason.
    mqtt::publish(
        broker.port,
        &format!("e2e/mirror/{name}/set"),
        br#"{"power": 1}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["refused"][0]["reason"], "is read-only", "{reply}");

    // A changed spec value is published.
    let patch = json!({"spec": {"template": {"spec": {"properties": [
        {"name": "switch", "type": "boolean", "readOnly": false, "value": false},
    ]}}}});
    let mut full = link.clone();
    full.spec.template.spec.as_mut().unwrap()["properties"][0] =
        patch["spec"]["template"]["spec"]["properties"][0].clone();
    apply(&links, &full).await;
    wait_property(&devices, name, "switch", "false").await;

    // Garbage on the device's topic is named, and the next good message
    // mends it. The simulated light stops first: it republishes its state
    // every second, which on a busy machine could mend the garbage before
    // anyone saw the condition.
    drop(light);
    // What it wrote just before the kill reaches the broker first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    mqtt::publish(broker.port, "e2e/home/bedroom/light", b"{not json").await;
    let bad = wait_reason(&links, name, "DeviceConnected", "False", "BadValue").await;
    assert!(bad.message.contains("is not JSON"), "{}", bad.message);
    mqtt::publish(
        broker.port,
        "e2e/home/bedroom/light",
        br#"{"switch": false, "action": {"gear": "high"}, "parameter": {"power": 3500, "luminance": 245},
             "colour": {"r": 255, "g": 0, "b": 0}, "production": {"manufacturer": "Rancher Octopus Fake Device"}}"#,
    )
    .await;
    wait_reason(&links, name, "DeviceConnected", "True", "Healthy").await;

    delete_links_and_wait(&links, &[name]).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_monitor_by_topic_reports_every_type_and_outlives_a_broker_restart() {
    let namespace = "e2e-mqtt-monitor";
    let (_guard, client) = begin(namespace).await;
    let port = free_port();
    let broker = Broker::start_on(port, &[]).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let _monitor = MqttDevice::start(Options {
        name: "kitchen-monitor",
        port,
        layout: Layout::Topic,
        topic: "e2e/home/status/kitchen/{path}",
        command_topic: "e2e/home/set/kitchen/{path}",
        state: json!({
            "door/state": "open",
            "door/width": 0.9,
            "light/on": true,
            "history": ["open", "close"],
            "production": {"material": "oak"},
            "counter": 1,
        }),
        interval: 1.0,
        more: vec!["--tick".into(), "counter".into()],
    })
    .await;

    let name = "kitchen-monitor";
    let link = mqtt_device::link(
        namespace,
        name,
        json!({
            "protocol": {
                "pattern": "AttributedTopic",
                "client": {"server": format!("tcp://127.0.0.1:{port}")},
                "message": {"topic": "e2e/home/:operator/kitchen/:path",
                            "operator": {"read": "status", "write": "set"}},
                "syncInterval": "1s",
            },
            "properties": [
                {"name": "doorState", "path": "door/state", "type": "string"},
                {"name": "width", "path": "door/width", "type": "float"},
                // Not published by the device: only the test sends it.
                {"name": "gap", "path": "door/gap", "type": "float"},
                {"name": "lightOn", "path": "light/on", "type": "boolean"},
                {"name": "history", "type": "array"},
                {"name": "production", "type": "object"},
                {"name": "counter", "type": "int",
                 "arithmeticOperations": [{"type": "Multiply", "value": "10"}]},
            ],
        }),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<MQTTDevice> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    wait_connected(&links, name).await;
    wait_property(&devices, name, "doorState", "open").await;
    wait_property(&devices, name, "width", "0.9").await;
    wait_property(&devices, name, "lightOn", "true").await;
    wait_json(&devices, name, "history", json!(["open", "close"])).await;
    wait_json(&devices, name, "production", json!({"material": "oak"})).await;
    let counter = || async {
        let d = devices.get(name).await.ok()?;
        let status = serde_json::to_value(d.status).unwrap();
        let value: i64 = property_field(&status, "counter", "value")?.parse().ok()?;
        let operated: f64 = property_field(&status, "counter", "operatedValue")?
            .parse()
            .ok()?;
        Some((value, operated))
    };
    let (first, operated) = eventually_showing("the counter", WAIT, || async {
        counter().await.ok_or_else(String::new)
    })
    .await;
    assert_eq!(operated, first as f64 * 10.0);

    // A value of the wrong type: named, and mended by the next good message
    // (on a topic the device does not publish itself, so the wrong value
    // stands until then however slow the machine is).
    mqtt::publish(port, "e2e/home/status/kitchen/door/gap", b"wide").await;
    let wrong = wait_reason(&links, name, "DeviceConnected", "False", "TypeMismatch").await;
    assert!(
        wrong
            .message
            .contains("property gap: \"wide\" is not a number"),
        "{}",
        wrong.message
    );
    mqtt::publish(port, "e2e/home/status/kitchen/door/gap", b"0.25").await;
    wait_reason(&links, name, "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, name, "gap", "0.25").await;
    wait_property(&devices, name, "width", "0.9").await;

    // The broker goes away and comes back: the connection is lost, made
    // again, and values flow once more.
    broker.stop().await;
    wait_reason(&links, name, "DeviceConnected", "False", "ConnectionLost").await;
    let _broker = Broker::start_on(port, &[]).await;
    wait_reason(&links, name, "DeviceConnected", "True", "Healthy").await;
    let before = counter().await.map(|(v, _)| v).unwrap_or_default();
    eventually_showing("the counter counting again", WAIT, || async {
        match counter().await {
            Some((v, _)) if v > before => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    delete_links_and_wait(&links, &[name]).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_light_over_tls_with_credentials_from_a_secret_and_a_path_it_lacks() {
    let namespace = "e2e-mqtt-secure";
    let (_guard, client) = begin(namespace).await;
    let certs = certificates();
    let dir = certs.path();
    let tls = Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        require_client_cert: false,
    };
    let port = free_port();
    let _broker = Broker::start_configured(
        port,
        &Settings {
            users: &[("plant", "s3cret")],
            tls: Some(tls),
            ..Default::default()
        },
    )
    .await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let _light = MqttDevice::start(Options {
        name: "secure-light",
        port,
        layout: Layout::Message,
        topic: "e2e/secure/light",
        command_topic: "e2e/secure/light/set",
        state: json!({"switch": true, "parameter": {"power": 12.5}}),
        interval: 1.0,
        more: ["--username", "plant", "--password", "s3cret", "--ca"]
            .into_iter()
            .map(String::from)
            .chain([dir.join("ca.pem").display().to_string()])
            .collect(),
    })
    .await;

    // Applied, not created: the test runs twice on one control plane
    // (with the adaptors' shared connections on, then off).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "light-broker"},
            "stringData": {"username": "plant", "password": "s3cret"},
        }),
    )
    .await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    apply(
        &maps,
        &json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "light-ca"},
            "data": {"ca.crt": std::fs::read_to_string(dir.join("ca.pem")).unwrap()},
        }),
    )
    .await;

    let name = "secure-light";
    let spec = |voltage_path: &str| {
        json!({
            "protocol": {
                "pattern": "AttributedMessage",
                "client": {
                    "server": format!("ssl://127.0.0.1:{port}"),
                    "basicAuth": {
                        "usernameRef": {"name": "broker", "item": "username"},
                        "passwordRef": {"name": "broker", "item": "password"},
                    },
                    "tlsConfig": {"caFilePEMRef": {"name": "ca", "item": "ca.crt"}},
                },
                "message": {"topic": "e2e/secure/light"},
                "syncInterval": "1s",
            },
            "properties": [
                {"name": "switch", "type": "boolean"},
                {"name": "power", "path": "parameter.power", "type": "float"},
                {"name": "voltage", "path": voltage_path, "type": "float"},
            ],
        })
    };
    let mut link = mqtt_device::link(namespace, name, spec("parameter.voltage"));
    link.spec.references = serde_json::from_value(json!([
        {"name": "broker", "secret": {"name": "light-broker"}},
        {"name": "ca", "configMap": {"name": "light-ca"}},
    ]))
    .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<MQTTDevice> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");

    // Connected over TLS with the Secret's credentials; its values flow,
    // but a path its messages never have is named on the property and in
    // DeviceConnected.
    let missing = wait_reason(&links, name, "DeviceConnected", "False", "BadValue").await;
    assert!(
        missing.message.contains(
            "property voltage: the device's messages have no value at path parameter.voltage"
        ),
        "{}",
        missing.message
    );
    wait_property(&devices, name, "power", "12.5").await;
    wait_field(
        &devices,
        name,
        "voltage",
        "lastError",
        "the device's messages have no value at path parameter.voltage",
    )
    .await;

    // Pointed at a path that is there, it is healthy.
    link.spec.template.spec = Some(spec("parameter.power"));
    apply(&links, &link).await;
    wait_reason(&links, name, "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, name, "voltage", "12.5").await;

    delete_links_and_wait(&links, &[name]).await;
    operator.stop().await;
}
