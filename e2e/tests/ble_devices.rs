//! BLE devices (BluetoothDevice) end to end against BlueZ's D-Bus API as
//! BlueZoo emulates it, with peripherals that advertise and serve GATT
//! (`e2e/devices/ble_peripheral.py`): the adaptor finds them by name or
//! address, reads, subscribes to notifications and writes, as a BLE central
//! does through BlueZ on a real node.
//!
//! Octopus's own thermometer sample, unchanged; the example's thermometer
//! and lamp on MQTT with writes from the spec and from MQTT; a device that
//! is absent and then appears, a failing read and a missing characteristic
//! while another device keeps publishing; a link that drops and is made
//! again.

use std::time::Duration;

use devicelink_api::{DeviceLink, ble::BluetoothDevice};
use devicelink_e2e::{
    Broker, apply, begin,
    ble::{Ble, Bluezoo, Peripheral, peripheral_config},
    delete_links_and_wait, device_link, eventually_showing,
    mqtt::{self, Subscriber},
    property_field, repo_root, wait_connected, wait_event, wait_property, wait_reason,
    yaml_documents,
};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// A full UUID from a 16-bit one.
fn short(uuid16: &str) -> String {
    format!("0000{}-0000-1000-8000-00805f9b34fb", uuid16.to_lowercase())
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

const TEMPERATURE: &str = "226caa55-6476-4566-7562-66734470666d";
const MESSAGE: &str = "226cbb55-6476-4566-7562-66734470666d";
const HUMIDITY: &str = "f000aa03-0451-4000-b000-000000000000";
const POWER: &str = "f000aa01-0451-4000-b000-000000000001";
const BRIGHTNESS: &str = "f000aa02-0451-4000-b000-000000000001";

/// A Xiaomi-like thermometer (`e2e/devices/ble-thermometer.json`) with
/// what the example and Octopus's sample read: model, battery (0x5a),
/// temperature in hundredths (0x0834 = 2100 and 0x083e = 2110, notified
/// twice a second), a writable display message, the raw "data" text, a
/// humidity sensor (0x16c0: >> 2 = 1456, x 0.03125 = 45.5) and a power
/// switch.
fn thermometer() -> Value {
    peripheral_config("ble-thermometer.json")
}

/// A lamp (`e2e/devices/ble-lamp.json`): power (0) and brightness (100).
fn lamp() -> Value {
    peripheral_config("ble-lamp.json")
}

fn octopus_sample(name: &str, namespace: &str) -> DeviceLink {
    let mut link = yaml_documents(&repo_root().join("e2e/testdata/octopus-fields.yaml"))
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the sample {name}"));
    link["metadata"]["namespace"] = json!(namespace);
    serde_json::from_value(link).expect("the sample is a DeviceLink")
}

/// Waits for a property's field in the device's status.
async fn wait_field(
    devices: &Api<BluetoothDevice>,
    name: &str,
    property: &str,
    field: &str,
    want: &[&str],
) {
    eventually_showing(
        &format!("{name}.{property}.{field} in {want:?}"),
        WAIT,
        || async {
            let d = devices.get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(d.status).unwrap();
            let seen = property_field(&status, property, field);
            seen.filter(|s| want.contains(s))
                .map(|_| ())
                .ok_or(format!("{seen:?}"))
        },
    )
    .await
}

#[tokio::test]
async fn octopus_thermometer_sample_runs_unchanged() {
    let namespace = "e2e-ble-octopus";
    let (_guard, client) = begin(namespace).await;
    let ble = Ble::start("octopus", &client, 1).await;
    let mut device = Peripheral::start(&ble.bus, "octopus-thermometer", 1, 1, &thermometer()).await;

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<BluetoothDevice> = Api::namespaced(client.clone(), namespace);
    let link = octopus_sample("octopus-ble-sensor", namespace);
    let name = "octopus-ble-sensor";
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create the sample");
    wait_connected(&links, name).await;

    // NotifyOnly without a type: the notified bytes, in hex.
    let data = [hex("T=21.0 H=45.5\0"), hex("T=21.1 H=45.5\0")];
    wait_field(&devices, name, "data", "value", &[&data[0], &data[1]]).await;
    // The converter: bytes 1 then 0, shifted right by 2, times 0.03125.
    wait_property(&devices, name, "humidity", "1456").await;
    wait_field(&devices, name, "humidity", "operatedValue", &["45.5"]).await;
    // defaultValue is written on connecting, and read back by its name.
    device.wait_written(POWER, "00").await;
    wait_property(&devices, name, "power-enabled", "OFF").await;

    // The device changes a value: the next read shows it.
    device.set(HUMIDITY, "0019").await; // 0x1900 >> 2 = 1600; x 0.03125 = 50
    wait_field(&devices, name, "humidity", "operatedValue", &["50"]).await;

    // A value in the spec is written by its dataWrite name.
    let mut with_value = link.clone();
    with_value.spec.template.spec.as_mut().unwrap()["properties"][2]["value"] = json!("ON");
    apply(&links, &with_value).await;
    device.wait_written(POWER, "01").await;
    wait_property(&devices, name, "power-enabled", "ON").await;
    delete_links_and_wait(&links, &[name]).await;
    drop(ble);
}

#[tokio::test]
async fn the_example_thermometer_and_lamp_publish_to_mqtt_and_take_writes() {
    let namespace = "e2e-ble-example";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let ble = Ble::start("example", &client, 2).await;
    let thermometer =
        Peripheral::start(&ble.bus, "example-thermometer", 1, 1, &thermometer()).await;
    let mut lamp = Peripheral::start(&ble.bus, "example-lamp", 2, 1, &lamp()).await;

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<BluetoothDevice> = Api::namespaced(client.clone(), namespace);
    let topic = |name: &str| format!("cattle.io/octopus/{namespace}/{name}");
    let mut thermometer_status = Subscriber::start(broker.port, &topic("xiaomi-thermometer")).await;
    let mut lamp_status = Subscriber::start(broker.port, &topic("desk-lamp")).await;
    let lamp_write = format!("{}/$write", topic("desk-lamp"));
    let mut replies = Subscriber::start(broker.port, &format!("{lamp_write}/$reply")).await;
    for mut link in yaml_documents(&repo_root().join("deploy/examples/ble.yaml")) {
        link["metadata"]["namespace"] = json!(namespace);
        link["spec"]["template"]["spec"]["extension"]["mqtt"]["client"]["server"] =
            json!(broker.url());
        let link: DeviceLink = serde_json::from_value(link).expect("the example is a DeviceLink");
        links
            .create(&PostParams::default(), &link)
            .await
            .expect("create the example");
    }
    wait_connected(&links, "xiaomi-thermometer").await;
    wait_connected(&links, "desk-lamp").await;

    // The thermometer: read once, read, notified, written (and notified back).
    let name = "xiaomi-thermometer";
    wait_property(&devices, name, "model", "MJ_HT_V1").await;
    wait_property(&devices, name, "battery", "90").await;
    wait_field(
        &devices,
        name,
        "temperature",
        "operatedValue",
        &["21", "21.1"],
    )
    .await;
    thermometer.wait_written(MESSAGE, &hex("hello")).await;
    wait_property(&devices, name, "message", "hello").await;
    // Notifications reach MQTT as they come: both temperatures are seen.
    for want in ["21", "21.1"] {
        thermometer_status
            .next_matching(WAIT, |m| {
                property_field(m, "temperature", "operatedValue") == Some(want)
            })
            .await;
    }

    // The lamp: defaultValue and the spec's brightness written on connecting.
    let name = "desk-lamp";
    lamp.wait_written(POWER, "00").await;
    lamp.wait_written(BRIGHTNESS, "50").await;
    wait_property(&devices, name, "power", "OFF").await;
    wait_property(&devices, name, "brightness", "80").await;
    // A write from MQTT, by dataWrite name, reaches the lamp and is read back.
    mqtt::publish(broker.port, &lamp_write, br#"{"power": "ON"}"#).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    lamp.wait_written(POWER, "01").await;
    wait_property(&devices, name, "power", "ON").await;
    lamp_status
        .next_matching(WAIT, |m| property_field(m, "power", "value") == Some("ON"))
        .await;
    // A name dataWrite does not have is refused, saying which it has.
    mqtt::publish(broker.port, &lamp_write, br#"{"power": "HALF"}"#).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], false, "{reply}");
    let reason = reply["refused"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("OFF") && reason.contains("ON"), "{reply}");
    // Changed on the device (a wall switch): the next read shows it.
    lamp.set(BRIGHTNESS, "14").await;
    wait_property(&devices, name, "brightness", "20").await;

    delete_links_and_wait(&links, &["xiaomi-thermometer", "desk-lamp"]).await;
    drop(ble);
}

#[tokio::test]
async fn absent_failing_and_incomplete_devices_do_not_hold_back_another() {
    let namespace = "e2e-ble-trouble";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let ble = Ble::start("trouble", &client, 2).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<BluetoothDevice> = Api::namespaced(client.clone(), namespace);

    // Octopus's older fields (protocol name), for a device not there yet.
    let absent = "octopus-ble-older-protocol";
    links
        .create(&PostParams::default(), &octopus_sample(absent, namespace))
        .await
        .expect("create the sample");
    let condition = wait_reason(&links, absent, "DeviceConnected", "False", "NotFound").await;
    assert!(condition.message.contains("MJ_HT_V1"), "{condition:?}");
    wait_event(&client, namespace, absent, "NotFound", "Warning").await;

    // A meter found by its address (in lower case), with a characteristic
    // it does not have.
    let meter_name = "meter";
    let meter_config = json!({"name": "METER", "services": [
        {"uuid": short("180F"), "characteristics": [
            {"uuid": short("2A19"), "flags": ["read"], "value": "0a"}]}]});
    let mut meter = Peripheral::start(&ble.bus, "trouble-meter", 2, 1, &meter_config).await;
    let link = device_link(
        namespace,
        meter_name,
        "edge-worker",
        "ble",
        "BluetoothDevice",
        json!({"spec": {
            "protocol": {"endpoint": Bluezoo::address(2).to_lowercase(), "syncInterval": "1s"},
            "properties": [
                {"name": "level", "type": "uint8", "accessModes": ["ReadMany"], "visitor": {"characteristic": "2A19"}},
                {"name": "pressure", "type": "uint16", "accessModes": ["ReadMany"], "visitor": {"characteristic": "2A6D"}},
            ],
            "extension": {"mqtt": {"client": {"server": broker.url()}, "message": {"topic": "e2e/ble/:name"}}},
        }}),
    );
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create the meter");
    let condition = wait_reason(
        &links,
        meter_name,
        "DeviceConnected",
        "False",
        "CharacteristicMissing",
    )
    .await;
    assert!(
        condition
            .message
            .contains("00002a6d-0000-1000-8000-00805f9b34fb"),
        "{condition:?}"
    );
    wait_property(&devices, meter_name, "level", "10").await;

    // The absent device appears.
    let mut thermometer =
        Peripheral::start(&ble.bus, "trouble-thermometer", 1, 1, &thermometer()).await;
    wait_reason(&links, absent, "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, absent, "battery", "5a").await;

    // Its reads fail; the meter keeps publishing meanwhile.
    thermometer.fail_reads(&short("2A19"), true).await;
    let condition = wait_reason(&links, absent, "DeviceConnected", "False", "ReadFailed").await;
    assert!(
        condition.message.contains("battery") && condition.message.contains("simulated"),
        "{condition:?}"
    );
    let mut published = Subscriber::start(broker.port, &format!("e2e/ble/{meter_name}")).await;
    meter.set(&short("2A19"), "3c").await;
    published
        .next_matching(WAIT, |m| property_field(m, "level", "value") == Some("60"))
        .await;
    // Reads work again.
    thermometer.fail_reads(&short("2A19"), false).await;
    wait_reason(&links, absent, "DeviceConnected", "True", "Healthy").await;

    delete_links_and_wait(&links, &[absent, meter_name]).await;
    drop(ble);
}

#[tokio::test]
async fn a_dropped_link_is_made_again_with_its_subscriptions() {
    let namespace = "e2e-ble-drop";
    let (_guard, client) = begin(namespace).await;
    let mut ble = Ble::start("drop", &client, 1).await;
    let config = thermometer();
    let device = Peripheral::start(&ble.bus, "drop-thermometer", 1, 1, &config).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<BluetoothDevice> = Api::namespaced(client.clone(), namespace);
    let name = "thermometer";
    let link = device_link(
        namespace,
        name,
        "edge-worker",
        "ble",
        "BluetoothDevice",
        json!({"spec": {
            "protocol": {"endpoint": "mj_ht_v1", "syncInterval": "1s", "maxReconnectInterval": "2s"},
            "properties": [
                {"name": "battery", "type": "uint8", "accessModes": ["ReadMany"], "visitor": {"characteristic": "2A19"}},
                {"name": "temperature", "type": "int16", "accessModes": ["Notify"],
                 "visitor": {"characteristic": TEMPERATURE,
                             "arithmeticOperations": [{"type": "Divide", "value": "100"}]}},
            ],
        }}),
    );
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create the thermometer");
    wait_connected(&links, name).await;
    wait_field(
        &devices,
        name,
        "temperature",
        "operatedValue",
        &["21", "21.1"],
    )
    .await;

    // The link drops: BlueZ and the peripheral go away.
    drop(device);
    ble.zoo.kill().await;
    wait_event(&client, namespace, name, "ConnectionLost", "Warning").await;
    wait_condition_false(&links, name).await;

    // They come back with other values: found, connected and subscribed again.
    ble.zoo.restart();
    let mut config = config;
    config["services"][1]["characteristics"][0]["value"] = json!("4b");
    config["services"][2]["characteristics"][0]["notify"] = json!(["5208"]);
    let _device = Peripheral::start(&ble.bus, "drop-thermometer-again", 1, 1, &config).await;
    wait_reason(&links, name, "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, name, "battery", "75").await;
    wait_field(&devices, name, "temperature", "operatedValue", &["21.3"]).await;

    delete_links_and_wait(&links, &[name]).await;
    drop(ble);
}

/// Waits until DeviceConnected is False, for whatever reason.
async fn wait_condition_false(links: &Api<DeviceLink>, name: &str) {
    devicelink_e2e::wait_condition(links, name, "DeviceConnected", "False").await;
}
