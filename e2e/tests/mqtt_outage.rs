//! No QoS 1 message lost across a broker outage: the fan reports every
//! second while mosquitto is stopped for 30 s; once it is back, every
//! report made meanwhile arrives, in order. With the File store the adaptor
//! also crashes during the outage (the kubelet restarts it) and still none
//! is lost.
//!
//! The fan's speed goes up by one per report, so a lost message is a gap
//! in the speeds the subscriber sees and a reordering is a step back. The
//! subscriber keeps its session on a persistent broker, so it misses
//! nothing around the restart either.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_link_and_wait, dummy_link,
    mqtt::{Received, Subscriber},
    process::{free_port, metric_at, start_operator},
    wait_connected, wait_reason,
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const OUTAGE: Duration = Duration::from_secs(30);
const POD: &str = "devicelink-adaptor-dummy-edge-worker";

#[tokio::test]
async fn every_message_of_a_30s_broker_outage_arrives_in_order() {
    let speeds = outage("e2e-mqtt-outage-memory", json!(null), false).await;
    let (before, during_and_after) = speeds;
    // One run without a gap or a step back, from before the outage on.
    let all: Vec<i64> = before.iter().chain(&during_and_after).copied().collect();
    assert_contiguous(&dedup(&all));
    let produced_in_outage = during_and_after
        .iter()
        .filter(|s| **s > *before.last().unwrap())
        .count();
    assert!(
        produced_in_outage as u64 >= OUTAGE.as_secs() - 2,
        "about one report per second of the outage arrived: {during_and_after:?}"
    );
}

#[tokio::test]
async fn with_the_file_store_an_adaptor_crash_in_the_outage_loses_nothing() {
    let (before, after) = outage("e2e-mqtt-outage-file", json!({"type": "File"}), true).await;
    let last_before = *before.last().unwrap();
    // First what the crashed process reported during the outage, from its
    // store; then the restarted process, whose fan starts over at 200.
    let after = dedup(&after);
    let restart = after
        .windows(2)
        .position(|w| w[1] < w[0])
        .map(|i| i + 1)
        .expect("the restarted adaptor's fan starts over, so its speeds step back once");
    let stored = &after[..restart];
    assert_eq!(
        stored[0],
        last_before + 1,
        "nothing lost right after the broker went: {after:?}"
    );
    assert_contiguous(stored);
    // The crash came 10 s into the outage: about ten reports were stored.
    assert!(stored.len() >= 8, "the stored reports arrived: {after:?}");
    assert!(after[restart] <= 202, "then the new process: {after:?}");
    assert_contiguous(&after[restart..]);
}

/// Runs a fan through a broker outage; returns the speeds seen before the
/// broker stopped and those seen after it came back (for 10 s).
async fn outage(namespace: &str, store: serde_json::Value, crash: bool) -> (Vec<i64>, Vec<i64>) {
    let (_guard, client) = begin(namespace).await;
    let port = free_port();
    Broker::forget_persisted(port);
    let broker = Broker::start_persistent(port).await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let name = "kiln-fan";
    let topic = format!("e2e/outage/{namespace}/{name}");
    let mut subscriber = Subscriber::start_durable(port, &topic).await;

    let mut client_options = json!({
        "server": broker.url(),
        // Back quickly once the broker is: the test waits for it.
        "maxReconnectInterval": "2s",
    });
    if !store.is_null() {
        client_options["store"] = store;
    }
    let link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "kiln"}, "gear": "fast", "on": true,
            "extension": {"mqtt": {
                "client": client_options,
                "message": {"topic": "e2e/outage/:namespace/:name", "qos": 1},
            }},
        }}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    let before = speeds(collect(&mut subscriber, Duration::from_secs(4)).await);
    assert!(
        before.len() >= 3,
        "the fan reports every second: {before:?}"
    );
    let stopped = Instant::now();
    broker.stop().await;
    if !crash {
        // The fan answers, but its reports go nowhere: not Healthy.
        let why = wait_reason(&links, name, "DeviceConnected", "False", "MQTTUndelivered").await;
        assert!(
            why.message.contains(&format!("127.0.0.1:{port}")),
            "{}",
            why.message
        );
    }
    if crash {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            kubelet.crash_and_restart(POD).await,
            "the adaptor was running"
        );
    }
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    // What was on its way when the broker stopped is in its session.
    let broker = Broker::start_persistent(port).await;
    let after = collect_until_quiet(&mut subscriber).await;
    wait_connected(&links, name).await;
    // The adaptor counted it: it reconnected, nothing was dropped (the
    // buffer of 100 holds 30 s), and everything is acknowledged again.
    let metrics = kubelet
        .metrics_port(POD)
        .expect("the adaptor serves metrics");
    let metric = |name: &'static str| async move {
        metric_at(metrics, name)
            .await
            .unwrap_or_else(|| panic!("{name} in the adaptor's /metrics"))
    };
    if !crash {
        assert!(metric("devicelink_adaptor_mqtt_reconnects_total").await >= 1.0);
    }
    assert_eq!(metric("devicelink_adaptor_mqtt_dropped_total").await, 0.0);
    assert!(metric("devicelink_adaptor_mqtt_published_total").await >= 10.0);
    assert!(metric("devicelink_adaptor_mqtt_buffered").await <= 1.0);

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
    broker.stop().await;
    Broker::forget_persisted(port);
    let after = speeds(after);
    let last_before = *before.last().unwrap();
    // Messages of the last moments before the stop may come again (QoS 1
    // is at least once); they are not new.
    let after = after
        .into_iter()
        .skip_while(|s| *s <= last_before)
        .collect();
    (before, after)
}

/// Messages for `period`.
async fn collect(subscriber: &mut Subscriber, period: Duration) -> Vec<Received> {
    let end = Instant::now() + period;
    let mut out = Vec::new();
    while let Some(m) = subscriber
        .try_next(end.saturating_duration_since(Instant::now()))
        .await
    {
        out.push(m);
    }
    out
}

/// Messages after the restart: the backlog, then 10 s of live reports.
async fn collect_until_quiet(subscriber: &mut Subscriber) -> Vec<Received> {
    let first = subscriber.next(WAIT).await;
    let mut out = vec![first];
    out.extend(collect(subscriber, Duration::from_secs(10)).await);
    out
}

fn speeds(messages: Vec<Received>) -> Vec<i64> {
    messages
        .iter()
        .map(|m| {
            m.payload["rotatingSpeed"]
                .as_i64()
                .unwrap_or_else(|| panic!("a status report: {m:?}"))
        })
        .collect()
}

/// Without repeats (QoS 1 may deliver a message twice).
fn dedup(speeds: &[i64]) -> Vec<i64> {
    let mut out = speeds.to_vec();
    out.dedup();
    out
}

/// Each speed one more than the one before: nothing lost, nothing reordered.
fn assert_contiguous(speeds: &[i64]) {
    for w in speeds.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or a step back in {speeds:?}");
    }
}
