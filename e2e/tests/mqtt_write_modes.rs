//! Writes from MQTT follow a property's access modes, on a Modbus device
//! (a pymodbus server) through the operator and the adaptor:
//! - `WriteOnce` without a spec value takes one write from MQTT, also
//!   across an adaptor crash, until the property's spec changes;
//! - `WriteOnce` or `WriteMany` with a spec value: the spec's value holds,
//!   and writes from MQTT are refused with why;
//! - no access modes: every write is applied, and the status says that
//!   the property holds the MQTT value, not its spec's, until the spec
//!   changes.

use std::time::Duration;

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, eventually_showing,
    modbus::{ModbusServer, device_with_writes, holding},
    mqtt::{self, Subscriber},
    process::start_operator,
    property_field,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ADAPTOR: &str = "devicelink-adaptor-modbus-edge-worker";

fn register(name: &str, offset: u16, modes: Value, value: Option<&str>) -> Value {
    let mut p = json!({"name": name, "type": "uint16", "accessModes": modes,
        "visitor": {"register": "HoldingRegister", "offset": offset}});
    if modes.as_array().is_some_and(Vec::is_empty) {
        p.as_object_mut().unwrap().remove("accessModes");
    }
    if let Some(v) = value {
        p["value"] = json!(v);
    }
    p
}

fn properties() -> Vec<Value> {
    vec![
        register("setpoint", 0, json!(["ReadMany", "WriteOnce"]), None),
        register(
            "calibration",
            1,
            json!(["ReadMany", "WriteOnce"]),
            Some("5"),
        ),
        register("target", 2, json!(["ReadMany", "WriteMany"]), Some("7")),
        register("limit", 3, json!([]), Some("30")),
    ]
}

fn panel(namespace: &str, endpoint: &str, broker: &str, properties: Vec<Value>) -> DeviceLink {
    device_with_writes(
        namespace,
        "panel",
        endpoint,
        broker,
        "e2e/modes",
        Value::Array(properties),
    )
}

/// The device's status once `check` holds for it.
async fn status_where(
    devices: &Api<ModbusDevice>,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually_showing(what, WAIT, || async {
        let d = devices.get("panel").await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        if check(&status) {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await
}

/// Publishes a write and returns its answer.
async fn write(port: u16, topic: &str, replies: &mut Subscriber, payload: &str) -> Value {
    mqtt::publish(port, topic, payload.as_bytes()).await;
    replies.next(WAIT).await.payload
}

fn mqtt_write<'a>(status: &'a Value, property: &str) -> Option<&'a Value> {
    status["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == property)?
        .get("mqttWrite")
}

#[tokio::test]
async fn writes_from_mqtt_follow_write_once_write_many_and_say_when_they_override_the_spec() {
    let namespace = "e2e-mqtt-write-modes";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let device = ModbusServer::tcp(&[1], json!({"1": {"holding": {"0": 0}}})).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    create_connected(
        &links,
        &panel(namespace, &device.endpoint(), &broker.url(), properties()),
    )
    .await;
    // The status names the topic writes are taken on.
    let status = status_where(&devices, "the write topic in the status", |s| {
        s.pointer("/extension/mqtt/writeTopic").is_some()
    })
    .await;
    let write_topic = "e2e/modes/panel/set".to_string();
    assert_eq!(
        status["extension"]["mqtt"]["writeTopic"],
        write_topic.as_str()
    );
    let mut replies = Subscriber::start(broker.port, &format!("{write_topic}/$reply")).await;
    let mut raw = device.client(1).await;
    eventually_showing("the spec values in the registers", WAIT, || async {
        let held = holding(&mut device.client(1).await, 0, 4).await;
        (held == [0, 5, 7, 30])
            .then_some(())
            .ok_or(format!("{held:?}"))
    })
    .await;
    let port = broker.port;

    // WriteOnce, no spec value: the first write lands, the second is refused.
    let reply = write(port, &write_topic, &mut replies, r#"{"setpoint": 21}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(holding(&mut raw, 0, 1).await, [21]);
    let status = status_where(&devices, "setpoint's MQTT write in the status", |s| {
        mqtt_write(s, "setpoint").is_some()
    })
    .await;
    let written = mqtt_write(&status, "setpoint").unwrap();
    assert_eq!(written["value"], "21", "{status}");
    let at = written["at"].as_str().unwrap().to_string();
    let reply = write(port, &write_topic, &mut replies, r#"{"setpoint": 22}"#).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["refused"][0]["property"], "setpoint");
    assert_eq!(
        reply["refused"][0]["reason"],
        format!(
            "is WriteOnce and was written from MQTT at {at} (21); change its spec to write it again"
        )
    );
    assert_eq!(holding(&mut raw, 0, 1).await, [21]);

    // Once means once across a crash of the adaptor too: the status keeps it.
    assert!(kubelet.crash_and_restart(ADAPTOR).await);
    // Until the restarted adaptor subscribes, a write goes unanswered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let reply = loop {
        mqtt::publish(port, &write_topic, br#"{"setpoint": 23}"#).await;
        if let Some(r) = replies.try_next(Duration::from_secs(2)).await {
            break r.payload;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted adaptor never answered a write"
        );
    };
    assert!(
        reply["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("is WriteOnce and was written from MQTT"),
        "{reply}"
    );
    assert_eq!(holding(&mut raw, 0, 1).await, [21]);

    // A spec value holds: WriteOnce wrote it once, WriteMany writes it
    // every poll; MQTT is told so and nothing is written.
    let reply = write(
        port,
        &write_topic,
        &mut replies,
        r#"{"calibration": 9, "target": 9}"#,
    )
    .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(
        reply["refused"],
        json!([
            {"property": "calibration", "reason": "is WriteOnce and was written with its spec value; change the spec's value to write it again"},
            {"property": "target", "reason": "is WriteMany with a spec value, which is written every sync and would undo this write; change the spec's value instead"},
        ])
    );
    assert_eq!(holding(&mut raw, 1, 2).await, [5, 7]);

    // No access modes: MQTT may override the spec's value, and the status
    // says that it does.
    let reply = write(port, &write_topic, &mut replies, r#"{"limit": 35}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(holding(&mut raw, 3, 1).await, [35]);
    let status = status_where(&devices, "limit's MQTT write in the status", |s| {
        mqtt_write(s, "limit").is_some_and(|w| w["value"] == "35")
            && property_field(s, "limit", "value") == Some("35")
    })
    .await;
    assert_eq!(
        status["properties"][3]["accessModes"],
        json!(["ReadMany", "WriteMany"]),
        "{status}"
    );

    // A spec change: the new limit is written and holds; setpoint's spec
    // changed too (a description), so it may be written once again.
    let mut changed = properties();
    changed[0]["description"] = json!("The temperature to hold, in degrees Celsius.");
    changed[3]["value"] = json!("28");
    let patch = json!({"spec": {"template": {"spec": {"properties": changed}}}});
    links
        .patch("panel", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the properties");
    status_where(&devices, "the spec's values holding again", |s| {
        mqtt_write(s, "limit").is_none()
            && mqtt_write(s, "setpoint").is_none()
            && property_field(s, "limit", "value") == Some("28")
    })
    .await;
    let reply = write(port, &write_topic, &mut replies, r#"{"setpoint": 24}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(holding(&mut raw, 0, 1).await, [24]);

    delete_link_and_wait(&links, "panel").await;
    operator.stop().await;
}
