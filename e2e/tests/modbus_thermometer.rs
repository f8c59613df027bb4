//! The thermometer example (deploy/examples/modbus-thermometer.yaml) end to
//! end on the control plane, against a pymodbus device: the temperature in
//! tenths of a kelvin arrives in degrees Celsius on the device's status and
//! on MQTT; the spec's limit is written to its register; a limit written
//! from MQTT lands in the register; a write to a read-only property is
//! refused with the reason.

use std::time::Duration;

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, eventually_showing,
    modbus::{ModbusServer, coils, holding},
    mqtt::{self, Subscriber},
    process::{metric_at, start_operator},
    property_field, repo_root, yaml_documents,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_thermometer_example_reports_celsius_and_takes_a_limit_from_mqtt() {
    let namespace = "e2e-modbus-thermometer";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    // 296.5 K, 45.5 %, the alarm on; the limit register starts at 0.
    let device = ModbusServer::tcp(
        &[1],
        json!({"1": {"input": {"0": 2965, "1": 455}, "coils": {"0": true}}}),
    )
    .await;

    let mut link =
        yaml_documents(&repo_root().join("deploy/examples/modbus-thermometer.yaml")).remove(0);
    link["metadata"]["namespace"] = json!(namespace);
    let spec = &mut link["spec"]["template"]["spec"];
    spec["protocol"]["tcp"]["endpoint"] = json!(device.endpoint());
    spec["extension"]["mqtt"]["client"]["server"] = json!(broker.url());
    spec["parameters"]["syncInterval"] = json!("1s");
    let link: DeviceLink = serde_json::from_value(link).expect("the example is a DeviceLink");
    let name = "thermometer";
    let status_topic = format!("cattle.io/octopus/{namespace}/{name}");
    let write_topic = format!("{status_topic}/set");
    let mut status = Subscriber::start(broker.port, &status_topic).await;
    let mut replies = Subscriber::start(broker.port, &format!("{write_topic}/$reply")).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    // On MQTT: Celsius from kelvin tenths, the raw value beside it.
    let sample = status.next(WAIT).await.payload;
    assert_eq!(
        property_field(&sample, "temperature", "value"),
        Some("2965"),
        "{sample}"
    );
    assert_eq!(
        property_field(&sample, "temperature", "operatedValue"),
        Some("23.35")
    );
    assert_eq!(
        property_field(&sample, "humidity", "operatedValue"),
        Some("45.5")
    );
    assert_eq!(
        property_field(&sample, "high-temperature-alarm", "value"),
        Some("true")
    );

    // The spec's limit (30) was written to holding register 0.
    let mut raw = device.client(1).await;
    eventually_showing("the spec's limit in the register", WAIT, || async {
        let held = holding(&mut device.client(1).await, 0, 1).await;
        (held == [30]).then_some(()).ok_or(format!("{held:?}"))
    })
    .await;

    // On the device's status, as written by the adaptor.
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    eventually_showing("the device's status", WAIT, || async {
        let d = devices.get(name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        let ok = property_field(&status, "temperature", "operatedValue") == Some("23.35")
            && property_field(&status, "high-temperature-limit", "value") == Some("30")
            && status["properties"][0]["updatedAt"].is_string();
        ok.then_some(()).ok_or(status.to_string())
    })
    .await;

    // A limit and an alarm reset from MQTT land in the registers.
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"high-temperature-limit": 35, "high-temperature-alarm": false}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(holding(&mut raw, 0, 1).await, [35]);
    assert_eq!(coils(&mut raw, 0, 1).await, [false]);
    let sample = status
        .next_matching(WAIT, |s| {
            property_field(s, "high-temperature-limit", "value") == Some("35")
        })
        .await
        .payload;
    assert_eq!(
        property_field(&sample, "high-temperature-alarm", "value"),
        Some("false")
    );

    // The sensor's registers cannot be written; nor can a limit that does
    // not fit 16 bits.
    mqtt::publish(broker.port, &write_topic, br#"{"temperature": 0}"#).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["refused"][0]["property"], "temperature", "{reply}");
    assert_eq!(reply["refused"][0]["reason"], "is read-only");
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"high-temperature-limit": 99999}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(holding(&mut raw, 0, 1).await, [35]);

    // A new value in the spec is written too.
    let mut properties = link.spec.template.spec.as_ref().unwrap()["properties"].clone();
    properties[2]["value"] = json!("28");
    let patch = json!({"spec": {"template": {"spec": {"properties": properties}}}});
    links
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the limit");
    eventually_showing("the new spec limit in the register", WAIT, || async {
        let held = holding(&mut device.client(1).await, 0, 1).await;
        (held == [28]).then_some(()).ok_or(format!("{held:?}"))
    })
    .await;

    // The adaptor counts its requests: one read covers the two input
    // registers, one the holding register, one the coil, every poll.
    let port = kubelet
        .metrics_port("devicelink-adaptor-modbus-edge-worker")
        .expect("the adaptor's metrics port");
    let metric = |name: &'static str| async move {
        metric_at(port, name)
            .await
            .unwrap_or_else(|| panic!("{name} on /metrics"))
    };
    let polls = metric("devicelink_adaptor_modbus_polls_total").await;
    let reads =
        metric("devicelink_adaptor_modbus_requests_total{operation=\"read\",outcome=\"ok\"}").await;
    assert!(polls >= 3.0, "{polls} polls");
    assert!(reads <= 3.0 * polls, "{reads} reads in {polls} polls");
    let writes =
        metric("devicelink_adaptor_modbus_requests_total{operation=\"write\",outcome=\"ok\"}")
            .await;
    assert!(
        writes >= 4.0,
        "the spec's limit twice, the MQTT limit and alarm: {writes}"
    );

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
