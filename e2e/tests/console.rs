//! The console on real parts: a real API server decides who may see what
//! (TokenReview, SubjectAccessReview), real mosquitto carries the device
//! topics, the dummy adaptor publishes a fan's status, and the console runs
//! as its ServiceAccount with the chart's RBAC.

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, begin,
    console::{
        Socket, get_json, install_rbac, next_frame, open_page, open_stream, open_stream_with, user,
    },
    create_connected, delete_links_and_wait, dummy_link, eventually, eventually_showing, kubectl,
    modbus::{ModbusServer, device_with_writes, holding},
    process::{Console, Operator, free_port, http_get, http_post_as, start_operator},
};
use futures::StreamExt;
use k8s_openapi::api::{core::v1::Secret, rbac::v1::Role};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "e2e-console";

#[tokio::test]
async fn the_console_shows_devicelinks_and_streams_their_topics_to_who_may_see_them() {
    let (_guard, client) = begin(NAMESPACE).await;
    let broker_port = free_port();
    // Nothing dropped between the broker and the console: the flood below
    // checks what the console itself drops.
    let broker = Broker::mosquitto_with(broker_port, &[], "max_queued_messages 0").await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let _rbac = install_rbac();
    let console = Console::start(
        "e2e-console",
        // A queue of 2,048 per client, a stalled client never cut (the
        // slow reader below must be thinned, not cut), rights checked
        // again every second.
        &[
            "--client-queue",
            "2048",
            "--send-timeout-seconds",
            "300",
            "--review-seconds",
            "1",
            "--write-timeout-seconds",
            "3",
        ],
    );
    let viewer = user(NAMESPACE, "viewer", &["get", "list", "watch"]);
    let writer = user(NAMESPACE, "writer", &["get", "update"]);
    let stranger = user(NAMESPACE, "stranger", &[]);

    let extension = |name: &str, version: u8| {
        json!({"mqtt": {"client": {"server": broker.url(), "protocolVersion": version},
                        "message": {"topic": format!("e2e/console/:namespace/{name}")}}})
    };
    // The attic fan speaks MQTT 5 (answers matched by correlation data),
    // the cellar fan 3.1.1 (answers on the write topic's reply topic).
    let fan = dummy_link(
        NAMESPACE,
        "attic-fan",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "attic"}, "gear": "fast", "on": true,
                        "extension": extension("attic-fan", 5)}}),
    );
    let cellar = dummy_link(
        NAMESPACE,
        "cellar-fan",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "cellar"}, "gear": "slow", "on": false,
                        "extension": extension("cellar-fan", 4)}}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    create_connected(&links, &fan).await;
    create_connected(&links, &cellar).await;
    // A meter on a node that does not exist: no adaptor ever publishes on
    // its topic, so the test alone does.
    let meter = dummy_link(
        NAMESPACE,
        "flood-meter",
        "no-such-node",
        json!({"spec": {"protocol": {"location": "nowhere"}, "extension": extension("flood-meter", 4)}}),
    );
    links
        .create(&PostParams::default(), &meter)
        .await
        .expect("create the meter");

    // Nothing without a token, nothing for a token without rights.
    eventually("the console to be ready", WAIT, || async {
        (http_get(console.port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    let (code, _) = http_get(
        console.port,
        &format!("/api/devicelinks?namespace={NAMESPACE}"),
    )
    .await
    .unwrap();
    assert_eq!(code, 401);
    let (code, body) = get_json(
        console.port,
        &format!("/api/devicelinks?namespace={NAMESPACE}"),
        &stranger,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(&format!(
            "may not list devicelinks.edge.cattle.io in namespace \"{NAMESPACE}\""
        )),
        "{body}"
    );
    let (code, _) = get_json(console.port, "/api/devicelinks", &viewer).await;
    assert_eq!(code, 403, "the viewer may list only in its namespace");

    // The viewer sees both DeviceLinks, with the fan's device status and
    // its last message once the console has one.
    let shown = eventually_showing("the fan with its last message", WAIT, || async {
        let (code, body) = get_json(
            console.port,
            &format!("/api/devicelinks/{NAMESPACE}/attic-fan"),
            &viewer,
        )
        .await;
        // The console's caches catch up with the API server and the broker.
        (code == 200
            && body["lastMessage"].is_object()
            && body["stream"]["connected"] == true
            && body["phase"] == "DeviceConnected"
            && body["device"]["status"]["gear"].is_string())
        .then_some(body.clone())
        .ok_or(format!("{code} {body}"))
    })
    .await;
    assert_eq!(shown["kind"], "DummySpecialDevice");
    assert_eq!(shown["node"], "edge-worker");
    assert_eq!(
        shown["stream"]["statusTopic"],
        format!("e2e/console/{NAMESPACE}/attic-fan")
    );
    assert_eq!(shown["device"]["status"]["gear"], "fast", "{shown}");
    assert_eq!(shown["lastMessage"]["value"]["gear"], "fast");
    let names = eventually_showing("the three DeviceLinks listed", WAIT, || async {
        let (code, listed) = get_json(
            console.port,
            &format!("/api/devicelinks?namespace={NAMESPACE}"),
            &viewer,
        )
        .await;
        let names: Vec<String> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["name"].as_str().unwrap_or_default().to_string())
            .collect();
        (code == 200 && names.len() == 3)
            .then_some(names.clone())
            .ok_or(format!("{code} {names:?}"))
    })
    .await;
    assert_eq!(names, ["attic-fan", "cellar-fan", "flood-meter"]);
    let (code, _) = get_json(
        console.port,
        &format!("/api/devicelinks/{NAMESPACE}/no-such-link"),
        &viewer,
    )
    .await;
    assert_eq!(code, 404);

    // The stream: refused to the stranger, and for another namespace.
    assert_eq!(
        open_stream(console.port, &format!("namespace={NAMESPACE}"), &stranger)
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        open_stream(console.port, "namespace=default&names=attic-fan", &viewer)
            .await
            .err(),
        Some(403)
    );
    // The fan's messages in the seed's format: topic, data, RFC 3339
    // timestamp, plus the DeviceLink and the parsed value.
    let mut fan_stream = open_stream(
        console.port,
        &format!("namespace={NAMESPACE}&names=attic-fan"),
        &viewer,
    )
    .await
    .expect("the viewer may watch");
    let mut speeds = Vec::new();
    while speeds.len() < 3 {
        let frame = next_frame(&mut fan_stream).await.expect("a message");
        assert_eq!(frame["topic"], format!("e2e/console/{NAMESPACE}/attic-fan"));
        assert_eq!(
            (frame["namespace"].as_str(), frame["name"].as_str()),
            (Some(NAMESPACE), Some("attic-fan"))
        );
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        assert_eq!(frame["value"], data, "the value is the data parsed");
        let at = frame["timestamp"].as_str().unwrap();
        assert!(
            at.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "RFC 3339: {at}"
        );
        speeds.push(frame["value"]["rotatingSpeed"].as_i64().unwrap());
    }
    assert!(
        speeds.windows(2).all(|w| w[0] <= w[1]),
        "a fan speeding up, in order: {speeds:?}"
    );

    // Writes: need update on the DeviceLink; answered with what the
    // adaptor said, over MQTT 5 and 3.1.1 alike.
    let write = |name: &str| format!("/api/devicelinks/{NAMESPACE}/{name}/write");
    let post = |path: String, token: String, body: &'static str| async move {
        let (code, body) = http_post_as(console.port, &path, &token, body)
            .await
            .expect("the console answers");
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    // A device's first status on the broker means its adaptor's MQTT
    // connection, and the write subscription made on it, are up.
    for fan in ["attic-fan", "cellar-fan"] {
        eventually(
            &format!("{fan}'s status seen by the console"),
            WAIT,
            || async {
                let (_, body) = get_json(
                    console.port,
                    &format!("/api/devicelinks/{NAMESPACE}/{fan}"),
                    &viewer,
                )
                .await;
                body["lastMessage"].is_object().then_some(())
            },
        )
        .await;
    }
    let (code, body) = post(write("attic-fan"), viewer.clone(), r#"{"gear": "middle"}"#).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("may not update"),
        "{body}"
    );
    for fan in ["attic-fan", "cellar-fan"] {
        let (code, body) = post(
            write(fan),
            writer.clone(),
            r#"{"gear": "middle", "on": true}"#,
        )
        .await;
        assert_eq!(
            (code, &body["applied"]),
            (200, &json!({"gear": "middle", "on": true})),
            "{fan}: {body}"
        );
        for (bad, reason) in [
            (r#"{"rotatingSpeed": 5}"#, "rotatingSpeed is read-only"),
            (
                r#"{"colour": "red"}"#,
                "colour is not a property of this device",
            ),
        ] {
            let (code, body) = post(write(fan), writer.clone(), bad).await;
            assert_eq!(
                (code, &body["ok"]),
                (422, &json!(false)),
                "{fan} {bad}: {body}"
            );
            let said = body["refused"].to_string();
            let (property, why) = reason.split_once(' ').unwrap();
            assert!(
                said.contains(property) && said.contains(why),
                "{fan} {bad}: {body}"
            );
        }
        let (code, body) = post(write(fan), writer.clone(), r#"{"on": "yes"}"#).await;
        assert_eq!(code, 422, "a wrong type: {body}");
    }
    // A Modbus thermometer (pymodbus): a limit written from the console
    // lands in its holding register; its temperature is read-only.
    let device = ModbusServer::tcp(
        &[1],
        json!({"1": {"input": {"0": 2965}, "holding": {"0": 30}}}),
    )
    .await;
    let thermometer = device_with_writes(
        NAMESPACE,
        "thermometer",
        &device.endpoint(),
        &broker.url(),
        "e2e/console",
        json!([
            {"name": "temperature", "type": "uint16", "readOnly": true,
             "visitor": {"register": "InputRegister", "offset": 0}},
            {"name": "limit", "type": "int16",
             "visitor": {"register": "HoldingRegister", "offset": 0}},
        ]),
    );
    create_connected(&links, &thermometer).await;
    // Its first status on the broker: its write subscription is up too.
    eventually(
        "the thermometer's status seen by the console",
        WAIT,
        || async {
            let (_, body) = get_json(
                console.port,
                &format!("/api/devicelinks/{NAMESPACE}/thermometer"),
                &viewer,
            )
            .await;
            body["lastMessage"].is_object().then_some(())
        },
    )
    .await;
    let (code, body) = post(write("thermometer"), writer.clone(), r#"{"limit": 35}"#).await;
    assert_eq!(
        (code, &body["applied"]),
        (200, &json!({"limit": 35})),
        "{body}"
    );
    assert_eq!(holding(&mut device.client(1).await, 0, 1).await, [35]);
    let (code, body) = post(
        write("thermometer"),
        writer.clone(),
        r#"{"temperature": 20}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(body["refused"].to_string().contains("read-only"), "{body}");
    let (code, body) = post(write("thermometer"), writer.clone(), r#"{"limit": 40000}"#).await;
    assert_eq!(code, 422, "out of an int16's range: {body}");
    assert_eq!(
        holding(&mut device.client(1).await, 0, 1).await,
        [35],
        "nothing written"
    );

    let (code, body) = post(write("cellar-fan"), writer.clone(), "[1, 2]").await;
    assert_eq!(code, 400, "{body}");
    // No adaptor serves the meter: no answer comes.
    let (code, body) = post(write("flood-meter"), writer.clone(), r#"{"on": true}"#).await;
    assert_eq!(code, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no answer"),
        "{body}"
    );
    // The write reached the device: its status says so.
    eventually("the cellar fan in middle gear", WAIT, || async {
        let (_, body) = get_json(
            console.port,
            &format!("/api/devicelinks/{NAMESPACE}/cellar-fan"),
            &viewer,
        )
        .await;
        (body["device"]["status"]["gear"] == "middle").then_some(())
    })
    .await;

    // A flood on the meter's topic: a client that reads along gets every
    // message in order; one that does not read is thinned, and every
    // message it misses is counted in the next one it gets.
    let flood = format!("namespace={NAMESPACE}&names=flood-meter");
    let mut fast = open_stream(console.port, &flood, &viewer).await.unwrap();
    let mut slow = open_stream_with(console.port, &flood, &viewer, Some(4096))
        .await
        .unwrap();
    const MESSAGES: u64 = 10_000;
    let publisher = tokio::spawn(flood_topic(
        broker_port,
        format!("e2e/console/{NAMESPACE}/flood-meter"),
        MESSAGES,
    ));
    let fast_seen = read_sequence(&mut fast, MESSAGES).await;
    publisher.await.unwrap();
    assert_eq!(
        fast_seen.dropped, 0,
        "the reader that keeps up loses nothing"
    );
    let slow_seen = read_sequence(&mut slow, MESSAGES).await;
    assert!(slow_seen.dropped > 0, "the slow reader was thinned");
    assert_eq!(
        slow_seen.received + slow_seen.dropped,
        MESSAGES,
        "every message the slow reader missed was counted"
    );

    // The broker restarts: the console reconnects by itself and the open
    // stream goes on.
    broker.stop().await;
    eventually("the console to see the broker gone", WAIT, || async {
        let (_, body) = get_json(
            console.port,
            &format!("/api/devicelinks/{NAMESPACE}/attic-fan"),
            &viewer,
        )
        .await;
        (body["stream"]["connected"] == false).then_some(())
    })
    .await;
    let restarted = k8s_openapi::jiff::Timestamp::now();
    let _broker = Broker::start_on(broker_port, &[]).await;
    // Writes go through again once the console is back (503 until then),
    // and the open stream shows what the write changed.
    eventually("a write through the restarted broker", WAIT, || async {
        let (code, _) = post(write("attic-fan"), writer.clone(), r#"{"gear": "slow"}"#).await;
        (code == 200).then_some(())
    })
    .await;
    loop {
        let frame = next_frame(&mut fan_stream)
            .await
            .expect("the stream goes on after the broker restarts");
        let at: k8s_openapi::jiff::Timestamp =
            frame["timestamp"].as_str().unwrap().parse().unwrap();
        if at > restarted && frame["value"]["gear"] == "slow" {
            break;
        }
    }

    // The viewer loses the right to watch: the open stream is closed.
    let out = kubectl::kubectl(&["delete", "rolebinding", "viewer", "-n", NAMESPACE], None);
    assert!(out.success, "{}", out.text);
    // Frames already on their way may come first; then the close.
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match fan_stream.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the stream closed once the right is gone");
    assert_eq!(closed, Some(1008), "closed as a policy violation");
    let _ = fan_stream.close(None).await;

    delete_links_and_wait(
        &links,
        &["attic-fan", "cellar-fan", "thermometer", "flood-meter"],
    )
    .await;
    console.stop().await;
    operator.stop().await;
}

/// What a stream client saw of a numbered sequence.
struct Seen {
    received: u64,
    dropped: u64,
}

/// Reads the numbered messages until the last one, checking that they
/// come in order and that every gap is what the console says it dropped.
async fn read_sequence(socket: &mut Socket, last: u64) -> Seen {
    let (mut received, mut dropped, mut previous) = (0, 0, 0);
    loop {
        let frame = next_frame(socket).await.expect("the stream goes on");
        let Some(n) = frame["value"]["n"].as_u64() else {
            continue;
        };
        let told = frame["dropped"].as_u64().unwrap_or(0);
        assert_eq!(n, previous + 1 + told, "in order, and every gap told");
        received += 1;
        dropped += told;
        previous = n;
        if n == last {
            return Seen { received, dropped };
        }
    }
}

/// Publishes `count` numbered messages of 4 KiB on `topic`, about 1,000 a
/// second, each acknowledged by the broker.
async fn flood_topic(port: u16, topic: String, count: u64) {
    let mut options = rumqttc::MqttOptions::new("e2e-console-flood", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
    let driver = tokio::spawn(async move {
        let mut acked = 0;
        while acked < count {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = events.poll().await {
                acked += 1;
            }
        }
    });
    let padding = "x".repeat(4000);
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for n in 1..=count {
        if n % 10 == 1 {
            pace.tick().await;
        }
        let payload = json!({"n": n, "padding": padding}).to_string();
        client
            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    tokio::time::timeout(WAIT, driver)
        .await
        .expect("every message acknowledged")
        .unwrap();
}

#[tokio::test]
async fn the_console_page_shows_a_device_live_and_writes_to_it_in_a_browser() {
    let namespace = "e2e-console-page";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let _rbac = install_rbac();
    let console = Console::start("e2e-console-page", &[]);
    // A plant operator who may watch and write the DeviceLinks here.
    let token = user(namespace, "operator", &["get", "list", "watch", "update"]);

    let fan = dummy_link(
        namespace,
        "attic-fan",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "attic"}, "gear": "fast", "on": true,
            "extension": {"mqtt": {"client": {"server": broker.url()},
                                   "message": {"topic": "e2e/console-page/:namespace/:name"}}}}}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &fan).await;
    eventually("the console to be ready", WAIT, || async {
        (http_get(console.port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;

    // A person opens the page, types the namespace and a token, and looks.
    let mut browser = devicelink_e2e::browser::Browser::start("e2e-console-browser").await;
    open_page(&mut browser, console.port, namespace, &token).await;
    let row = browser
        .wait_for(
            "the fan in the page's table, connected",
            "[...document.querySelectorAll('#links tr')].map(r => r.innerText)
               .find(r => r.includes('DeviceConnected')) ?? null",
        )
        .await;
    let row = row.as_str().unwrap();
    // As kubectl get dl shows it: the last stage and its reason.
    for column in [
        "attic-fan",
        "DummySpecialDevice",
        "edge-worker",
        "dummy",
        "DeviceConnected",
        "Healthy",
    ] {
        assert!(row.contains(column), "{column} in {row:?}");
    }

    // Its device: live values, a chart of the numbers, the conditions and
    // the Events.
    browser
        .eval("document.querySelector('#links tr').click(); true")
        .await;
    // The value shown for a property, or null.
    let shown = |property: &str| {
        format!(
            "(() => {{ const row = [...document.querySelectorAll('#properties tr')]
                .find(r => r.cells[0] && r.cells[0].innerText === {property:?});
               return row ? JSON.parse(row.cells[1].innerText) : null; }})()"
        )
    };
    let first = browser
        .wait_for("the fan's speed on the page", &shown("rotatingSpeed"))
        .await
        .as_i64()
        .unwrap();
    browser
        .wait_for(
            "the speed to move on the page (live)",
            &format!("({}) > {first}", shown("rotatingSpeed")),
        )
        .await;
    browser
        .wait_for(
            "a chart of the speed",
            "!!document.querySelector('#properties svg polyline')",
        )
        .await;
    // From a laptop to a wall screen, the list and the device sit side by
    // side, apart, and every column of the list shows.
    for (width, height) in [(1400, 1000), (2560, 1440)] {
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        let layout = browser
            .eval(
                "(() => { const list = document.querySelector('main > section');
                   const a = list.getBoundingClientRect();
                   const b = document.getElementById('detail').getBoundingClientRect();
                   return { apart: a.right <= b.left, listRight: a.right, detailLeft: b.left,
                            columnsShow: list.scrollWidth <= list.clientWidth,
                            window: window.innerWidth }; })()",
            )
            .await;
        assert_eq!(layout["window"], width, "{layout}");
        assert_eq!(layout["apart"], true, "at {width}x{height}: {layout}");
        assert_eq!(layout["columnsShow"], true, "at {width}x{height}: {layout}");
    }
    let conditions = browser
        .eval("document.getElementById('conditions').innerText")
        .await;
    for stage in [
        "NodeExisted",
        "ModelExisted",
        "AdaptorExisted",
        "DeviceCreated",
        "DeviceConnected",
    ] {
        assert!(conditions.as_str().unwrap().contains(stage), "{conditions}");
    }
    browser
        .wait_for(
            "the fan's Events on the page",
            "document.getElementById('events').innerText.includes('DeviceConnected')",
        )
        .await;

    // A write from the form: the adaptor's answer shows, then the value.
    browser
        .eval(
            "(() => { const row = [...document.querySelectorAll('#properties tr')]
                .find(r => r.cells[0] && r.cells[0].innerText === 'gear');
               row.querySelector('input').value = 'middle';
               row.querySelector('button').click(); return true; })()",
        )
        .await;
    let answer = browser
        .wait_for(
            "the adaptor's answer on the page",
            "(() => { const a = [...document.querySelectorAll('#properties tr')]
                .find(r => r.cells[0] && r.cells[0].innerText === 'gear')
                .querySelector('.answer').innerText;
               return a && a !== '…' ? a : null; })()",
        )
        .await;
    assert_eq!(answer, "applied");
    browser
        .wait_for(
            "the new gear on the page",
            &format!("({}) === 'middle'", shown("gear")),
        )
        .await;

    browser.stop().await;
    delete_links_and_wait(&links, &["attic-fan"]).await;
    console.stop().await;
    operator.stop().await;
}

/// Broker credentials by reference: an operator not told of the console
/// grants it nothing, and the console says why it cannot follow the fan;
/// told (`--grant-console`, as the chart does with console.enabled), it
/// grants exactly the Secret the fan's MQTT extension names (not another
/// reference the DeviceLink has), the console reaches the fan through a
/// broker that takes no anonymous clients, and a rotated password (on the
/// broker and in the Secret) brings it back without anyone touching the
/// DeviceLink.
#[tokio::test]
async fn the_console_follows_a_broker_whose_credentials_come_from_a_secret() {
    let namespace = "e2e-console-secrets";
    let (_guard, client) = begin(namespace).await;
    let broker_port = free_port();
    let broker = Broker::start_on(broker_port, &[("plant", "first-password")]).await;
    let operator = Operator::start_with("e2e-console-secrets-operator", &[]);
    let _kubelet = LocalKubelet::start(client.clone());
    let _rbac = install_rbac();
    let console = Console::start("e2e-console-secrets", &[]);
    let token = user(namespace, "operator", &["get", "list", "watch", "update"]);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let apply = PatchParams::apply("e2e").force();
    let credentials = |password: &str| -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "broker-auth"},
            "stringData": {"username": "plant", "password": password}}))
        .unwrap()
    };
    secrets
        .patch(
            "broker-auth",
            &apply,
            &Patch::Apply(credentials("first-password")),
        )
        .await
        .expect("the broker's credentials");
    let site: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "site-notes"}, "stringData": {"notes": "not for the console"}}))
    .unwrap();
    secrets
        .patch("site-notes", &apply, &Patch::Apply(site))
        .await
        .expect("a Secret the MQTT extension does not use");

    let mut fan = dummy_link(
        namespace,
        "boiler-fan",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "boiler room"}, "gear": "fast", "on": true,
            "extension": {"mqtt": {
                "client": {"server": broker.url(), "protocolVersion": 5,
                           "basicAuth": {"usernameRef": {"name": "broker", "item": "username"},
                                         "passwordRef": {"name": "broker", "item": "password"}}},
                "message": {"topic": "e2e/console-secrets/:namespace/:name"}}}}}),
    );
    fan.spec.references = serde_json::from_value(json!([
        {"name": "broker", "secret": {"name": "broker-auth"}},
        {"name": "site", "secret": {"name": "site-notes"}},
    ]))
    .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &fan).await;

    // Not granted: the console names the reference and the API server's refusal.
    let path = format!("/api/devicelinks/{namespace}/boiler-fan");
    eventually_showing("the console to say why it cannot follow", WAIT, || async {
        let (code, body) = get_json(console.port, &path, &token).await;
        let error = body["stream"]["error"].as_str().unwrap_or_default();
        (error.contains(
            "extension.mqtt.client.basicAuth.usernameRef: reference \"broker\" is still being read",
        ) && error.contains("secrets \"broker-auth\" is forbidden"))
        .then_some(())
        .ok_or(format!("{code} {body}"))
    })
    .await;
    operator.stop().await;
    let operator = Operator::start_with("e2e-console-secrets-operator", &["--grant-console"]);

    // The console's grant names the broker's Secret and nothing else.
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    let granted = eventually_showing("the console's grant", WAIT, || async {
        let role = roles
            .get_opt("devicelink-console")
            .await
            .map_err(|e| e.to_string())?;
        let rules = role.and_then(|r| r.rules).ok_or("no Role yet")?;
        Ok::<_, String>(rules)
    })
    .await;
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(
        granted[0].resource_names.as_deref(),
        Some(&["broker-auth".to_string()][..]),
        "{granted:?}"
    );

    // The console is connected with the Secret's credentials and sees the
    // fan; a write through it is answered.
    let connected = || async {
        let (code, body) = get_json(console.port, &path, &token).await;
        (code == 200 && body["stream"]["connected"] == true && body["lastMessage"].is_object())
            .then_some(())
            .ok_or(format!("{code} {body}"))
    };
    eventually_showing(
        "the fan followed with the Secret's credentials",
        WAIT,
        connected,
    )
    .await;
    let write = format!("{path}/write");
    let (code, body) = http_post_as(console.port, &write, &token, r#"{"gear": "middle"}"#)
        .await
        .expect("the console answers");
    assert_eq!(code, 200, "{body}");

    // The password is rotated: the broker takes only the new one, then the
    // Secret says it. The console's old connection is refused; it follows
    // the Secret and connects with the new password by itself.
    broker.stop().await;
    let _broker = Broker::start_on(broker_port, &[("plant", "second-password")]).await;
    secrets
        .patch(
            "broker-auth",
            &apply,
            &Patch::Apply(credentials("second-password")),
        )
        .await
        .expect("the rotated password");
    eventually_showing("a write with the rotated password", WAIT, || async {
        let (code, body) = http_post_as(console.port, &write, &token, r#"{"gear": "slow"}"#)
            .await
            .ok_or("no answer")?;
        (code == 200).then_some(()).ok_or(format!("{code} {body}"))
    })
    .await;
    eventually_showing("the fan followed after the rotation", WAIT, connected).await;

    // The DeviceLink gone, the console's grant goes with it.
    delete_links_and_wait(&links, &["boiler-fan"]).await;
    eventually("the console's grant revoked", WAIT, || async {
        roles
            .get_opt("devicelink-console")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    console.stop().await;
    operator.stop().await;
}
