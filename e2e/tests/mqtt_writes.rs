//! Writes from MQTT: a JSON object of property values published on the
//! device's write topic changes the device; a write naming a read-only or
//! unknown property, or one that is not JSON, is refused as a whole with a
//! reply naming the reason, counted on the DeviceLink with a Warning Event.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin, create_connected, delete_link_and_wait, dummy_link,
    eventually_showing,
    mqtt::{self, Received, Subscriber},
    process::start_operator,
    wait_event,
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn writes_on_the_write_topic_change_the_fan_and_bad_ones_get_a_reason() {
    let namespace = "e2e-mqtt-writes";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());

    let name = "attic-fan";
    // Status on .../status, writes on .../set (the read operator).
    let link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "attic"}, "gear": "slow", "on": false,
            "extension": {"mqtt": {
                "client": {"server": broker.url()},
                "message": {
                    "topic": "e2e/writes/:name/:operator",
                    "operator": {"read": "set", "write": "status"},
                },
            }},
        }}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;
    let status_topic = format!("e2e/writes/{name}/status");
    let write_topic = format!("e2e/writes/{name}/set");
    let reply_topic = format!("{write_topic}/$reply");
    let mut replies = Subscriber::start(broker.port, &reply_topic).await;
    let mut status = Subscriber::start(broker.port, &status_topic).await;
    let first = status.next(WAIT).await;
    assert_eq!(first.payload["gear"], "slow");
    // The subscription is made on connect; the status proves it is up.

    mqtt::publish(
        broker.port,
        &write_topic,
        br#"{"on": true, "gear": "fast"}"#,
    )
    .await;
    let reply = replies.next(WAIT).await;
    assert_eq!(reply.payload["ok"], true, "{reply:?}");
    assert_eq!(
        reply.payload["applied"],
        json!({"on": true, "gear": "fast"})
    );
    let fast = next_matching(&mut status, |m| m.payload["gear"] == "fast").await;
    assert!(fast.payload["rotatingSpeed"].as_i64().unwrap() >= 200);

    for (write, reason) in [
        (
            &br#"{"rotatingSpeed": 5}"#[..],
            "rotatingSpeed is read-only",
        ),
        (
            br#"{"colour": "red", "on": false}"#,
            "colour is not a property of this device",
        ),
        (
            br#"{"gear": "turbo"}"#,
            "gear expects one of slow, middle, fast, not \"turbo\"",
        ),
        (b"{on: yes", "is not JSON"),
    ] {
        mqtt::publish(broker.port, &write_topic, write).await;
        let reply = replies.next(WAIT).await;
        assert_eq!(reply.payload["ok"], false, "{reply:?}");
        let refused = reply.payload["refused"].as_array().unwrap();
        let reasons: Vec<String> = refused
            .iter()
            .map(|r| match r["property"].as_str() {
                Some(p) => format!("{p} {}", r["reason"].as_str().unwrap()),
                None => r["reason"].as_str().unwrap().to_string(),
            })
            .collect();
        assert!(
            reasons.iter().any(|r| r.starts_with(reason)),
            "{reasons:?} names {reason:?}"
        );
    }
    // Refused as a whole: "on": false alongside an unknown property did not
    // stop the fan.
    let still = status.next(WAIT).await;
    assert_eq!(still.payload["gear"], "fast");
    assert!(
        still.payload["rotatingSpeed"].as_i64().unwrap() > 200,
        "{still:?}"
    );
    // Counted on the DeviceLink (the first at once, the rest within ten
    // seconds), each rise an Event the operator records.
    eventually_showing("the four refused writes counted", WAIT, || async {
        let link = links.get(name).await.map_err(|e| e.to_string())?;
        let counted = link.status.and_then(|s| s.refused_writes);
        match &counted {
            Some(c) if c.count == 4 && c.last_message.contains("is not JSON") => Ok(()),
            _ => Err(format!("{counted:?}")),
        }
    })
    .await;
    wait_event(&client, namespace, name, "WriteRefused", "Warning").await;

    // A retained write is applied when it is published (subscribers that
    // are connected get it as a live message)...
    mqtt::publish_retained(broker.port, &write_topic, br#"{"gear": "middle"}"#).await;
    assert_eq!(replies.next(WAIT).await.payload["ok"], true);
    mqtt::publish(broker.port, &write_topic, br#"{"gear": "fast"}"#).await;
    assert_eq!(replies.next(WAIT).await.payload["ok"], true);
    // ...but not again when the broker hands it over on a new subscription
    // (a changed keepAlive makes a new connection; the spec now says what
    // MQTT said, fast and on, so only the stale write could change it).
    let mut reconnect = link.clone();
    let spec = reconnect.spec.template.spec.as_mut().unwrap();
    spec["extension"]["mqtt"]["client"]["keepAlive"] = json!("31s");
    spec["gear"] = json!("fast");
    spec["on"] = json!(true);
    apply(&links, &reconnect).await;
    let reply = replies.next(WAIT).await.payload;
    assert_eq!(reply["ok"], false, "{reply}");
    let reason = reply["refused"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("is retained"), "{reply}");
    // What the fan reported before the refusal has queued up; then, fast.
    while status.try_next(Duration::from_millis(300)).await.is_some() {}
    let still = status.next(WAIT).await;
    assert_eq!(still.payload["gear"], "fast", "{still:?}");
    mqtt::publish_retained(broker.port, &write_topic, b"").await;

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

async fn next_matching(
    subscriber: &mut Subscriber,
    wanted: impl Fn(&Received) -> bool,
) -> Received {
    loop {
        let m = subscriber.next(WAIT).await;
        if wanted(&m) {
            return m;
        }
    }
}

#[tokio::test]
async fn mqtt_5_writes_are_answered_on_their_response_topic_with_their_correlation_data() {
    let namespace = "e2e-mqtt5-writes";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());

    let name = "porch-fan";
    let link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "porch"}, "gear": "slow", "on": false,
            "extension": {"mqtt": {
                "client": {"server": broker.url(), "protocolVersion": 5},
                "message": {"topic": "e2e/mqtt5/:name"},
            }},
        }}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let mut status = Subscriber::start(broker.port, &format!("e2e/mqtt5/{name}")).await;
    create_connected(&links, &link).await;
    // Status flows over MQTT 5 like over 3.1.1 (the broker serves both).
    assert_eq!(status.next(WAIT).await.payload["gear"], "slow");

    let write_topic = format!("e2e/mqtt5/{name}/$write");
    // A response topic of the writer's own, under the write topic.
    let mine = format!("{write_topic}/porch-app");
    let (answer, correlation) = mqtt::request_v5(
        broker.port,
        &write_topic,
        br#"{"on": true}"#,
        &mine,
        &mine,
        WAIT,
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(
        correlation
            .as_deref()
            .is_some_and(|c| c.starts_with(b"request-")),
        "the answer quotes the request's correlation data: {correlation:?}"
    );
    let (refused, _) = mqtt::request_v5(
        broker.port,
        &write_topic,
        br#"{"gear": "turbo"}"#,
        &mine,
        &mine,
        WAIT,
    )
    .await;
    assert_eq!(refused["ok"], false, "{refused}");
    // A response topic elsewhere (here, another device's status topic) is
    // not published to: the answer goes to the write topic's $reply.
    let mut elsewhere = Subscriber::start(broker.port, "e2e/mqtt5/kitchen-fan").await;
    let (answer, correlation) = mqtt::request_v5(
        broker.port,
        &write_topic,
        br#"{"on": false}"#,
        "e2e/mqtt5/kitchen-fan",
        &format!("{write_topic}/$reply"),
        WAIT,
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(correlation.is_some(), "still quoted");
    assert!(
        elsewhere.try_next(Duration::from_secs(2)).await.is_none(),
        "nothing published on the other topic"
    );

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}
