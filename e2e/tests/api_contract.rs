//! The API contract, checked by the real API server: every sample applies,
//! and so does the device the operator would make from it; bad input is
//! refused with a message that names the field; `kubectl explain` teaches the
//! API; and every type survives a round trip through the server.

use std::{collections::BTreeMap, path::PathBuf};

use devicelink_api::{DeviceLink, all_crds};
use devicelink_e2e::{
    client, exclusive,
    kubectl::{Output, dry_run_apply, kubectl},
    repo_root, yaml_documents,
};
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// Every sample DeviceLink: the commented examples and the Octopus shapes.
fn sample_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/examples"))
        .expect("deploy/examples exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.push(root.join("e2e/testdata/octopus-fields.yaml"));
    files
}

fn samples() -> Vec<Value> {
    // simulators.yaml beside them holds the simulators' pods and Services.
    let docs: Vec<Value> = sample_files()
        .iter()
        .flat_map(|f| yaml_documents(f))
        .filter(|d| d["kind"] == "DeviceLink")
        .collect();
    assert!(
        docs.len() >= 14,
        "expected the samples of every adaptor, found {}",
        docs.len()
    );
    docs
}

fn find<'a>(samples: &'a [Value], name: &str) -> &'a Value {
    samples
        .iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no sample DeviceLink named {name}"))
}

/// The model a DeviceLink names, as the API server serves it.
fn model_resource(kind: &str) -> ApiResource {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    ApiResource {
        group: crd.spec.group.clone(),
        version: crd.spec.versions[0].name.clone(),
        api_version: format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
        kind: kind.into(),
        plural: crd.spec.names.plural.clone(),
    }
}

/// The device object the operator makes from a DeviceLink, as JSON.
fn device_of(link_json: &Value) -> Value {
    let mut link: DeviceLink =
        serde_json::from_value(link_json.clone()).expect("a sample parses as a DeviceLink");
    link.metadata.namespace = Some("default".into());
    link.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let model = model_resource(&link.spec.model.kind);
    let short_name = link
        .spec
        .adaptor
        .name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let device = devicelink_operator::device::desired(&link, &model, &short_name);
    serde_json::to_value(&device).expect("a device serializes")
}

fn assert_accepted(what: &str, out: &Output) {
    assert!(out.success, "{what} was refused:\n{}", out.text);
}

#[tokio::test]
async fn every_sample_and_the_device_made_from_it_is_accepted() {
    let _guard = exclusive().await;
    for link in samples() {
        let name = link["metadata"]["name"].as_str().unwrap().to_string();
        assert_accepted(&format!("DeviceLink {name}"), &dry_run_apply(&link));
        // Strict field validation (kubectl's default) also proves that every
        // field the template sets is one the model knows.
        assert_accepted(
            &format!("the device of {name}"),
            &dry_run_apply(&device_of(&link)),
        );
    }
}

/// One invalid object: a valid sample with one rule broken.
struct Case {
    name: &'static str,
    base: Value,
    /// JSON pointer and new value; `None` removes the field.
    changes: Vec<(&'static str, Option<Value>)>,
    /// Whether the object is created first and the change is an update.
    update: bool,
    /// Text the API server's message must contain: the field, then the reason.
    expect: [&'static str; 2],
}

fn case(
    name: &'static str,
    base: &Value,
    changes: Vec<(&'static str, Option<Value>)>,
    expect: [&'static str; 2],
) -> Case {
    Case {
        name,
        base: base.clone(),
        changes,
        update: false,
        expect,
    }
}

fn set(ptr: &'static str, value: Value) -> (&'static str, Option<Value>) {
    (ptr, Some(value))
}

fn remove(ptr: &'static str) -> (&'static str, Option<Value>) {
    (ptr, None)
}

/// Sets or removes the field at a JSON pointer, creating missing objects.
fn apply_change(doc: &mut Value, ptr: &str, value: Option<Value>) {
    let (parent_ptr, key) = ptr.rsplit_once('/').expect("pointer has a /");
    let mut parent = doc;
    for segment in parent_ptr.split('/').skip(1) {
        parent = match parent {
            Value::Array(items) => &mut items[segment.parse::<usize>().expect("array index")],
            Value::Object(map) => map.entry(segment).or_insert_with(|| json!({})),
            other => panic!("cannot descend into {other} at {segment} of {ptr}"),
        };
    }
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(key.into(), v);
        }
        (Value::Object(map), None) => {
            map.remove(key)
                .unwrap_or_else(|| panic!("{ptr} is not set in the base"));
        }
        (Value::Array(items), Some(v)) => {
            let index: usize = key.parse().expect("array index");
            if index == items.len() {
                items.push(v)
            } else {
                items[index] = v
            }
        }
        (Value::Array(items), None) => {
            items.remove(key.parse::<usize>().expect("array index"));
        }
        (other, _) => panic!("{ptr}: parent is {other}"),
    }
}

fn invalid_cases() -> Vec<Case> {
    let all = samples();
    let sample = |name: &str| find(&all, name).clone();
    let thermometer = sample("thermometer");
    let meter = sample("power-meter");
    let plc = sample("packaging-line");
    let fan_tls = sample("octopus-fan-tls");
    let modbus = device_of(&thermometer);
    let rtu = device_of(&meter);
    let opcua = device_of(&plc);
    let ble = device_of(&sample("xiaomi-thermometer"));
    let mqtt = device_of(&sample("kitchen-light"));
    let fan = device_of(&sample("living-room-fan"));
    let robot = device_of(&sample("localhost-robot"));
    let creds = json!({"usernameRef": {"name": "creds", "item": "u"}, "password": "p"});

    let mut cases = vec![
        // DeviceLink
        case(
            "node missing",
            &thermometer,
            vec![remove("/spec/adaptor/node")],
            ["spec.adaptor.node", "Required value"],
        ),
        case(
            "node not a node name",
            &thermometer,
            vec![set("/spec/adaptor/node", json!("Edge_Worker"))],
            ["spec.adaptor.node", "must be a node name"],
        ),
        case(
            "adaptor name without domain",
            &thermometer,
            vec![set("/spec/adaptor/name", json!("modbus"))],
            ["spec.adaptor.name", "must be <domain>/<adaptor>"],
        ),
        case(
            "model missing",
            &thermometer,
            vec![remove("/spec/model")],
            ["spec.model", "Required value"],
        ),
        case(
            "model apiVersion without version",
            &thermometer,
            vec![set(
                "/spec/model/apiVersion",
                json!("devices.edge.cattle.io"),
            )],
            ["spec.model.apiVersion", "must be <group>/<version>"],
        ),
        case(
            "model kind not a Kind",
            &thermometer,
            vec![set("/spec/model/kind", json!("modbusDevice"))],
            ["spec.model.kind", "UpperCamelCase"],
        ),
        case(
            "template label value",
            &thermometer,
            vec![set(
                "/spec/template/metadata/labels/device",
                json!("not a label!"),
            )],
            ["spec.template.metadata.labels", "must be a label value"],
        ),
        case(
            "reference with two sources",
            &plc,
            vec![set("/spec/references/0/configMap", json!({"name": "plc"}))],
            [
                "spec.references[0]",
                "exactly one of secret, configMap or downwardAPI",
            ],
        ),
        case(
            "reference names repeated",
            &plc,
            vec![set(
                "/spec/references/1",
                json!({"name": "credentials", "configMap": {"name": "x"}}),
            )],
            ["spec.references[1]", "Duplicate value"],
        ),
        case(
            "reference name with a space",
            &plc,
            vec![set("/spec/references/0/name", json!("my credentials"))],
            ["spec.references[0].name", "must be letters, digits"],
        ),
        case(
            "passwordRef to a missing reference",
            &plc,
            vec![set(
                "/spec/template/spec/protocol/basicAuth/passwordRef/name",
                json!("nope"),
            )],
            [
                "spec.template.spec.protocol.basicAuth.passwordRef.name",
                "not an entry of spec.references",
            ],
        ),
        case(
            "MQTT usernameRef to a missing reference",
            &thermometer,
            vec![set(
                "/spec/template/spec/extension/mqtt/client/basicAuth",
                creds.clone(),
            )],
            [
                "spec.template.spec.extension.mqtt.client.basicAuth.usernameRef.name",
                "not an entry of spec.references",
            ],
        ),
        case(
            "MQTT caFilePEMRef to a missing reference",
            &fan_tls,
            vec![set(
                "/spec/template/spec/extension/mqtt/client/tlsConfig/caFilePEMRef/name",
                json!("ca-bundle"),
            )],
            [
                "spec.template.spec.extension.mqtt.client.tlsConfig.caFilePEMRef.name",
                "not an entry of spec.references",
            ],
        ),
        case(
            "downwardAPI field not allowed",
            &fan_tls,
            vec![set(
                "/spec/references/2/downwardAPI/items/0/fieldRef/fieldPath",
                json!("spec.adaptor.node"),
            )],
            [
                "spec.references[2].downwardAPI.items[0].fieldRef.fieldPath",
                "must be metadata.name",
            ],
        ),
        // ModbusDevice
        case(
            "modbus tcp and rtu",
            &modbus,
            vec![set(
                "/spec/protocol/rtu",
                json!({"endpoint": "/dev/ttyS0", "workerID": 1}),
            )],
            ["spec.protocol", "set exactly one of tcp or rtu"],
        ),
        case(
            "modbus no protocol",
            &modbus,
            vec![set("/spec/protocol", json!({}))],
            ["spec.protocol", "set exactly one of tcp or rtu"],
        ),
        case(
            "modbus workerID 0",
            &modbus,
            vec![set("/spec/protocol/tcp/workerID", json!(0))],
            ["spec.protocol.tcp.workerID", "greater than or equal to 1"],
        ),
        case(
            "modbus workerID 248",
            &modbus,
            vec![set("/spec/protocol/tcp/workerID", json!(248))],
            ["spec.protocol.tcp.workerID", "less than or equal to 247"],
        ),
        case(
            "modbus tcp endpoint without port",
            &modbus,
            vec![set("/spec/protocol/tcp/endpoint", json!("192.168.1.3"))],
            ["spec.protocol.tcp.endpoint", "must be host:port"],
        ),
        case(
            "modbus rtu endpoint not a path",
            &rtu,
            vec![set("/spec/protocol/rtu/endpoint", json!("COM1"))],
            [
                "spec.protocol.rtu.endpoint",
                "must be the path of a serial device",
            ],
        ),
        case(
            "modbus parity",
            &rtu,
            vec![set("/spec/protocol/rtu/parity", json!("X"))],
            ["spec.protocol.rtu.parity", "Unsupported value"],
        ),
        case(
            "modbus dataBits",
            &rtu,
            vec![set("/spec/protocol/rtu/dataBits", json!(9))],
            ["spec.protocol.rtu.dataBits", "Unsupported value"],
        ),
        case(
            "modbus stopBits",
            &rtu,
            vec![set("/spec/protocol/rtu/stopBits", json!(3))],
            ["spec.protocol.rtu.stopBits", "Unsupported value"],
        ),
        case(
            "modbus baudRate 0",
            &rtu,
            vec![set("/spec/protocol/rtu/baudRate", json!(0))],
            ["spec.protocol.rtu.baudRate", "greater than or equal to 50"],
        ),
        case(
            "modbus unknown type",
            &modbus,
            vec![set("/spec/properties/0/type", json!("int128"))],
            ["spec.properties[0].type", "Unsupported value"],
        ),
        case(
            "modbus unknown register",
            &modbus,
            vec![set("/spec/properties/0/visitor/register", json!("Holding"))],
            ["spec.properties[0].visitor.register", "Unsupported value"],
        ),
        case(
            "modbus quantity 0",
            &modbus,
            vec![set("/spec/properties/1/visitor/quantity", json!(0))],
            [
                "spec.properties[1].visitor.quantity",
                "greater than or equal to 1",
            ],
        ),
        case(
            "modbus int32 in one register",
            &modbus,
            vec![
                set("/spec/properties/4/type", json!("int32")),
                set("/spec/properties/4/visitor/quantity", json!(1)),
            ],
            ["spec.properties[4].visitor.quantity", "32-bit types"],
        ),
        case(
            "modbus double in two registers",
            &modbus,
            vec![set("/spec/properties/4/type", json!("double"))],
            ["spec.properties[4].visitor.quantity", "64-bit types"],
        ),
        case(
            "modbus int16 in two registers",
            &modbus,
            vec![set("/spec/properties/2/visitor/quantity", json!(2))],
            ["spec.properties[2].visitor.quantity", "take one register"],
        ),
        case(
            "modbus float32 on a coil",
            &modbus,
            vec![set("/spec/properties/3/type", json!("float32"))],
            [
                "spec.properties[3].type",
                "on CoilRegister and DiscreteInputRegister",
            ],
        ),
        case(
            "modbus byteString",
            &modbus,
            vec![set("/spec/properties/2/type", json!("byteString"))],
            ["spec.properties[2].type", "OPC-UA types"],
        ),
        case(
            "modbus write to an input register",
            &modbus,
            vec![set("/spec/properties/4/value", json!("5"))],
            [
                "spec.properties[4]",
                "InputRegister and DiscreteInputRegister cannot be written",
            ],
        ),
        case(
            "modbus value on a read-only property",
            &modbus,
            vec![set("/spec/properties/0/value", json!("3"))],
            ["spec.properties[0].value", "must be writable"],
        ),
        case(
            "modbus readOnly with a write mode",
            &modbus,
            vec![set("/spec/properties/1/accessModes", json!(["WriteOnce"]))],
            [
                "spec.properties[1].accessModes",
                "readOnly: true contradicts",
            ],
        ),
        case(
            "modbus endianness",
            &modbus,
            vec![set(
                "/spec/properties/0/visitor/endianness",
                json!("MiddleEndian"),
            )],
            ["spec.properties[0].visitor.endianness", "Unsupported value"],
        ),
        case(
            "modbus operation type",
            &modbus,
            vec![set(
                "/spec/properties/0/visitor/orderOfOperations/0/type",
                json!("Power"),
            )],
            [
                "spec.properties[0].visitor.orderOfOperations[0].type",
                "Unsupported value",
            ],
        ),
        case(
            "modbus operation value not a number",
            &modbus,
            vec![set(
                "/spec/properties/0/visitor/orderOfOperations/0/value",
                json!("ten"),
            )],
            [
                "spec.properties[0].visitor.orderOfOperations[0].value",
                "should match",
            ],
        ),
        case(
            "modbus divide by zero",
            &modbus,
            vec![set(
                "/spec/properties/1/visitor/orderOfOperations/0/value",
                json!("0.0"),
            )],
            [
                "spec.properties[1].visitor.orderOfOperations[0]",
                "must not be 0 for Divide",
            ],
        ),
        case(
            "modbus arithmetic on a boolean",
            &modbus,
            vec![set(
                "/spec/properties/3/visitor/orderOfOperations",
                json!([{"type": "Add", "value": "1"}]),
            )],
            ["spec.properties[3].visitor", "numeric types only"],
        ),
        case(
            "modbus both operation lists",
            &modbus,
            vec![set(
                "/spec/properties/0/visitor/arithmeticOperations",
                json!([{"type": "Add", "value": "1"}]),
            )],
            [
                "spec.properties[0].visitor",
                "set orderOfOperations or arithmeticOperations",
            ],
        ),
        case(
            "modbus offset too large",
            &modbus,
            vec![set("/spec/properties/2/visitor/offset", json!(70000))],
            [
                "spec.properties[2].visitor.offset",
                "less than or equal to 65535",
            ],
        ),
        case(
            "modbus past the last address",
            &modbus,
            vec![set("/spec/properties/4/visitor/offset", json!(65535))],
            [
                "spec.properties[4].visitor.quantity",
                "must not pass the last address",
            ],
        ),
        case(
            "modbus more registers than one request",
            &rtu,
            vec![set("/spec/properties/2/visitor/quantity", json!(126))],
            ["spec.properties[2].visitor.quantity", "125 registers"],
        ),
        case(
            "modbus duplicate property",
            &modbus,
            vec![set("/spec/properties/1/name", json!("temperature"))],
            ["spec.properties[1]", "Duplicate value"],
        ),
        case(
            "modbus syncInterval",
            &modbus,
            vec![set("/spec/parameters/syncInterval", json!("fast"))],
            ["spec.parameters.syncInterval", "must be a duration"],
        ),
        case(
            "modbus timeout over a year",
            &modbus,
            vec![set("/spec/parameters/timeout", json!("8761h"))],
            [
                "spec.parameters.timeout",
                "must be a duration from 0 to 8760h",
            ],
        ),
        case(
            "modbus syncInterval past what a clock holds",
            &modbus,
            vec![set("/spec/parameters/syncInterval", json!("99999999999h"))],
            [
                "spec.parameters.syncInterval",
                "must be a duration from 0 to 8760h",
            ],
        ),
        case(
            "modbus writable value over one write request",
            &modbus,
            vec![set(
                "/spec/properties/0",
                json!({"name": "label", "type": "hexString",
                       "visitor": {"register": "HoldingRegister", "offset": 100, "quantity": 124}}),
            )],
            [
                "spec.properties[0].visitor.quantity",
                "one write request takes at most 123 registers or 1968 coils",
            ],
        ),
        // OPCUADevice
        case(
            "opcua password over no security",
            &opcua,
            vec![
                set("/spec/protocol/securityPolicy", json!("None")),
                set("/spec/protocol/securityMode", json!("None")),
            ],
            [
                "spec.protocol.securityPolicy",
                "or set allowInsecureCredentials: true to accept that",
            ],
        ),
        case(
            "opcua endpoint scheme",
            &opcua,
            vec![set("/spec/protocol/endpoint", json!("http://plc:4840"))],
            ["spec.protocol.endpoint", "must start with opc.tcp://"],
        ),
        case(
            "opcua security policy",
            &opcua,
            vec![set("/spec/protocol/securityPolicy", json!("Basic512"))],
            ["spec.protocol.securityPolicy", "Unsupported value"],
        ),
        case(
            "opcua mode without policy",
            &opcua,
            vec![set("/spec/protocol/securityPolicy", json!("None"))],
            [
                "spec.protocol.securityMode",
                "securityPolicy None goes with securityMode None",
            ],
        ),
        case(
            "opcua username without password",
            &opcua,
            vec![set("/spec/protocol/basicAuth", json!({"username": "u"}))],
            ["spec.protocol.basicAuth", "needs a password"],
        ),
        case(
            "opcua password twice",
            &opcua,
            vec![set("/spec/protocol/basicAuth/password", json!("p"))],
            [
                "spec.protocol.basicAuth",
                "set password or passwordRef, not both",
            ],
        ),
        case(
            "opcua two identities",
            &opcua,
            vec![set("/spec/protocol/issuedTokenAuth", json!({"token": "t"}))],
            ["spec.protocol", "choose one user identity"],
        ),
        case(
            "opcua node id",
            &opcua,
            vec![set("/spec/properties/1/visitor/nodeID", json!("1005"))],
            [
                "spec.properties[1].visitor.nodeID",
                "must be an OPC-UA node ID",
            ],
        ),
        case(
            "opcua node id missing",
            &opcua,
            vec![remove("/spec/properties/1/visitor/nodeID")],
            ["spec.properties[1].visitor.nodeID", "Required value"],
        ),
        case(
            "opcua certificate without key",
            &opcua,
            vec![set(
                "/spec/protocol/tlsConfig",
                json!({"certFilePEM": "-----BEGIN CERTIFICATE-----"}),
            )],
            [
                "spec.protocol.tlsConfig",
                "the client certificate and its private key go together",
            ],
        ),
        case(
            "opcua trusted certificates twice",
            &opcua,
            vec![set(
                "/spec/protocol/tlsConfig/caFilePEM",
                json!("-----BEGIN CERTIFICATE-----"),
            )],
            [
                "spec.protocol.tlsConfig",
                "set caFilePEM or caFilePEMRef, not both",
            ],
        ),
        case(
            "opcua publishing interval",
            &opcua,
            vec![set("/spec/protocol/publishingIntervalInSeconds", json!(61))],
            [
                "spec.protocol.publishingIntervalInSeconds",
                "less than or equal to 60",
            ],
        ),
        // BluetoothDevice
        case(
            "ble endpoint missing",
            &ble,
            vec![remove("/spec/protocol/endpoint")],
            [
                "spec.protocol",
                "endpoint (the advertised name or the MAC address) is required",
            ],
        ),
        case(
            "ble MAC address",
            &ble,
            vec![set("/spec/protocol/macAddress", json!("AA:BB"))],
            ["spec.protocol.macAddress", "must be a MAC address"],
        ),
        case(
            "ble both access modes",
            &ble,
            vec![set("/spec/properties/1/accessMode", json!("ReadOnly"))],
            ["spec.properties[1].accessModes", "give one of them"],
        ),
        case(
            "ble Octopus access mode",
            &ble,
            vec![
                remove("/spec/properties/1/accessModes"),
                set("/spec/properties/1/accessMode", json!("Subscribe")),
            ],
            ["spec.properties[1].accessMode", "Unsupported value"],
        ),
        case(
            "ble characteristic twice",
            &ble,
            vec![set(
                "/spec/properties/1/visitor/characteristicUUID",
                json!("00002a1900001000800000805f9b34fb"),
            )],
            [
                "spec.properties[1].visitor",
                "give the characteristic's UUID once",
            ],
        ),
        case(
            "ble converter index",
            &ble,
            vec![set(
                "/spec/properties/1/visitor/dataConverter",
                json!({"startIndex": 600}),
            )],
            [
                "spec.properties[1].visitor.dataConverter.startIndex",
                "less than or equal to 511",
            ],
        ),
        case(
            "ble MTU",
            &ble,
            vec![set("/spec/protocol/connectionMTU", json!(10))],
            ["spec.protocol.connectionMTU", "greater than or equal to 23"],
        ),
        case(
            "ble access mode",
            &ble,
            vec![set("/spec/properties/1/accessModes", json!(["Subscribe"]))],
            ["spec.properties[1].accessModes[0]", "Unsupported value"],
        ),
        case(
            "ble content type",
            &ble,
            vec![set("/spec/properties/0/visitor/contentType", json!("json"))],
            [
                "spec.properties[0].visitor.contentType",
                "Unsupported value",
            ],
        ),
        case(
            "ble characteristic",
            &ble,
            vec![set(
                "/spec/properties/1/visitor/characteristic",
                json!("battery"),
            )],
            [
                "spec.properties[1].visitor.characteristic",
                "must be a 16-bit UUID",
            ],
        ),
        case(
            "ble value on a read-only property",
            &ble,
            vec![set("/spec/properties/1/value", json!("50"))],
            [
                "spec.properties[1].value",
                "accessModes with WriteOnce or WriteMany, or accessMode ReadWrite",
            ],
        ),
        // MQTTDevice and the MQTT options every model shares
        case(
            "mqtt pattern",
            &mqtt,
            vec![set("/spec/protocol/pattern", json!("Attributed"))],
            ["spec.protocol.pattern", "Unsupported value"],
        ),
        case(
            "mqtt topic per property without :path",
            &mqtt,
            vec![set(
                "/spec/protocol/message/topic",
                json!("home/kitchen/light"),
            )],
            ["spec.protocol.message.topic", "must contain :path"],
        ),
        case(
            "mqtt server scheme",
            &mqtt,
            vec![set(
                "/spec/protocol/client/server",
                json!("mqtt://broker:1883"),
            )],
            ["spec.protocol.client.server", "must be scheme://address"],
        ),
        case(
            "mqtt topic ends with /",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/message/topic",
                json!("factory/thermometer/"),
            )],
            ["spec.extension.mqtt.message.topic", "must not end with /"],
        ),
        case(
            "mqtt topic with a wildcard",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/message/topic",
                json!("factory/#"),
            )],
            ["spec.extension.mqtt.message.topic", "wildcards + or #"],
        ),
        case(
            "mqtt qos 3",
            &modbus,
            vec![set("/spec/extension/mqtt/message/qos", json!(3))],
            ["spec.extension.mqtt.message.qos", "less than or equal to 2"],
        ),
        case(
            "mqtt protocol 3.1",
            &modbus,
            vec![set("/spec/extension/mqtt/client/protocolVersion", json!(3))],
            [
                "spec.extension.mqtt.client.protocolVersion",
                "MQTT 3.1 (protocolVersion 3) is not supported",
            ],
        ),
        case(
            "mqtt protocol 6",
            &modbus,
            vec![set("/spec/extension/mqtt/client/protocolVersion", json!(6))],
            [
                "spec.extension.mqtt.client.protocolVersion",
                "less than or equal to 5",
            ],
        ),
        case(
            "mqtt store type",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/store",
                json!({"type": "Disk"}),
            )],
            ["spec.extension.mqtt.client.store.type", "Unsupported value"],
        ),
        case(
            "mqtt store directory without File",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/store",
                json!({"type": "Memory", "directoryPrefix": "/data"}),
            )],
            [
                "spec.extension.mqtt.client.store.directoryPrefix",
                "only used with type File",
            ],
        ),
        case(
            "mqtt TLS on plain tcp",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/tlsConfig",
                json!({"insecureSkipVerify": true}),
            )],
            [
                "spec.extension.mqtt.client.tlsConfig",
                "only used with ssl://",
            ],
        ),
        case(
            "mqtt client certificate without key",
            &modbus,
            vec![
                set(
                    "/spec/extension/mqtt/client/server",
                    json!("wss://broker:8884"),
                ),
                set(
                    "/spec/extension/mqtt/client/tlsConfig",
                    json!({"certFilePEM": "-----BEGIN CERTIFICATE-----"}),
                ),
            ],
            ["spec.extension.mqtt.client.tlsConfig", "go together"],
        ),
        case(
            "mqtt headers on plain tcp",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/httpHeaders",
                json!({"Authorization": ["Bearer x"]}),
            )],
            [
                "spec.extension.mqtt.client.httpHeaders",
                "only sent with ws:// or wss://",
            ],
        ),
        case(
            "mqtt will content not base64",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/message/will",
                json!({"content": "not base64!"}),
            )],
            ["spec.extension.mqtt.message.will.content", "byte"],
        ),
        case(
            "mqtt payload encoding",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/message/payloadEncode",
                json!("hex"),
            )],
            [
                "spec.extension.mqtt.message.payloadEncode",
                "Unsupported value",
            ],
        ),
        case(
            "mqtt buffer of 0",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/messageChannelDepth",
                json!(0),
            )],
            [
                "spec.extension.mqtt.client.messageChannelDepth",
                "greater than or equal to 1",
            ],
        ),
        case(
            "mqtt resumeSubs with a clean session",
            &modbus,
            vec![set("/spec/extension/mqtt/client/resumeSubs", json!(true))],
            [
                "spec.extension.mqtt.client.resumeSubs",
                "needs cleanSession: false",
            ],
        ),
        case(
            "mqtt clientID of devicelink's own connections",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/clientID",
                json!("devicelink-modbus-edge-worker-0123456789ab"),
            )],
            [
                "spec.extension.mqtt.client.clientID",
                "must not start with devicelink-",
            ],
        ),
        case(
            "mqtt keepAlive without unit",
            &modbus,
            vec![set("/spec/extension/mqtt/client/keepAlive", json!("30"))],
            ["spec.extension.mqtt.client.keepAlive", "must be a duration"],
        ),
        case(
            "mqtt keepAlive over 16 bits of seconds",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/keepAlive",
                json!("18h12m16s"),
            )],
            [
                "spec.extension.mqtt.client.keepAlive",
                "must be a duration from 0 to 65535s",
            ],
        ),
        case(
            "mqtt username without password",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/basicAuth",
                json!({"username": "u"}),
            )],
            ["spec.extension.mqtt.client.basicAuth", "needs a password"],
        ),
        case(
            "mqtt property qos",
            &mqtt,
            vec![set("/spec/properties/0/qos", json!(5))],
            ["spec.properties[0].qos", "less than or equal to 2"],
        ),
        case(
            "mqtt property type",
            &mqtt,
            vec![set("/spec/properties/0/type", json!("double"))],
            ["spec.properties[0].type", "Unsupported value"],
        ),
        case(
            "mqtt readOnly against accessModes",
            &mqtt,
            vec![set("/spec/properties/0/accessModes", json!(["Notify"]))],
            [
                "spec.properties[0].accessModes",
                "readOnly and accessModes disagree",
            ],
        ),
        case(
            "mqtt ReadMany is for polled devices",
            &mqtt,
            vec![set("/spec/properties/3/accessModes", json!(["ReadMany"]))],
            ["spec.properties[3].accessModes[0]", "Unsupported value"],
        ),
        case(
            "mqtt arithmetic on a string",
            &mqtt,
            vec![set(
                "/spec/properties/1/arithmeticOperations",
                json!([{"type": "Add", "value": "1"}]),
            )],
            [
                "spec.properties[1].arithmeticOperations",
                "apply to int and float properties only",
            ],
        ),
        // Dummy models
        case(
            "fan gear",
            &fan,
            vec![set("/spec/gear", json!("turbo"))],
            ["spec.gear", "Unsupported value"],
        ),
        case(
            "fan location missing",
            &fan,
            vec![remove("/spec/protocol/location")],
            ["spec.protocol.location", "Required value"],
        ),
        case(
            "robot property type",
            &robot,
            vec![set("/spec/properties/name/type", json!("map"))],
            ["spec.properties.name.type", "Unsupported value"],
        ),
        case(
            "robot array without items",
            &robot,
            vec![remove("/spec/properties/friends/arrayProperties")],
            [
                "spec.properties[friends].arrayProperties",
                "set it exactly when type is array",
            ],
        ),
        case(
            "robot objectProperties on a string",
            &robot,
            vec![set(
                "/spec/properties/name/objectProperties",
                json!({"x": {"type": "int"}}),
            )],
            [
                "spec.properties[name].objectProperties",
                "set it only when type is object",
            ],
        ),
        case(
            "robot items under both names",
            &robot,
            vec![set(
                "/spec/properties/friends/arrayProps",
                json!({"type": "string"}),
            )],
            [
                "spec.properties[friends]",
                "the older names of arrayProperties and objectProperties",
            ],
        ),
        case(
            "robot properties under both names",
            &robot,
            vec![set("/spec/props", json!({"x": {"type": "int"}}))],
            ["spec.props", "props is the older name of properties"],
        ),
        case(
            "robot ip",
            &robot,
            vec![set("/spec/protocol/ip", json!("not an ip!"))],
            ["spec.protocol.ip", "must be an IP address or a host name"],
        ),
        // Wrong types, huge numbers and durations, sizes.
        case(
            "unknown field",
            &thermometer,
            vec![set("/spec/adaptor/nodee", json!("edge-worker"))],
            ["spec.adaptor.nodee", "unknown field"],
        ),
        case(
            "node a number",
            &thermometer,
            vec![set("/spec/adaptor/node", json!(5))],
            ["spec.adaptor.node", "must be of type string"],
        ),
        case(
            "references not a list",
            &thermometer,
            vec![set("/spec/references", json!("creds"))],
            ["spec.references", "must be of type array"],
        ),
        case(
            "template spec a string",
            &thermometer,
            vec![set("/spec/template/spec", json!("all of it"))],
            ["spec.template.spec", "must be of type object"],
        ),
        case(
            "name over 253 characters",
            &thermometer,
            vec![set("/metadata/name", json!("t".repeat(254)))],
            ["metadata.name", "must be no more than 253 characters"],
        ),
        case(
            "modbus workerID a string",
            &modbus,
            vec![set("/spec/protocol/tcp/workerID", json!("1"))],
            ["spec.protocol.tcp.workerID", "must be of type integer"],
        ),
        case(
            "modbus workerID past 64 bits",
            &modbus,
            vec![set("/spec/protocol/tcp/workerID", json!(1e20))],
            ["spec.protocol.tcp.workerID", "must be of type integer"],
        ),
        case(
            "modbus offset negative",
            &modbus,
            vec![set("/spec/properties/0/visitor/offset", json!(-1))],
            [
                "spec.properties[0].visitor.offset",
                "greater than or equal to 0",
            ],
        ),
        case(
            "modbus properties not a list",
            &modbus,
            vec![set("/spec/properties", json!("temperature"))],
            ["spec.properties", "must be of type array"],
        ),
        case(
            "modbus property name a number",
            &modbus,
            vec![set("/spec/properties/0/name", json!(7))],
            ["spec.properties[0].name", "must be of type string"],
        ),
        case(
            "modbus property value a boolean",
            &modbus,
            vec![set("/spec/properties/2/value", json!(true))],
            ["spec.properties[2].value", "must be of type"],
        ),
        case(
            "modbus syncInterval a number",
            &modbus,
            vec![set("/spec/parameters/syncInterval", json!(5))],
            ["spec.parameters.syncInterval", "must be of type string"],
        ),
        case(
            "modbus timeout negative",
            &modbus,
            vec![set("/spec/parameters/timeout", json!("-1s"))],
            [
                "spec.parameters.timeout",
                "must be a duration from 0 to 8760h",
            ],
        ),
        case(
            "mqtt keepAlive negative",
            &modbus,
            vec![set("/spec/extension/mqtt/client/keepAlive", json!("-5s"))],
            [
                "spec.extension.mqtt.client.keepAlive",
                "must be a duration from 0 to 65535s",
            ],
        ),
        case(
            "mqtt buffer depth past a million",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/messageChannelDepth",
                json!(2_000_000_000),
            )],
            [
                "spec.extension.mqtt.client.messageChannelDepth",
                "less than or equal to 1000000",
            ],
        ),
        case(
            "mqtt buffer bytes under 1 KiB",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/messageChannelBytes",
                json!(100),
            )],
            [
                "spec.extension.mqtt.client.messageChannelBytes",
                "greater than or equal to 1024",
            ],
        ),
        case(
            "mqtt buffer bytes over 1 GiB",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/messageChannelBytes",
                json!(1_073_741_825_i64),
            )],
            [
                "spec.extension.mqtt.client.messageChannelBytes",
                "less than or equal to 1073741824",
            ],
        ),
        case(
            "mqtt buffer bytes as a quantity",
            &modbus,
            vec![set(
                "/spec/extension/mqtt/client/messageChannelBytes",
                json!("8Mi"),
            )],
            [
                "spec.extension.mqtt.client.messageChannelBytes",
                "must be of type integer",
            ],
        ),
        case(
            "mqtt qos a string",
            &modbus,
            vec![set("/spec/extension/mqtt/message/qos", json!("1"))],
            ["spec.extension.mqtt.message.qos", "must be of type integer"],
        ),
        case(
            "opcua endpoint a number",
            &opcua,
            vec![set("/spec/protocol/endpoint", json!(4840))],
            ["spec.protocol.endpoint", "must be of type string"],
        ),
        case(
            "ble MTU a string",
            &ble,
            vec![set("/spec/protocol/connectionMTU", json!("big"))],
            ["spec.protocol.connectionMTU", "must be of type integer"],
        ),
        case(
            "mqtt device qos a string",
            &mqtt,
            vec![set("/spec/properties/0/qos", json!("high"))],
            ["spec.properties[0].qos", "must be of type integer"],
        ),
        case(
            "fan gear a number",
            &fan,
            vec![set("/spec/gear", json!(3))],
            ["spec.gear", "must be of type string"],
        ),
        case(
            "fan on a string",
            &fan,
            vec![set("/spec/on", json!("yes"))],
            ["spec.on", "must be of type boolean"],
        ),
        case(
            "robot property type a number",
            &robot,
            vec![set("/spec/properties/name/type", json!(1))],
            ["spec.properties.name.type", "must be of type string"],
        ),
    ];
    let mut changing_adaptor = case(
        "adaptor changed",
        &thermometer,
        vec![set(
            "/spec/adaptor/name",
            json!("adaptors.edge.cattle.io/opcua"),
        )],
        ["spec.adaptor.name", "cannot change"],
    );
    changing_adaptor.update = true;
    let mut changing_model = case(
        "model changed",
        &thermometer,
        vec![set("/spec/model/kind", json!("OPCUADevice"))],
        ["spec.model", "cannot change"],
    );
    changing_model.update = true;
    cases.push(changing_adaptor);
    cases.push(changing_model);
    cases
}

#[tokio::test]
async fn invalid_objects_are_refused_with_a_message_naming_the_field() {
    let _guard = exclusive().await;
    let cases = invalid_cases();
    // With the adaptor's bad writes (bad_writes.rs), the bad-input suite.
    assert!(cases.len() >= 130, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let mut object = case.base.clone();
        if case.update {
            let created = kubectl(&["apply", "-f", "-"], Some(&object.to_string()));
            assert_accepted(&format!("the base of {:?}", case.name), &created);
        }
        for (ptr, value) in &case.changes {
            apply_change(&mut object, ptr, value.clone());
        }
        let out = dry_run_apply(&object);
        if case.update {
            let deleted = kubectl(
                &["delete", "-f", "-", "--wait=false"],
                Some(&case.base.to_string()),
            );
            assert_accepted(&format!("cleaning up {:?}", case.name), &deleted);
        }
        if out.success {
            failures.push(format!("{}: accepted, but should be refused", case.name));
        } else if !case.expect.iter().all(|e| out.text.contains(e)) {
            failures.push(format!(
                "{}: message lacks {:?}:\n{}",
                case.name, case.expect, out.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kubectl_explain_teaches_the_modbus_visitor() {
    let out = kubectl(&["explain", "modbusdevice.spec.properties.visitor"], None);
    assert_accepted("kubectl explain", &out);
    for text in [
        "Where the value lives on the device",
        "HoldingRegister (read-write 16-bit words)",
        "Address of the first coil or register",
        "Number of coils or registers. Default 1",
        "LittleEndianSwap (CDAB)",
        "Arithmetic applied in order",
    ] {
        assert!(
            out.text.contains(text),
            "kubectl explain lacks {text:?}:\n{}",
            out.text
        );
    }
}

/// True if every field of `sent` is in `stored` with the same value
/// (`stored` may hold more: the defaults the server fills in).
fn is_kept_in(sent: &Value, stored: &Value) -> bool {
    match (sent, stored) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| is_kept_in(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_kept_in(v, w))
        }
        (a, b) => a == b,
    }
}

/// Reading `value` as `T` and writing it back gives `value` again.
fn assert_typed_round_trip<T: Serialize + DeserializeOwned>(what: &str, value: &Value) {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} does not read as its Rust type: {e}\n{value:#}"));
    let again = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(
        &again, value,
        "{what} changes when read into its Rust type and written back"
    );
}

fn assert_device_round_trip(kind: &str, what: &str, value: &Value) {
    use devicelink_api::*;
    match kind {
        "DummySpecialDevice" => assert_typed_round_trip::<dummy::DummySpecialDevice>(what, value),
        "DummyProtocolDevice" => assert_typed_round_trip::<dummy::DummyProtocolDevice>(what, value),
        "ModbusDevice" => assert_typed_round_trip::<modbus::ModbusDevice>(what, value),
        "OPCUADevice" => assert_typed_round_trip::<opcua::OPCUADevice>(what, value),
        "BluetoothDevice" => assert_typed_round_trip::<ble::BluetoothDevice>(what, value),
        "MQTTDevice" => assert_typed_round_trip::<mqtt_device::MQTTDevice>(what, value),
        other => panic!("no Rust type for {other}"),
    }
}

/// A status with every field set, of the shape each model reports.
fn full_status(kind: &str) -> Value {
    let extension = json!({"mqtt": {
        "server": "tcp://broker:1883", "clientID": "devicelink-1", "topic": "a/b",
        "writeTopic": "a/b/set", "qos": 1, "retained": true, "connected": true,
        "lastError": "connection refused",
    }});
    match kind {
        "DummySpecialDevice" => {
            json!({"gear": "fast", "rotatingSpeed": 250, "extension": extension})
        }
        "DummyProtocolDevice" => json!({"extension": extension, "properties": {
            "name": {"type": "string", "stringValue": "robot"},
            "awake": {"type": "boolean", "booleanValue": false},
        }, "props": {
            "name": {"type": "string", "stringValue": "robot"},
            "power": {"type": "float", "floatValue": "1.5"},
            "code": {"type": "int", "intValue": 7},
            "on": {"type": "boolean", "booleanValue": true},
            "friends": {"type": "array", "arrayValue": [{"type": "string", "stringValue": "ann"}]},
            "gender": {"type": "object", "objectValue": {"code": {"type": "int", "intValue": 1}}},
        }}),
        _ => json!({"extension": extension, "properties": [{
            "name": "temperature", "type": "float", "accessModes": ["ReadMany"],
            "value": "301.15", "operatedValue": "28.00", "updatedAt": "2026-11-22T10:00:00Z",
        }]}),
    }
}

#[tokio::test]
async fn every_type_survives_a_round_trip_through_the_api_server() {
    let _guard = exclusive().await;
    let client = client().await;
    let namespace = "api-round-trip";
    let _ = kubectl(&["create", "namespace", namespace], None);
    let links: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<DeviceLink>(&()),
    );
    for sample in samples() {
        let name = sample["metadata"]["name"].as_str().unwrap().to_string();

        // The DeviceLink: its Rust type reads and writes the sample unchanged,
        // including the free-form template.spec and adaptor.parameters ...
        assert_typed_round_trip::<DeviceLink>(&format!("DeviceLink {name}"), &sample);
        let mut sent: DynamicObject = serde_json::from_value(sample.clone()).unwrap();
        sent.metadata.namespace = Some(namespace.into());
        let stored = links.create(&PostParams::default(), &sent).await.unwrap();
        // ... the server stores every field as sent ...
        assert_eq!(
            stored.data["spec"], sample["spec"],
            "the server changed DeviceLink {name}'s spec"
        );
        // ... and a full status survives too.
        let status = json!({
            "conditions": [{"type": "NodeExisted", "status": "True", "reason": "Found", "message": "node found",
                "lastUpdateTime": "2026-11-22T10:00:00Z", "lastTransitionTime": "2026-11-22T10:00:00Z"}],
            "observedGeneration": 1, "nodeName": "edge-worker", "nodeHostName": "edge-worker",
            "nodeInternalIP": "10.0.0.1", "nodeInternalDNS": "edge.internal", "nodeExternalIP": "1.2.3.4",
            "nodeExternalDNS": "edge.example.com", "model": sample["spec"]["model"], "adaptorName": sample["spec"]["adaptor"]["name"],
            "deviceTemplateGeneration": 1,
        });
        let patched = links
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
        assert_eq!(
            patched.data["status"], status,
            "the server changed DeviceLink {name}'s status"
        );
        let whole = serde_json::to_value(&patched).unwrap();
        assert_typed_round_trip::<DeviceLink>(
            &format!("stored DeviceLink {name}"),
            &strip_server_fields(whole),
        );

        // The device: the server keeps every field of the template (adding
        // defaults), and the Rust type reads and writes what it stores.
        let kind = sample["spec"]["model"]["kind"]
            .as_str()
            .unwrap()
            .to_string();
        let model = model_resource(&kind);
        let devices: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &model);
        let mut device: DynamicObject = serde_json::from_value(device_of(&sample)).unwrap();
        device.metadata.namespace = Some(namespace.into());
        device.metadata.owner_references = None;
        // No adaptor runs here to release it, and a later test deletes a
        // model CRD, which waits until every object of it is gone.
        device.metadata.finalizers = None;
        let stored = devices
            .create(&PostParams::default(), &device)
            .await
            .unwrap();
        assert!(
            is_kept_in(&device.data["spec"], &stored.data["spec"]),
            "the server dropped fields of {kind} {name}:\nsent   {:#}\nstored {:#}",
            device.data["spec"],
            stored.data["spec"]
        );
        let status = full_status(&kind);
        let patched = devices
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
        assert_eq!(
            patched.data["status"], status,
            "the server changed {kind} {name}'s status"
        );
        let whole = strip_server_fields(serde_json::to_value(&patched).unwrap());
        assert_device_round_trip(&kind, &format!("stored {kind} {name}"), &whole);

        devices
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        links.delete(&name, &DeleteParams::default()).await.unwrap();
    }
    let _ = kubectl(&["delete", "namespace", namespace, "--wait=false"], None);
}

/// Keeps only what the API types describe: apiVersion, kind, spec, status
/// and the metadata fields users write (the rest is ObjectMeta, which
/// k8s-openapi round-trips on its own).
fn strip_server_fields(mut object: Value) -> Value {
    let meta = object["metadata"].clone();
    let mut kept = BTreeMap::new();
    for key in ["name", "namespace", "labels"] {
        if let Some(v) = meta.get(key) {
            kept.insert(key, v.clone());
        }
    }
    object["metadata"] = serde_json::to_value(kept).unwrap();
    object
}
