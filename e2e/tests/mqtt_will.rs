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
    let status = subscriber.next(WAIT).await;
    assert_eq!(status.topic, format!("e2e/will/{name}"));

    let pod = "devicelink-adaptor-dummy-edge-worker";
    assert!(kubelet.kill(pod).await, "the adaptor process was running");
    // Status messages already on their way may come first.
    let will = loop {
        let m = subscriber.next(WAIT).await;
        if m.topic.ends_with("/$will") {
            break m;
        }
    };
    assert_eq!(will.topic, format!("e2e/will/{name}/$will"));
    assert_eq!(will.payload, json!("fan offline"));

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
