//! Messages of real size, on a Modbus device of 300 properties: its status
//! (tens of kilobytes; MQTT clients often stop at 10 KiB) reaches the
//! broker; a write too large, or naming thousands of properties, gets an
//! answer of a few hundred bytes and leaves the connection up; a status
//! larger than an MQTT 5 broker takes is not sent and shows on the device
//! (DeviceConnected MQTTUndelivered, with an Event) until one fits.

use std::time::Duration;

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin,
    broker::Settings,
    create_connected, delete_link_and_wait, device_link, eventually_showing,
    modbus::{ModbusServer, holding},
    mqtt::{self, Subscriber},
    process::{free_port, metric_at, start_operator},
    wait_connected, wait_event, wait_reason,
};
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const POD: &str = "devicelink-adaptor-modbus-edge-worker";

/// A device of `properties` holding registers, each a temperature with a
/// long name (as real tag names are), publishing on `e2e/sizes/<name>`.
fn panel(
    namespace: &str,
    name: &str,
    server: &ModbusServer,
    broker: &str,
    protocol_version: i32,
    properties: usize,
) -> DeviceLink {
    let properties: Vec<Value> = (0..properties)
        .map(|i| {
            json!({"name": format!("zone-{i:03}-supply-air-temperature"), "type": "uint16",
                   "visitor": {"register": "HoldingRegister", "offset": i}})
        })
        .collect();
    device_link(
        namespace,
        name,
        "edge-worker",
        "modbus",
        "ModbusDevice",
        json!({"spec": {
            "parameters": {"syncInterval": "1s"},
            "protocol": {"tcp": {"endpoint": server.endpoint(), "workerID": 1}},
            "properties": properties,
            "extension": {"mqtt": {
                "client": {"server": broker, "protocolVersion": protocol_version},
                "message": {"topic": "e2e/sizes/:name", "qos": 1},
            }},
        }}),
    )
}

/// 300 registers holding 1000, 1001, ...
async fn server() -> ModbusServer {
    let registers: serde_json::Map<String, Value> =
        (0..300).map(|i| (i.to_string(), json!(1000 + i))).collect();
    ModbusServer::tcp(&[1], json!({"1": {"holding": registers}})).await
}

#[tokio::test]
async fn a_status_of_300_properties_reaches_mqtt_and_large_writes_are_answered() {
    let namespace = "e2e-mqtt-sizes";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let device = server().await;
    let _operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let name = "air-handler";
    let topic = format!("e2e/sizes/{name}");
    let write_topic = format!("{topic}/$write");
    let mut status = Subscriber::start(broker.port, &topic).await;
    let mut replies = Subscriber::start(broker.port, &format!("{write_topic}/$reply")).await;
    create_connected(
        &links,
        &panel(namespace, name, &device, &broker.url(), 4, 300),
    )
    .await;

    let sample = status
        .next_matching(WAIT, |s| {
            s["properties"].as_array().is_some_and(|p| p.len() == 300)
        })
        .await
        .payload;
    let size = sample.to_string().len();
    assert!(size > 20 * 1024, "a status of {size} bytes");
    assert_eq!(
        sample["properties"][299]["value"], "1299",
        "{}",
        sample["properties"][299]
    );

    // 100 KiB: refused with an answer, not a dropped connection.
    let filler = "x".repeat(100 * 1024);
    let big = format!(r#"{{"zone-000-supply-air-temperature": "{filler}"}}"#);
    mqtt::publish(broker.port, &write_topic, big.as_bytes()).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], false, "{reply}");
    let reason = reply["refused"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("a write may have at most 65536"), "{reply}");

    // 2,000 names it does not have: an answer that lists ten and counts the rest.
    let unknown: serde_json::Map<String, Value> = (0..2000)
        .map(|i| (format!("no-such-{i:04}"), json!(i)))
        .collect();
    mqtt::publish(
        broker.port,
        &write_topic,
        Value::Object(unknown).to_string().as_bytes(),
    )
    .await;
    let reply = replies.next(WAIT).await;
    let text = reply.payload.to_string();
    assert!(
        text.len() < 2048,
        "an answer of {} bytes: {text}",
        text.len()
    );
    let refused = reply.payload["refused"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(refused.len(), 11, "{text}");
    assert_eq!(refused[10]["reason"], "and 1990 more refused", "{text}");

    // The same connection takes a good write.
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"zone-007-supply-air-temperature": 42}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(holding(&mut device.client(1).await, 7, 1).await, [42]);
    status
        .next_matching(WAIT, |s| s["properties"][7]["value"] == "42")
        .await;
    let metrics = kubelet
        .metrics_port(POD)
        .expect("the adaptor serves metrics");
    assert_eq!(
        metric_at(metrics, "devicelink_adaptor_mqtt_reconnects_total").await,
        Some(0.0),
        "the connection to the broker never dropped"
    );
    delete_link_and_wait(&links, name).await;
}

#[tokio::test]
async fn a_status_larger_than_an_mqtt_5_broker_takes_shows_on_the_device_until_one_fits() {
    let namespace = "e2e-mqtt-sizes-limit";
    let (_guard, client) = begin(namespace).await;
    // The broker says its limit to MQTT 5 clients when they connect.
    let broker = Broker::start_configured(
        free_port(),
        &Settings {
            max_packet_size: Some(4096),
            ..Default::default()
        },
    )
    .await;
    let device = server().await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    let name = "big-panel";
    let mut status = Subscriber::start(broker.port, &format!("e2e/sizes/{name}")).await;
    let link = panel(namespace, name, &device, &broker.url(), 5, 300);
    links
        .create(&Default::default(), &link)
        .await
        .expect("create the DeviceLink");

    let condition = wait_reason(&links, name, "DeviceConnected", "False", "MQTTUndelivered").await;
    assert!(
        condition
            .message
            .contains("the broker takes packets of at most 4096 bytes"),
        "{}",
        condition.message
    );
    wait_event(&client, namespace, name, "MQTTUndelivered", "Warning").await;
    eventually_showing("the device's status to say why", WAIT, || async {
        let d = devices.get(name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        let mqtt = &status["extension"]["mqtt"];
        (mqtt["connected"] == true && mqtt["undelivered"].is_string())
            .then_some(())
            .ok_or(mqtt.to_string())
    })
    .await;
    assert!(
        status.try_next(Duration::from_secs(3)).await.is_none(),
        "nothing over the limit was sent"
    );

    // Ten properties fit: delivered, and Healthy again.
    let small = panel(namespace, name, &device, &broker.url(), 5, 10);
    apply(&links, &small).await;
    let sample = status.next(WAIT).await.payload;
    assert_eq!(
        sample["properties"].as_array().map(Vec::len),
        Some(10),
        "{sample}"
    );
    wait_connected(&links, name).await;
    delete_link_and_wait(&links, name).await;
}
