//! Every data type of an OPCUADevice, read through the subscription and
//! written from the spec and from MQTT, against asyncua variables of the
//! matching built-in types. The server's own view of each variable is what
//! the writes are checked against.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, device_link,
    mqtt::{self, Subscriber},
    opcua::{OpcuaServer, ServerOptions, wait_value},
    process::start_operator,
    property_field,
};
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// (property type, asyncua type, initial value on the server as the
/// control line gives it, as the status shows it, a value to write over
/// MQTT, as the server then holds it).
fn cases() -> Vec<(
    &'static str,
    &'static str,
    Value,
    &'static str,
    Value,
    Value,
)> {
    vec![
        (
            "float",
            "Float",
            json!(1.5),
            "1.5",
            json!(-2.25),
            json!(-2.25),
        ),
        (
            "double",
            "Double",
            json!(-0.125),
            "-0.125",
            json!(6.02e23),
            json!(6.02e23),
        ),
        (
            "int64",
            "Int64",
            json!(i64::MIN),
            "-9223372036854775808",
            json!(i64::MAX),
            json!(i64::MAX),
        ),
        (
            "int32",
            "Int32",
            json!(-2147483648),
            "-2147483648",
            json!(2147483647),
            json!(2147483647),
        ),
        (
            "int16",
            "Int16",
            json!(-32768),
            "-32768",
            json!(32767),
            json!(32767),
        ),
        (
            "uint64",
            "UInt64",
            json!(u64::MAX),
            "18446744073709551615",
            json!(1),
            json!(1),
        ),
        (
            "uint32",
            "UInt32",
            json!(4294967295u32),
            "4294967295",
            json!(0),
            json!(0),
        ),
        (
            "uint16",
            "UInt16",
            json!(65535),
            "65535",
            json!(12345),
            json!(12345),
        ),
        (
            "string",
            "String",
            json!("grüße"),
            "grüße",
            json!("line 2"),
            json!("line 2"),
        ),
        (
            "boolean",
            "Boolean",
            json!(true),
            "true",
            json!(false),
            json!(false),
        ),
        (
            "byteString",
            "ByteString",
            json!("74657374"),
            "test",
            json!("bytes!"),
            json!("627974657321"),
        ),
        (
            "datetime",
            "DateTime",
            json!("2024-05-01T12:00:00+00:00"),
            "2024-05-01T12:00:00Z",
            json!("2025-12-31T23:59:59.5Z"),
            json!("2025-12-31T23:59:59.500000+00:00"),
        ),
    ]
}

#[tokio::test]
async fn every_type_is_read_and_written() {
    let namespace = "e2e-opcua-types";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let mut variables: Vec<Value> = cases()
        .iter()
        .map(|(t, ua, initial, ..)| json!({"name": format!("v.{t}"), "type": ua, "value": initial}))
        .collect();
    // A variable for each spec write, and one in hex for the raw bytes.
    variables.push(json!({"name": "spec.int16", "type": "Int16", "value": 0}));
    variables.push(
        json!({"name": "spec.datetime", "type": "DateTime", "value": "2000-01-01T00:00:00+00:00"}),
    );
    variables.push(json!({"name": "raw", "type": "ByteString", "value": "00ff10"}));
    let mut server = OpcuaServer::start(ServerOptions {
        variables: Value::Array(variables),
        ..Default::default()
    })
    .await;

    let mut properties: Vec<Value> = cases()
        .iter()
        .map(
            |(t, ..)| json!({"name": t, "type": t, "visitor": {"nodeID": format!("ns=2;s=v.{t}")}}),
        )
        .collect();
    properties.push(json!({"name": "spec-int16", "type": "int16", "value": "-1234", "visitor": {"nodeID": "ns=2;s=spec.int16"}}));
    properties.push(json!({"name": "spec-datetime", "type": "datetime", "value": "2030-01-02T03:04:05Z", "visitor": {"nodeID": "ns=2;s=spec.datetime"}}));
    properties
        .push(json!({"name": "raw", "type": "hexString", "visitor": {"nodeID": "ns=2;s=raw"}}));
    // Arithmetic on a value read: the double per second, per minute.
    properties.push(json!({"name": "per-minute", "type": "double", "readOnly": true,
        "visitor": {"nodeID": "ns=2;s=v.double", "arithmeticOperations": [{"type": "Multiply", "value": "60"}]}}));
    let name = "all-types";
    let link: DeviceLink = device_link(
        namespace,
        name,
        "edge-worker",
        "opcua",
        "OPCUADevice",
        json!({"spec": {
            "extension": {"mqtt": {"client": {"server": broker.url()}, "message": {"topic": "types/:name"}}},
            "parameters": {"syncInterval": "200ms"},
            "protocol": {"endpoint": server.endpoint()},
            "properties": properties,
        }}),
    );
    let mut status = Subscriber::start(broker.port, "types/all-types").await;
    let mut replies = Subscriber::start(broker.port, "types/all-types/$write/$reply").await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    // Reads: each variable's initial value, as its type shows it.
    let wanted = |sample: &Value| {
        cases()
            .iter()
            .all(|(t, _, _, shown, ..)| property_field(sample, t, "value") == Some(*shown))
            && property_field(sample, "raw", "value") == Some("00ff10")
            && property_field(sample, "per-minute", "operatedValue") == Some("-7.5")
    };
    status.next_matching(WAIT, wanted).await;

    // Spec writes: encoded to the node's type.
    wait_value(&mut server, "spec.int16", json!(-1234)).await;
    wait_value(
        &mut server,
        "spec.datetime",
        json!("2030-01-02T03:04:05+00:00"),
    )
    .await;

    // MQTT writes: every type at once; the server holds each.
    let mut write = serde_json::Map::new();
    for (t, _, _, _, value, _) in cases() {
        write.insert(t.to_string(), value);
    }
    write.insert("raw".into(), json!("cafe"));
    mqtt::publish(
        broker.port,
        "types/all-types/$write",
        Value::Object(write).to_string().as_bytes(),
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    for (t, _, _, _, _, held) in cases() {
        assert_eq!(server.get(&format!("v.{t}")).await, held, "{t}");
    }
    assert_eq!(server.get("raw").await, json!("cafe"));

    // ...and the subscription brings them back.
    status
        .next_matching(WAIT, |s| {
            property_field(s, "int16", "value") == Some("32767")
                && property_field(s, "datetime", "value") == Some("2025-12-31T23:59:59.500Z")
                && property_field(s, "byteString", "value") == Some("bytes!")
        })
        .await;

    // Values that do not fit are refused whole, naming each property: by
    // the JSON type first, then by what the node's type can hold.
    for (payload, names) in [
        (r#"{"uint16": -1, "int32": 5}"#, vec!["uint16"]),
        (
            r#"{"datetime": "tomorrow", "raw": "xyz", "int32": 5}"#,
            vec!["datetime", "raw"],
        ),
    ] {
        mqtt::publish(broker.port, "types/all-types/$write", payload.as_bytes()).await;
        let reply = replies.next(WAIT).await.payload;
        assert_eq!(reply["ok"], false, "{reply}");
        let refused: Vec<&str> = reply["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["property"].as_str().unwrap())
            .collect();
        assert_eq!(refused, names, "{reply}");
    }
    assert_eq!(
        server.get("v.int32").await,
        json!(2147483647),
        "nothing of a refused write is written"
    );

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
