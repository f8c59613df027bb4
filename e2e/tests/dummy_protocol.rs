//! The DummyProtocolDevice example (deploy/examples/dummy-protocol-device.yaml,
//! Octopus's robot) end to end: every declared type reaches the device's
//! status and MQTT; read-only properties change on each sync; a write from
//! MQTT, nested object and array included, changes what is reported while
//! a wrong one is refused naming the place; a changed spec value is taken;
//! and the older Octopus field names work the same.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummyProtocolDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, delete_links_and_wait, eventually_showing,
    mqtt::{self, Subscriber},
    process::start_operator,
    repo_root, wait_connected, yaml_documents,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_robot_reports_every_type_and_takes_writes_of_objects_and_arrays() {
    let namespace = "e2e-dummy-protocol";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());

    let mut link =
        yaml_documents(&repo_root().join("deploy/examples/dummy-protocol-device.yaml")).remove(0);
    link["metadata"]["namespace"] = json!(namespace);
    let spec = &mut link["spec"]["template"]["spec"];
    spec["extension"]["mqtt"]["client"]["server"] = json!(broker.url());
    spec["parameters"]["syncInterval"] = json!("500ms");
    let link: DeviceLink = serde_json::from_value(link).expect("the example is a DeviceLink");
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
    let created = wait_connected(&links, "localhost-robot").await;
    let uid = created.metadata.uid.unwrap();
    let status_topic = format!("cattle.io/octopus/{uid}");
    let write_topic = format!("{status_topic}/set");
    let mut status = Subscriber::start(broker.port, &status_topic).await;
    let mut replies = Subscriber::start(broker.port, &format!("{write_topic}/$reply")).await;

    // Every type, in the field of its type.
    let first = status.next(WAIT).await.payload;
    let p = &first["properties"];
    assert_eq!(p["name"]["type"], "string", "{first}");
    assert!(p["name"]["stringValue"].is_string(), "{first}");
    assert!(
        p["power"]["floatValue"]
            .as_str()
            .is_some_and(|f| f.parse::<f64>().is_ok()),
        "{first}"
    );
    assert_eq!(
        p["gender"]["objectValue"],
        json!({"name": {"type": "string", "stringValue": "unknown"},
               "code": {"type": "int", "intValue": 0}}),
        "the spec's value of a setting"
    );
    assert_eq!(p["friends"]["type"], "array");
    assert_eq!(p["friends"]["arrayValue"].as_array().unwrap().len(), 3);

    // Read-only properties change with every sync; settings hold.
    let later = status
        .next_matching(WAIT, |m| {
            m["properties"]["power"] != first["properties"]["power"]
        })
        .await
        .payload;
    assert_eq!(later["properties"]["gender"], first["properties"]["gender"]);

    // A write of an array and part of an object.
    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"friends": ["ann", "bob"], "gender": {"name": "robot"}}"#,
    )
    .await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    let written = status
        .next_matching(WAIT, |m| {
            m["properties"]["friends"]["arrayValue"]
                == json!([{"type": "string", "stringValue": "ann"},
                          {"type": "string", "stringValue": "bob"}])
        })
        .await
        .payload;
    assert_eq!(
        written["properties"]["gender"]["objectValue"],
        json!({"name": {"type": "string", "stringValue": "robot"},
               "code": {"type": "int", "intValue": 0}})
    );
    // And on the API server.
    let devices: Api<DummyProtocolDevice> = Api::namespaced(client.clone(), namespace);
    eventually_showing("the write in the device's status", WAIT, || async {
        let d = devices
            .get("localhost-robot")
            .await
            .map_err(|e| e.to_string())?;
        let s = serde_json::to_value(d.status).unwrap();
        (s["properties"]["gender"]["objectValue"]["name"]["stringValue"] == "robot")
            .then_some(())
            .ok_or(s.to_string())
    })
    .await;

    // Wrong writes are refused, naming the place.
    for (write, reason) in [
        (&br#"{"power": 3}"#[..], "power is read-only"),
        (br#"{"gender": {"eyes": 2}}"#, "gender has no field eyes"),
        (
            br#"{"friends": ["ann", 3]}"#,
            "friends item 1 expects a string, not 3",
        ),
    ] {
        mqtt::publish(broker.port, &write_topic, write).await;
        let reply = replies.next(WAIT).await.payload;
        assert_eq!(reply["ok"], false, "{reply}");
        let refused = &reply["refused"][0];
        let said = format!(
            "{} {}",
            refused["property"].as_str().unwrap_or_default(),
            refused["reason"].as_str().unwrap_or_default()
        );
        assert_eq!(said, reason);
    }

    // A changed spec value is taken.
    let patch = json!({"spec": {"template": {"spec": {"properties": {"gender": {
        "type": "object",
        "objectProperties": {"name": {"type": "string"}, "code": {"type": "int"}},
        "value": {"name": "robot", "code": 5},
    }}}}}});
    links
        .patch(
            "localhost-robot",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch the DeviceLink");
    status
        .next_matching(WAIT, |m| {
            m["properties"]["gender"]["objectValue"]["code"]["intValue"] == 5
        })
        .await;

    // Octopus's older names: the same device, reported under `props`.
    let older = older_names_link(namespace, &broker.url());
    links
        .create(&PostParams::default(), &older)
        .await
        .expect("create DeviceLink");
    wait_connected(&links, "old-robot").await;
    eventually_showing("the older names' status", WAIT, || async {
        let d = devices.get("old-robot").await.map_err(|e| e.to_string())?;
        let s = serde_json::to_value(d.status).unwrap();
        (s["props"]["gender"]["objectValue"]["code"]["type"] == "int"
            && s["props"]["friends"]["arrayValue"].as_array().map(Vec::len) == Some(3))
        .then_some(())
        .ok_or(s.to_string())
    })
    .await;

    delete_links_and_wait(&links, &["localhost-robot", "old-robot"]).await;
    operator.stop().await;
}

fn older_names_link(namespace: &str, server: &str) -> DeviceLink {
    let template: Value = json!({"spec": {
        "protocol": {"ip": "127.0.0.1"},
        "extension": {"mqtt": {"client": {"server": server},
                               "message": {"topic": "e2e/old-robot"}}},
        "props": {
            "gender": {"type": "object", "objectProps": {"code": {"type": "int"}}},
            "friends": {"type": "array", "arrayProps": {"type": "string"}},
        },
    }});
    devicelink_e2e::device_link(
        namespace,
        "old-robot",
        "edge-worker",
        "dummy",
        "DummyProtocolDevice",
        template,
    )
}
