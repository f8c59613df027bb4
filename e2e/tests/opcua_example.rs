//! The OPC-UA example (deploy/examples/opcua.yaml) end to end on the control
//! plane, against an asyncua server with a Basic256Sha256 SignAndEncrypt
//! endpoint and a user: the server's clock, a writable int32 and a writable
//! byteString (Octopus's example) arrive on MQTT and on the device's status;
//! the spec's values are written to the server; an MQTT write lands; a
//! write to the read-only clock is refused.

use std::time::Duration;

use devicelink_api::{DeviceLink, opcua::OPCUADevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, eventually_showing,
    mqtt::{self, Subscriber},
    opcua::{OpcuaServer, ServerOptions, wait_value},
    process::{metric_at, start_operator},
    property_field, repo_root, yaml_documents,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_example_watches_the_clock_and_writes_an_int32_and_a_byte_string() {
    let namespace = "e2e-opcua-example";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let mut server = OpcuaServer::start(ServerOptions {
        policies: vec!["Basic256Sha256_SignAndEncrypt"],
        users: vec![("operator", "s3cret")],
        variables: json!([
            {"name": "the.answer", "type": "Int32", "value": 0},
            {"name": "myByteString", "type": "ByteString", "value": ""},
        ]),
        ..Default::default()
    })
    .await;

    // The Secret and ConfigMap the example's comment asks for.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plc-credentials"},
        "stringData": {"username": "operator", "password": "s3cret"},
    }))
    .unwrap();
    let apply = PatchParams::apply("e2e").force();
    secrets
        .patch("plc-credentials", &apply, &Patch::Apply(&secret))
        .await
        .expect("apply the Secret");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plc-server-certificate"},
        "data": {"server.pem": server.cert_pem()},
    }))
    .unwrap();
    maps.patch("plc-server-certificate", &apply, &Patch::Apply(&map))
        .await
        .expect("apply the ConfigMap");

    let mut link = yaml_documents(&repo_root().join("deploy/examples/opcua.yaml")).remove(0);
    link["metadata"]["namespace"] = json!(namespace);
    let spec = &mut link["spec"]["template"]["spec"];
    spec["protocol"]["endpoint"] = json!(server.endpoint());
    spec["extension"]["mqtt"]["client"]["server"] = json!(broker.url());
    let link: DeviceLink = serde_json::from_value(link).expect("the example is a DeviceLink");
    let name = "packaging-line";
    let status_topic = format!("factory/{namespace}/{name}");
    let write_topic = format!("{status_topic}/$write");
    let mut status = Subscriber::start(broker.port, &status_topic).await;
    let mut replies = Subscriber::start(broker.port, &format!("{write_topic}/$reply")).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    // The spec's values reach the server.
    wait_value(&mut server, "the.answer", json!(42)).await;
    wait_value(&mut server, "myByteString", json!(hex("test123"))).await;

    // On MQTT: the clock ticks (one sample a second), the written values show.
    let written = |sample: &Value| {
        property_field(sample, "integer", "value") == Some("42")
            && property_field(sample, "bytes", "value") == Some("test123")
    };
    let first = status.next_matching(WAIT, written).await.payload;
    let clock = property_field(&first, "datetime", "value")
        .expect("the clock")
        .to_string();
    assert_rfc3339_utc(&clock);
    status
        .next_matching(WAIT, |s| {
            written(s) && property_field(s, "datetime", "value").is_some_and(|c| c > clock.as_str())
        })
        .await;

    // A value changed on the server arrives by the subscription.
    server.set("the.answer", json!(-7)).await;
    status
        .next_matching(WAIT, |s| {
            property_field(s, "integer", "value") == Some("-7")
        })
        .await;

    // On the device's status, as written by the adaptor.
    let devices: Api<OPCUADevice> = Api::namespaced(client.clone(), namespace);
    eventually_showing("the device's status", WAIT, || async {
        let d = devices.get(name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(d.status).unwrap();
        let ok = property_field(&status, "integer", "value") == Some("-7")
            && property_field(&status, "bytes", "value") == Some("test123")
            && property_field(&status, "datetime", "value").is_some();
        ok.then_some(()).ok_or(status.to_string())
    })
    .await;

    // Writes from MQTT land; the clock cannot be written, nor can a value
    // that does not fit an int32.
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"integer": 2147483647, "bytes": "hello"}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(server.get("the.answer").await, json!(2147483647));
    assert_eq!(server.get("myByteString").await, json!(hex("hello")));
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"datetime": "2024-01-01T00:00:00Z"}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["refused"][0]["property"], "datetime", "{reply}");
    assert_eq!(reply["refused"][0]["reason"], "is read-only");
    mqtt::publish(broker.port, &write_topic, br#"{"integer": 2147483648}"#).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(server.get("the.answer").await, json!(2147483647));

    // A new value in the spec is written, without a new session.
    let port = kubelet
        .metrics_port("devicelink-adaptor-opcua-edge-worker")
        .expect("the adaptor's metrics port");
    let sessions = metric_at(
        port,
        "devicelink_adaptor_opcua_sessions_total{outcome=\"ok\"}",
    )
    .await
    .expect("sessions on /metrics");
    let mut properties = link.spec.template.spec.as_ref().unwrap()["properties"].clone();
    properties[1]["value"] = json!("43");
    let patch = json!({"spec": {"template": {"spec": {"properties": properties}}}});
    links
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the value");
    wait_value(&mut server, "the.answer", json!(43)).await;
    assert_eq!(
        metric_at(
            port,
            "devicelink_adaptor_opcua_sessions_total{outcome=\"ok\"}"
        )
        .await,
        Some(sessions),
        "a changed value is written in the open session"
    );
    let changes = metric_at(port, "devicelink_adaptor_opcua_data_changes_total")
        .await
        .unwrap();
    assert!(changes >= 5.0, "{changes} data changes");

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// An RFC 3339 time in UTC, as the adaptor shows a DateTime.
fn assert_rfc3339_utc(t: &str) {
    assert!(
        t.len() >= 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t} is not an RFC 3339 UTC time"
    );
}
