//! The MQTT will: when an adaptor dies without a goodbye, the broker tells
//! the device's subscribers, on the will topic, with the will's content.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, dummy_link,
    mqtt::Subscriber, process::start_operator,
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_will_reaches_subscribers_when_the_adaptor_is_killed() {
    let namespace = "e2e-mqtt-will";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());

    let name = "porch-fan";
    let link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "porch"}, "gear": "fast", "on": true,
            "extension": {"mqtt": {
                "client": {"server": broker.url()},
                "message": {
                    "topic": "e2e/will/:name",
                    // "fan offline"
                    "will": {"content": "ZmFuIG9mZmxpbmU="},
                },
            }},
        }}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;
    let mut subscriber = Subscriber::start(broker.port, "e2e/will/#").await;
    // The will is retained (as the message is): on connecting, the adaptor
    // clears a will a dead connection left, with an empty retained message
    // on the will topic, which may reach the subscriber after it
    // subscribed. That is the only will before the adaptor dies.
    let clearing =
        |m: &devicelink_e2e::mqtt::Received| m.topic.ends_with("/$will") && m.payload == json!("");
    let status = loop {
        let m = subscriber.next(WAIT).await;
        if !clearing(&m) {
            break m;
        }
    };
    assert_eq!(status.topic, format!("e2e/will/{name}"));

    let pod = "devicelink-adaptor-dummy-edge-worker";
    assert!(kubelet.kill(pod).await, "the adaptor process was running");
    // Status messages already on their way may come first.
    let will = loop {
        let m = subscriber.next(WAIT).await;
        if m.topic.ends_with("/$will") && !clearing(&m) {
            break m;
        }
    };
    assert_eq!(will.topic, format!("e2e/will/{name}/$will"));
    assert_eq!(will.payload, json!("fan offline"));

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
