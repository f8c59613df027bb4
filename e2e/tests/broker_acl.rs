//! A broker devicelink shares with other clients, configured with the ACL
//! docs/operator.md gives (deploy/broker/mosquitto.acl, as written): the
//! adaptor works with the rights it grants, and a client that may only
//! watch cannot command a device, nor can anyone but the adaptor forge an
//! answer or a status. Each attack is made, in order, before a legitimate
//! message whose arrival proves the attack's message was refused: one
//! connection gets messages in the order the broker took them.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin, create_connected, delete_link_and_wait, dummy_link,
    mqtt::{self, Subscriber},
    process::{free_port, start_operator},
    repo_root,
};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

const DEVICES: (&str, &str) = ("plant-devices", "devices-password");
const OPERATOR: (&str, &str) = ("plant-operator", "operator-password");
const VIEWER: (&str, &str) = ("plant-viewer", "viewer-password");

#[tokio::test]
async fn with_the_documented_acl_only_the_adaptor_answers_and_only_writers_write() {
    // The namespace the example ACL is written for.
    let namespace = "plant";
    let (_guard, client) = begin(namespace).await;
    // mosquitto drops to its own user, which may not read the checkout.
    let acl = std::env::temp_dir().join("devicelink-e2e-mosquitto.acl");
    let example = repo_root().join("deploy/broker/mosquitto.acl");
    std::fs::copy(&example, &acl).expect("copy the example ACL");
    let broker = Broker::mosquitto_with(
        free_port(),
        &[DEVICES, OPERATOR, VIEWER],
        &format!("acl_file {}", acl.display()),
    )
    .await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());

    // The adaptor's identity comes from a Secret of the namespace.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "broker", "namespace": namespace},
                "stringData": {"username": DEVICES.0, "password": DEVICES.1}}),
    )
    .await;
    let name = "fan";
    let mut link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "plant"}, "gear": "slow", "on": false,
            "extension": {"mqtt": {
                "client": {
                    "server": broker.url(),
                    "basicAuth": {
                        "usernameRef": {"name": "broker", "item": "username"},
                        "passwordRef": {"name": "broker", "item": "password"},
                    },
                },
                "message": {"topic": "cattle.io/octopus/:namespace/:name", "qos": 1},
            }},
        }}),
    );
    link.spec.references =
        serde_json::from_value(json!([{"name": "broker", "secret": {"name": "broker"}}])).unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    let status_topic = format!("cattle.io/octopus/{namespace}/{name}");
    let write_topic = format!("{status_topic}/$write");
    let reply_topic = format!("{write_topic}/$reply");
    // A viewer reads the status the adaptor may publish.
    let mut status = Subscriber::start_as(broker.port, &status_topic, Some(VIEWER)).await;
    let first = status.next(WAIT).await;
    assert_eq!(first.payload["gear"], "slow", "{first:?}");
    let mut replies = Subscriber::start_as(broker.port, &reply_topic, Some(OPERATOR)).await;

    // One message as `user` (the broker acknowledges even what it drops).
    let publish = |user, topic: &str, payload: &'static [u8]| {
        let topic = topic.to_string();
        let port = broker.port;
        async move { mqtt::publish_as(port, Some(user), &topic, payload).await }
    };

    // A viewer's write is refused by the broker: the first answer the
    // device gives is to the operator's write that came after it.
    publish(VIEWER, &write_topic, br#"{"gear": "fast"}"#).await;
    publish(OPERATOR, &write_topic, br#"{"gear": "middle"}"#).await;
    let answer = replies.next(WAIT).await;
    assert_eq!(
        answer.payload,
        json!({"ok": true, "applied": {"gear": "middle"}}),
        "the viewer's write must not reach the device"
    );

    // A writer forges an answer, and a viewer a status: neither arrives
    // before what the adaptor publishes after them.
    publish(
        OPERATOR,
        &reply_topic,
        br#"{"ok": true, "applied": {"gear": "slow"}}"#,
    )
    .await;
    publish(VIEWER, &status_topic, br#"{"gear": "forged"}"#).await;
    publish(OPERATOR, &write_topic, br#"{"gear": "fast"}"#).await;
    let answer = replies.next(WAIT).await;
    assert_eq!(
        answer.payload,
        json!({"ok": true, "applied": {"gear": "fast"}}),
        "only the adaptor may answer"
    );
    status
        .next_matching_unless(
            WAIT,
            |m| m["gear"] == "fast",
            |m| m["gear"] == "forged",
            "only the adaptor may publish status",
        )
        .await;

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
