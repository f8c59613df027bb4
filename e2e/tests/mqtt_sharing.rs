//! Shared MQTT connections: fans with equal connection settings ride one
//! connection (the broker counts one client for them), each keeping its own
//! topic, retained status and writes; fans that ask for a connection of
//! their own (a clientID, a will, `sharedConnection: false`) get one; a fan
//! whose credentials change moves to the connection for its new settings;
//! one fan's retained status is cleared on delete while the others go on;
//! a broker outage loses nothing of any fan on the shared connection; a
//! topic the broker refuses (ACL, MQTT 5) shows on that fan only; an
//! adaptor told not to share gives every fan its own connection; and
//! devices that speak MQTT themselves share their own connections too,
//! a topic several of them listen to subscribed once and kept while any
//! of them listens, each hearing its retained state when it joins.

use std::time::{Duration, Instant};

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice, mqtt_device::MQTTDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, create_connected, delete_links_and_wait, dummy_link,
    eventually_showing,
    mqtt::{self, Subscriber},
    mqtt_device,
    process::{free_port, metric_at, operator_sharing, start_operator},
    wait_property, wait_reason,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// The client ID prefix of the dummy adaptor's shared connections here.
const SHARED: &str = "devicelink-dummy-edge-worker-";
/// The dummy adaptor's pod.
const POD: &str = "devicelink-adaptor-dummy-edge-worker";
/// The MQTT adaptor's pod.
const MQTT_POD: &str = "devicelink-adaptor-mqtt-edge-worker";

/// A fan publishing on `e2e/sharing/<namespace>/<name>` with `client`
/// options (the broker's URL added).
fn fan(namespace: &str, name: &str, gear: &str, client: Value, message: Value) -> DeviceLink {
    let mut message = message;
    message["topic"] = json!("e2e/sharing/:namespace/:name");
    dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {"protocol": {"location": name}, "gear": gear, "on": true,
            "extension": {"mqtt": {"client": client, "message": message}}}}),
    )
}

/// The client ID a fan's device status shows, once connected.
async fn client_id(devices: &Api<DummySpecialDevice>, name: &str) -> String {
    eventually_showing(&format!("{name} connected"), WAIT, || async {
        let device = devices.get(name).await.map_err(|e| e.to_string())?;
        let mqtt = device
            .status
            .and_then(|s| s.extension)
            .and_then(|e| e.mqtt)
            .ok_or("no MQTT status yet")?;
        match (&mqtt.client_id, mqtt.connected) {
            (Some(id), true) => Ok(id.clone()),
            _ => Err(format!("{mqtt:?}")),
        }
    })
    .await
}

/// The broker's own count of connected clients (`$SYS`, refreshed every
/// second by the brokers these tests start), once it is `wanted`.
async fn broker_counts(port: u16, user: Option<(&str, &str)>, wanted: u64) {
    broker_sys(port, user, "$SYS/broker/clients/connected", wanted).await
}

/// The broker's own count of subscriptions, once it is `wanted`.
async fn broker_subscriptions(port: u16, wanted: u64) {
    broker_sys(port, None, "$SYS/broker/subscriptions/count", wanted).await
}

/// A count the broker publishes under `$SYS`, once it is `wanted` besides
/// the one client and subscription of the subscriber reading it.
async fn broker_sys(port: u16, user: Option<(&str, &str)>, count: &str, wanted: u64) {
    let mut sys = Subscriber::start_as(port, count, user).await;
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(m) = sys.try_next(Duration::from_secs(2)).await {
            // (The retained count a subscriber gets first may be older
            // than its own connection: 0 is such a count, not ours.)
            last = m.payload.as_u64().and_then(|n| n.checked_sub(1));
            if last == Some(wanted) {
                return;
            }
        }
    }
    panic!("the broker's {count} never came to {wanted} besides ours; last: {last:?}");
}

/// A broker that publishes its `$SYS` counts every second.
/// Waits for the metrics of the adaptor in `pod` to count `connections`
/// shared connections carrying `devices` devices.
async fn shared_counts(kubelet: &LocalKubelet, pod: &str, connections: u64, devices: u64) {
    let port = kubelet
        .metrics_port(pod)
        .expect("the adaptor serves metrics");
    let metric = |name: &'static str| async move {
        metric_at(port, &format!("devicelink_adaptor_mqtt_{name}"))
            .await
            .map(|v| v as u64)
    };
    eventually_showing(
        "the adaptor's count of shared connections",
        WAIT,
        || async {
            let now = (
                metric("shared_connections").await,
                metric("shared_connection_devices").await,
            );
            (now == (Some(connections), Some(devices)))
                .then_some(())
                .ok_or(format!("{now:?}"))
        },
    )
    .await
}

async fn counting_broker(users: &[(&str, &str)]) -> Broker {
    Broker::mosquitto_with(free_port(), users, "sys_interval 1").await
}

#[tokio::test]
async fn fans_with_equal_settings_share_one_connection_and_keep_their_own_topics() {
    let namespace = "e2e-mqtt-sharing";
    let (_guard, client) = begin(namespace).await;
    let users = [("plant", "plant-password"), ("lab", "lab-password")];
    let broker = counting_broker(&users).await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let plant = json!({"server": broker.url(),
                       "basicAuth": {"username": "plant", "password": "plant-password"}});
    let with = |extra: Value| {
        let mut c = plant.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let qos1 = json!({"qos": 1, "retained": true});
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    // Three fans that may share, with their own buffer sizes (the device's
    // own, not the connection's); three that ask for a connection of their own.
    for (name, gear, client, message) in [
        ("attic", "slow", plant.clone(), qos1.clone()),
        (
            "cellar",
            "middle",
            with(json!({"messageChannelDepth": 10})),
            qos1.clone(),
        ),
        ("garage", "fast", plant.clone(), json!({"qos": 0})),
        (
            "named",
            "slow",
            with(json!({"clientID": "e2e-named-fan"})),
            qos1.clone(),
        ),
        (
            "willing",
            "slow",
            plant.clone(),
            json!({"will": {"content": "Z29uZQ=="}}),
        ),
        (
            "alone",
            "slow",
            with(json!({"sharedConnection": false})),
            qos1.clone(),
        ),
    ] {
        create_connected(&links, &fan(namespace, name, gear, client, message)).await;
    }
    let shared = client_id(&devices, "attic").await;
    assert!(shared.starts_with(SHARED), "{shared}");
    assert_eq!(client_id(&devices, "cellar").await, shared);
    assert_eq!(client_id(&devices, "garage").await, shared);
    assert_eq!(client_id(&devices, "named").await, "e2e-named-fan");
    for own in ["willing", "alone"] {
        let id = client_id(&devices, own).await;
        assert!(
            id.starts_with("devicelink-") && !id.starts_with(SHARED),
            "{own}: {id}"
        );
    }
    // Six fans, four connections; the adaptor counts one shared, carrying
    // three fans.
    broker_counts(broker.port, Some(users[0]), 4).await;
    shared_counts(&kubelet, POD, 1, 3).await;

    // Each fan on its own topic with its own status.
    let login = Some(users[0]);
    let topic = |name: &str| format!("e2e/sharing/{namespace}/{name}");
    for (name, gear) in [("attic", "slow"), ("cellar", "middle"), ("garage", "fast")] {
        let mut status = Subscriber::start_as(broker.port, &topic(name), login).await;
        status
            .next_matching(WAIT, |p| p["gear"] == gear && p["rotatingSpeed"].is_i64())
            .await;
    }

    // A write to one fan changes that fan only.
    let mut cellar = Subscriber::start_as(broker.port, &topic("cellar"), login).await;
    let mut replies = Subscriber::start_as(
        broker.port,
        &format!("{}/$write/$reply", topic("cellar")),
        login,
    )
    .await;
    mqtt::publish_as(
        broker.port,
        login,
        &format!("{}/$write", topic("cellar")),
        br#"{"gear": "fast"}"#,
    )
    .await;
    let answer = replies.next(WAIT).await;
    assert_eq!(answer.payload["ok"], true, "{:?}", answer.payload);
    assert_eq!(answer.payload["applied"]["gear"], "fast");
    cellar.next_matching(WAIT, |p| p["gear"] == "fast").await;
    let mut attic = Subscriber::start_as(broker.port, &topic("attic"), login).await;
    for _ in 0..3 {
        assert_eq!(attic.next(WAIT).await.payload["gear"], "slow");
    }

    // New credentials: the fan moves to the connection for them; the
    // others stay where they were.
    let mut moved = links.get("garage").await.unwrap();
    let spec = moved.spec.template.spec.as_mut().unwrap();
    spec["extension"]["mqtt"]["client"]["basicAuth"] =
        json!({"username": "lab", "password": "lab-password"});
    moved.metadata.managed_fields = None;
    moved.status = None;
    links
        .patch(
            "garage",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&moved),
        )
        .await
        .expect("new credentials for the garage fan");
    let lab = eventually_showing("the garage fan on the lab connection", WAIT, || async {
        let id = client_id(&devices, "garage").await;
        (id != shared).then_some(id.clone()).ok_or(id)
    })
    .await;
    assert!(lab.starts_with(SHARED), "{lab}");
    assert_eq!(client_id(&devices, "attic").await, shared);
    // (The test's own subscribers are clients too.)
    drop((cellar, replies, attic));
    broker_counts(broker.port, login, 5).await;
    shared_counts(&kubelet, POD, 2, 3).await;

    // One fan deleted: its retained status is cleared; the fans that shared
    // its connection go on publishing.
    delete_links_and_wait(&links, &["cellar"]).await;
    shared_counts(&kubelet, POD, 2, 2).await;
    let mut cleared = Subscriber::start_as(broker.port, &topic("cellar"), login).await;
    assert!(
        cleared.try_next(Duration::from_secs(3)).await.is_none(),
        "no retained status of a deleted fan"
    );
    let mut attic = Subscriber::start_as(broker.port, &topic("attic"), login).await;
    let first = attic.next(WAIT).await.payload["rotatingSpeed"].as_i64();
    let later = attic
        .next_matching(WAIT, |p| p["rotatingSpeed"].as_i64() > first)
        .await;
    assert_eq!(later.payload["gear"], "slow");
    assert_eq!(client_id(&devices, "attic").await, shared);
    drop((cleared, attic));

    delete_links_and_wait(&links, &["attic", "garage", "named", "willing", "alone"]).await;
    // Nobody left on any of them: the adaptor holds no connection.
    broker_counts(broker.port, login, 0).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_broker_outage_loses_nothing_of_any_fan_on_a_shared_connection() {
    let namespace = "e2e-mqtt-sharing-outage";
    let (_guard, client) = begin(namespace).await;
    let port = free_port();
    Broker::forget_persisted(port);
    let broker = Broker::start_persistent(port).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    let names = ["kiln", "press", "dryer"];
    let mut subscriber =
        Subscriber::start_durable(port, &format!("e2e/sharing/{namespace}/+")).await;
    for name in names {
        let client = json!({"server": broker.url(), "maxReconnectInterval": "2s"});
        create_connected(
            &links,
            &fan(namespace, name, "fast", client, json!({"qos": 1})),
        )
        .await;
    }
    let shared = client_id(&devices, "kiln").await;
    assert!(shared.starts_with(SHARED), "{shared}");
    for name in &names[1..] {
        assert_eq!(client_id(&devices, name).await, shared);
    }

    let mut seen: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    let mut take = |m: mqtt::Received| {
        let name = m.topic.rsplit('/').next().unwrap().to_string();
        let speed = m.payload["rotatingSpeed"].as_i64().expect("a fan's status");
        seen.entry(name).or_default().push(speed);
    };
    let until = Instant::now() + Duration::from_secs(4);
    while let Some(m) = subscriber
        .try_next(until.saturating_duration_since(Instant::now()))
        .await
    {
        take(m);
    }
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let _broker = Broker::start_persistent(port).await;
    // The backlog, then live reports, until each fan has reported well
    // past the outage.
    let until = Instant::now() + Duration::from_secs(20);
    while let Some(m) = subscriber
        .try_next(until.saturating_duration_since(Instant::now()))
        .await
    {
        take(m);
    }
    for name in names {
        let mut speeds = seen.get(name).cloned().unwrap_or_default();
        // QoS 1 is at least once: repeats are not gaps.
        speeds.dedup();
        assert!(
            speeds.len() >= 25,
            "{name} reported before, during and after: {speeds:?}"
        );
        for pair in speeds.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "{name}: a gap or a step back: {speeds:?}"
            );
        }
    }
    delete_links_and_wait(&links, &names).await;
    operator.stop().await;
    Broker::forget_persisted(port);
}

#[tokio::test]
async fn an_adaptor_told_not_to_share_gives_every_fan_its_own_connection() {
    let namespace = "e2e-mqtt-sharing-off";
    let (_guard, client) = begin(namespace).await;
    let broker = counting_broker(&[]).await;
    let operator = operator_sharing("operator-no-sharing", false, &[]);
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    for name in ["left", "right"] {
        let client = json!({"server": broker.url()});
        create_connected(&links, &fan(namespace, name, "slow", client, json!({}))).await;
    }
    // The adaptor pod may be one from an earlier test, started with other
    // settings: the operator replaces it, and the fans reconnect from it.
    let ids = eventually_showing("each fan on a connection of its own", WAIT, || async {
        let ids = [
            client_id(&devices, "left").await,
            client_id(&devices, "right").await,
        ];
        (ids.iter().all(|id| !id.starts_with(SHARED)) && ids[0] != ids[1])
            .then_some(ids.clone())
            .ok_or(format!("{ids:?}"))
    })
    .await;
    for id in ids {
        assert!(id.starts_with("devicelink-"), "{id}");
    }
    broker_counts(broker.port, None, 2).await;
    delete_links_and_wait(&links, &["left", "right"]).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_topic_the_broker_refuses_one_fan_does_not_take_the_others_down() {
    let namespace = "e2e-mqtt-sharing-acl";
    let (_guard, client) = begin(namespace).await;
    // Anonymous clients may publish under .../open only (MQTT 5 brokers
    // refuse the rest in their acknowledgement: NotAuthorized).
    // Not under the log directory: mosquitto drops to its own user, which
    // may not enter root's cache.
    let acl = std::env::temp_dir().join("devicelink-e2e-mqtt-sharing.acl");
    std::fs::write(
        &acl,
        format!(
            "topic readwrite e2e/sharing/{namespace}/open\ntopic readwrite e2e/sharing/{namespace}/open/#\ntopic read $SYS/#\n"
        ),
    )
    .unwrap();
    let broker =
        Broker::mosquitto_with(free_port(), &[], &format!("acl_file {}", acl.display())).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    let v5 = json!({"server": broker.url(), "protocolVersion": 5});
    create_connected(
        &links,
        &fan(namespace, "open", "fast", v5.clone(), json!({"qos": 1})),
    )
    .await;
    links
        .create(
            &Default::default(),
            &fan(namespace, "closed", "fast", v5, json!({"qos": 1})),
        )
        .await
        .expect("create the closed fan");
    let why = wait_reason(
        &links,
        "closed",
        "DeviceConnected",
        "False",
        "MQTTUndelivered",
    )
    .await;
    assert!(why.message.contains("NotAuthorized"), "{}", why.message);
    // The same connection carries the open fan's reports all along.
    assert_eq!(
        client_id(&devices, "open").await,
        client_id(&devices, "closed").await
    );
    let mut open = Subscriber::start(broker.port, &format!("e2e/sharing/{namespace}/open")).await;
    let first = open.next(WAIT).await.payload["rotatingSpeed"].as_i64();
    open.next_matching(WAIT, |p| p["rotatingSpeed"].as_i64() > first)
        .await;
    let link = links.get("open").await.unwrap();
    let connected = link
        .conditions()
        .iter()
        .find(|c| c.type_ == "DeviceConnected")
        .cloned()
        .unwrap();
    assert_eq!(
        (connected.status.as_str(), connected.reason.as_str()),
        ("True", "Healthy"),
        "{connected:?}"
    );
    delete_links_and_wait(&links, &["open", "closed"]).await;
    operator.stop().await;
}

/// A lamp that speaks MQTT itself: its state is one JSON message on `topic`.
fn lamp(namespace: &str, name: &str, server: &str, topic: &str) -> DeviceLink {
    mqtt_device::link(
        namespace,
        name,
        json!({
            "protocol": {
                "pattern": "AttributedMessage",
                "client": {"server": server},
                "message": {"topic": format!("{topic}/:operator"), "operator": {"write": "set"}},
            },
            "properties": [{"name": "brightness", "type": "int"}],
        }),
    )
}

#[tokio::test]
async fn mqtt_devices_on_one_broker_share_a_connection_and_each_hears_its_topics() {
    let namespace = "e2e-mqtt-sharing-native";
    let (_guard, client) = begin(namespace).await;
    let broker = counting_broker(&[]).await;
    let operator = start_operator();
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<MQTTDevice> = Api::namespaced(client.clone(), namespace);
    let (server, port) = (broker.url(), broker.port);
    let hall = format!("e2e/sharing/{namespace}/hall");
    let porch = format!("e2e/sharing/{namespace}/porch");
    // The lamps' last states, kept by the broker from before any device
    // was there (a lamp that has said nothing yet is not connected).
    mqtt::publish_retained(port, &hall, br#"{"brightness": 3}"#).await;
    mqtt::publish_retained(port, &porch, br#"{"brightness": 1}"#).await;
    create_connected(&links, &lamp(namespace, "hall", &server, &hall)).await;
    wait_property(&devices, "hall", "brightness", "3").await;
    create_connected(&links, &lamp(namespace, "porch", &server, &porch)).await;
    // A second device listening to the hall lamp joins the connection
    // whose subscription to its topic is old: it still gets the retained
    // state, as it would on a connection of its own.
    create_connected(&links, &lamp(namespace, "hall-copy", &server, &hall)).await;
    wait_property(&devices, "hall-copy", "brightness", "3").await;
    // One connection for the three, and the hall's topic subscribed once.
    broker_counts(port, None, 1).await;
    broker_subscriptions(port, 2).await;
    shared_counts(&kubelet, MQTT_POD, 1, 3).await;

    // Each message reaches every device listening to its topic.
    mqtt::publish(port, &hall, br#"{"brightness": 7}"#).await;
    mqtt::publish(port, &porch, br#"{"brightness": 4}"#).await;
    wait_property(&devices, "hall", "brightness", "7").await;
    wait_property(&devices, "hall-copy", "brightness", "7").await;
    wait_property(&devices, "porch", "brightness", "4").await;

    // The porch lamp goes: nobody listens to its topic, which is
    // unsubscribed. The hall's stays while one device still listens.
    delete_links_and_wait(&links, &["porch"]).await;
    broker_subscriptions(port, 1).await;
    delete_links_and_wait(&links, &["hall"]).await;
    shared_counts(&kubelet, MQTT_POD, 1, 1).await;
    mqtt::publish(port, &hall, br#"{"brightness": 9}"#).await;
    wait_property(&devices, "hall-copy", "brightness", "9").await;
    broker_subscriptions(port, 1).await;

    delete_links_and_wait(&links, &["hall-copy"]).await;
    broker_counts(port, None, 0).await;
    operator.stop().await;
}
