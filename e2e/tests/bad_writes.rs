//! The adaptor half of the bad-input suite (the API half is
//! `api_contract.rs`, `invalid_objects_are_refused_with_a_message_naming_the_field`):
//! writes from MQTT that are not JSON, not objects, too large, too deep, of
//! the wrong type for every Modbus value type, out of range, for unknown,
//! read-only or spec-held properties, or several wrong at once (retained
//! writes: `mqtt_writes.rs`).
//! Each gets its exact answer on the reply topic; afterwards the device's
//! registers are as they were, the adaptor is the same process, the device
//! is still Healthy, and a good write still lands.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, eventually_showing,
    modbus::{ModbusServer, coils, device_with_writes, holding},
    mqtt::{self, Subscriber},
    process::start_operator,
};
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ADAPTOR: &str = "devicelink-adaptor-modbus-edge-worker";
const WRITE_TOPIC: &str = "e2e/bad/panel/set";

fn holding_register(name: &str, type_: &str, offset: u16, quantity: u16) -> Value {
    json!({"name": name, "type": type_,
           "visitor": {"register": "HoldingRegister", "offset": offset, "quantity": quantity}})
}

fn panel(namespace: &str, endpoint: &str, broker: &str) -> DeviceLink {
    device_with_writes(
        namespace,
        "panel",
        endpoint,
        broker,
        "e2e/bad",
        json!([
            {"name": "on", "type": "boolean", "visitor": {"register": "CoilRegister", "offset": 0}},
            holding_register("level", "int16", 0, 1),
            holding_register("count", "uint16", 1, 1),
            holding_register("total", "int32", 2, 2),
            holding_register("ratio", "float32", 4, 2),
            holding_register("label", "string", 6, 4),
            {"name": "temperature", "type": "int16", "readOnly": true,
             "visitor": {"register": "InputRegister", "offset": 0}},
            {"name": "calibration", "type": "uint16", "accessModes": ["ReadMany", "WriteOnce"],
             "value": "3", "visitor": {"register": "HoldingRegister", "offset": 10}},
        ]),
    )
}

/// A refusal of the whole write.
fn whole(reason: &str) -> Value {
    json!({"ok": false, "refused": [{"reason": reason}]})
}

/// A refusal of one property's value.
fn of(property: &str, reason: &str) -> Value {
    json!({"ok": false, "refused": [{"property": property, "reason": reason}]})
}

/// What the whole answer must be, or (for parser messages whose wording is
/// serde_json's) how its one whole-write reason starts.
enum Expect {
    Answer(Value),
    WholeStartingWith(&'static str),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let nested = format!("{{\"level\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    let unknown: String = format!(
        "{{{}}}",
        (0..1000)
            .map(|i| format!("\"no-such-{i:04}\": 1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut many_refused: Vec<Value> = (0..10)
        .map(|i| json!({"property": format!("no-such-{i:04}"), "reason": "is not a property of this device"}))
        .collect();
    many_refused.push(json!({"reason": "and 990 more refused"}));
    let huge = format!("{{\"label\": \"{}\"}}", "x".repeat(70_000));
    let bytes = |s: &str| s.as_bytes().to_vec();
    let int16 = "expects a whole number from -32768 to 32767, not";
    vec![
        // Not JSON, or not an object of values.
        (
            "invalid UTF-8",
            vec![0xff, 0xfe, 0xfd],
            WholeStartingWith("is not JSON: "),
        ),
        (
            "binary",
            vec![0, 1, 2, 3, 0x80],
            WholeStartingWith("is not JSON: "),
        ),
        (
            "empty",
            Vec::new(),
            Answer(whole(
                "is not JSON: EOF while parsing a value at line 1 column 0",
            )),
        ),
        (
            "cut short",
            bytes(r#"{"on": tr"#),
            WholeStartingWith("is not JSON: "),
        ),
        (
            "trailing garbage",
            bytes(r#"{"on": true} x"#),
            WholeStartingWith("is not JSON: trailing characters"),
        ),
        (
            "NaN",
            bytes(r#"{"ratio": NaN}"#),
            WholeStartingWith("is not JSON: "),
        ),
        (
            "an array",
            bytes("[]"),
            Answer(whole(
                "must be a JSON object of property values, not an array",
            )),
        ),
        (
            "a number",
            bytes("42"),
            Answer(whole(
                "must be a JSON object of property values, not a number",
            )),
        ),
        (
            "a string",
            bytes(r#""on""#),
            Answer(whole(
                "must be a JSON object of property values, not a string",
            )),
        ),
        (
            "null",
            bytes("null"),
            Answer(whole("must be a JSON object of property values, not null")),
        ),
        (
            "a boolean",
            bytes("true"),
            Answer(whole(
                "must be a JSON object of property values, not a boolean",
            )),
        ),
        (
            "no property",
            bytes("{}"),
            Answer(whole("names no property")),
        ),
        (
            "200 levels deep",
            nested.into_bytes(),
            WholeStartingWith("is not JSON: recursion limit exceeded"),
        ),
        (
            "over 64 KiB",
            huge.into_bytes(),
            Answer(whole("is 70013 bytes; a write may have at most 65536")),
        ),
        (
            "1000 unknown names",
            unknown.into_bytes(),
            Answer(json!({"ok": false, "refused": many_refused})),
        ),
        // Properties that cannot be written from MQTT.
        (
            "unknown property",
            bytes(r#"{"speed": 1}"#),
            Answer(of("speed", "is not a property of this device")),
        ),
        (
            "read-only property",
            bytes(r#"{"temperature": 1}"#),
            Answer(of("temperature", "is read-only")),
        ),
        (
            "spec holds it",
            bytes(r#"{"calibration": 4}"#),
            Answer(of(
                "calibration",
                "is WriteOnce and was written with its spec value; change the spec's value to write it again",
            )),
        ),
        // boolean
        (
            "boolean: a string",
            bytes(r#"{"on": "yes"}"#),
            Answer(of("on", r#"expects true or false, not "yes""#)),
        ),
        (
            "boolean: a number",
            bytes(r#"{"on": 1}"#),
            Answer(of("on", "expects true or false, not 1")),
        ),
        (
            "boolean: null",
            bytes(r#"{"on": null}"#),
            Answer(of("on", "expects true or false, not null")),
        ),
        (
            "boolean: an object",
            bytes(r#"{"on": {"v": true}}"#),
            Answer(of("on", r#"expects true or false, not {"v":true}"#)),
        ),
        // int16
        (
            "int16: too large",
            bytes(r#"{"level": 32768}"#),
            Answer(of("level", &format!("{int16} 32768"))),
        ),
        (
            "int16: too small",
            bytes(r#"{"level": -32769}"#),
            Answer(of("level", &format!("{int16} -32769"))),
        ),
        (
            "int16: a fraction",
            bytes(r#"{"level": 1.5}"#),
            Answer(of("level", &format!("{int16} 1.5"))),
        ),
        (
            "int16: a numeric string",
            bytes(r#"{"level": "12"}"#),
            Answer(of("level", &format!("{int16} \"12\""))),
        ),
        (
            "int16: a boolean",
            bytes(r#"{"level": true}"#),
            Answer(of("level", &format!("{int16} true"))),
        ),
        (
            "int16: 1e300",
            bytes(r#"{"level": 1e300}"#),
            Answer(of("level", &format!("{int16} 1e+300"))),
        ),
        (
            "int16: an array",
            bytes(r#"{"level": [1]}"#),
            Answer(of("level", &format!("{int16} [1]"))),
        ),
        // uint16
        (
            "uint16: negative",
            bytes(r#"{"count": -1}"#),
            Answer(of(
                "count",
                "expects a whole number from 0 to 65535, not -1",
            )),
        ),
        (
            "uint16: too large",
            bytes(r#"{"count": 65536}"#),
            Answer(of(
                "count",
                "expects a whole number from 0 to 65535, not 65536",
            )),
        ),
        (
            "uint16: past u64",
            bytes(r#"{"count": 18446744073709551616}"#),
            Answer(of(
                "count",
                "expects a whole number from 0 to 65535, not 1.8446744073709552e+19",
            )),
        ),
        // int32
        (
            "int32: too large",
            bytes(r#"{"total": 2147483648}"#),
            Answer(of(
                "total",
                "expects a whole number from -2147483648 to 2147483647, not 2147483648",
            )),
        ),
        (
            "int32: too small",
            bytes(r#"{"total": -2147483649}"#),
            Answer(of(
                "total",
                "expects a whole number from -2147483648 to 2147483647, not -2147483649",
            )),
        ),
        // float32
        (
            "float32: a string",
            bytes(r#"{"ratio": "fast"}"#),
            Answer(of("ratio", r#"expects a number, not "fast""#)),
        ),
        (
            "float32: a boolean",
            bytes(r#"{"ratio": false}"#),
            Answer(of("ratio", "expects a number, not false")),
        ),
        (
            "float32: null",
            bytes(r#"{"ratio": null}"#),
            Answer(of("ratio", "expects a number, not null")),
        ),
        (
            "float32: past a float",
            bytes(r#"{"ratio": 1e300}"#),
            Answer(of("ratio", "1e+300 does not fit a 32-bit float")),
        ),
        // string (4 registers: 8 bytes)
        (
            "string: a number",
            bytes(r#"{"label": 5}"#),
            Answer(of("label", "expects a string, not 5")),
        ),
        (
            "string: an array",
            bytes(r#"{"label": ["a"]}"#),
            Answer(of("label", r#"expects a string, not ["a"]"#)),
        ),
        (
            "string: too long",
            bytes(r#"{"label": "far too long"}"#),
            Answer(of(
                "label",
                "is 12 bytes of UTF-8; the property holds at most 8",
            )),
        ),
        (
            "string: multibyte too long",
            bytes(r#"{"label": "ééééé"}"#),
            Answer(of(
                "label",
                "is 10 bytes of UTF-8; the property holds at most 8",
            )),
        ),
        // Several at once: the whole write is refused, every reason named.
        (
            "two wrong",
            bytes(r#"{"level": "x", "count": -1}"#),
            Answer(json!({"ok": false, "refused": [
                {"property": "count", "reason": "expects a whole number from 0 to 65535, not -1"},
                {"property": "level", "reason": format!("{int16} \"x\"")},
            ]})),
        ),
        (
            "one good, one wrong",
            bytes(r#"{"on": true, "level": 99999}"#),
            Answer(of("level", &format!("{int16} 99999"))),
        ),
    ]
}

#[tokio::test]
async fn bad_writes_get_their_exact_answer_and_change_nothing() {
    let namespace = "e2e-bad-writes";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let device = ModbusServer::tcp(
        &[1],
        json!({"1": {"holding": {"0": 7, "1": 8}, "coils": {"0": false}, "input": {"0": 215}}}),
    )
    .await;
    let mut replies = Subscriber::start(broker.port, &format!("{WRITE_TOPIC}/$reply")).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &panel(namespace, &device.endpoint(), &broker.url())).await;
    let mut raw = device.client(1).await;
    eventually_showing("the spec value in the register", WAIT, || async {
        let held = holding(&mut device.client(1).await, 10, 1).await;
        (held == [3]).then_some(()).ok_or(format!("{held:?}"))
    })
    .await;
    let registers = holding(&mut raw, 0, 11).await;
    let pid = kubelet.pid(ADAPTOR).expect("the adaptor runs");

    let cases = cases();
    let mut failures = Vec::new();
    for (name, payload, expect) in &cases {
        // Within the device's write rate (10 at once, then 5 a second).
        tokio::time::sleep(Duration::from_millis(250)).await;
        mqtt::publish(broker.port, WRITE_TOPIC, payload).await;
        let answer = replies.next(WAIT).await.payload;
        let ok = match expect {
            Expect::Answer(wanted) => &answer == wanted,
            Expect::WholeStartingWith(start) => {
                answer["ok"] == false
                    && answer["refused"].as_array().is_some_and(|r| r.len() == 1)
                    && answer["refused"][0].get("property").is_none()
                    && answer["refused"][0]["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with(start))
            }
        };
        if !ok {
            failures.push(format!("{name}: answered {answer}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad writes were not answered as they should be:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing changed, nothing crashed, and a good write still lands.
    assert_eq!(holding(&mut raw, 0, 11).await, registers);
    assert_eq!(coils(&mut raw, 0, 1).await, [false]);
    assert_eq!(kubelet.pid(ADAPTOR), Some(pid), "the same adaptor process");
    tokio::time::sleep(Duration::from_millis(250)).await;
    mqtt::publish(broker.port, WRITE_TOPIC, br#"{"on": true, "level": -5}"#).await;
    let answer = replies.next(WAIT).await.payload;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(coils(&mut raw, 0, 1).await, [true]);
    assert_eq!(holding(&mut raw, 0, 1).await, [(-5i16) as u16]);
    let healthy = links.get("panel").await.unwrap();
    let connected = healthy
        .status
        .and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "DeviceConnected")
        })
        .expect("a DeviceConnected condition");
    assert_eq!(
        (connected.status.as_str(), connected.reason.as_str()),
        ("True", "Healthy")
    );

    delete_link_and_wait(&links, "panel").await;
    operator.stop().await;
}
