//! The publisher's watchdogs and reconnect policy against a broker that
//! stops answering without closing the connection (a TCP front for a real
//! mosquitto that can be frozen: it keeps the connection and drops every
//! byte) or whose connection is cut: pingTimeout and waitTimeout drop the
//! stuck connection, say why, and the messages still arrive once the
//! broker answers again; with autoReconnect false a lost connection stays
//! down and says so; a client that takes over the client ID is named.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use devicelink_e2e::{
    Broker,
    broker::Implementation,
    eventually_showing,
    mqtt::{Subscriber, test_publisher, wait_status},
};
use devicelink_mqtt::{Publisher, publisher::StatusReceiver};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::broadcast,
};

const WAIT: Duration = Duration::from_secs(30);

/// A TCP front for the broker that can freeze (keep every connection open
/// and drop all bytes both ways) and cut (close every connection).
struct Front {
    port: u16,
    frozen: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    cut: broadcast::Sender<()>,
}

impl Front {
    async fn start(broker_port: u16) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut, _) = broadcast::channel(1);
        let front = Front {
            port,
            frozen: frozen.clone(),
            accepted: accepted.clone(),
            cut: cut.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(broker) = tokio::net::TcpStream::connect(("127.0.0.1", broker_port)).await
                else {
                    continue;
                };
                let (frozen, mut cut) = (frozen.clone(), cut.subscribe());
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut broker_read, mut broker_write) = broker.into_split();
                    let up = pipe(&mut client_read, &mut broker_write, &frozen);
                    let down = pipe(&mut broker_read, &mut client_write, &frozen);
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        front
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::SeqCst);
    }

    fn cut(&self) {
        let _ = self.cut.send(());
    }
}

/// Copies bytes one way, dropping them while frozen.
async fn pipe(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    frozen: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !frozen.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A publisher with `client` options (QoS 1, not retained), and its status.
fn publisher(client: serde_json::Value, topic: &str) -> (Publisher, StatusReceiver) {
    test_publisher(json!({
        "client": client,
        "message": {"topic": topic, "qos": 1, "retained": false},
    }))
}

#[tokio::test]
async fn an_unanswered_ping_drops_the_connection_and_it_comes_back() {
    let broker = Broker::start().await;
    let front = Front::start(broker.port).await;
    let server = format!("tcp://127.0.0.1:{}", front.port);
    // The ping goes out every 2 s; an answer missing for 1 s is enough. A
    // reconnect tried while the front is frozen loses its CONNECT: it is
    // tried again after connectTimeout, short here so that the wait below
    // need not outlast the default 30 s.
    let (_p, rx) = publisher(
        json!({"server": server, "keepAlive": "2s", "pingTimeout": "1s", "connectTimeout": "2s"}),
        "e2e/ping/:name",
    );
    wait_status(&rx, true, None).await;
    front.freeze(true);
    wait_status(&rx, false, Some("no ping response within pingTimeout")).await;
    front.freeze(false);
    wait_status(&rx, true, None).await;
    assert!(
        front.accepted.load(Ordering::SeqCst) >= 2,
        "it connected again"
    );
}

#[tokio::test]
async fn an_unacknowledged_message_drops_the_connection_and_is_sent_again() {
    let broker = Broker::start().await;
    let front = Front::start(broker.port).await;
    let mut subscriber = Subscriber::start(broker.port, "e2e/wait/#").await;
    let server = format!("tcp://127.0.0.1:{}", front.port);
    // Pings every 60 s: only the message's missing PUBACK can notice. (A
    // reconnect while frozen is retried after connectTimeout, as above.)
    let (p, rx) = publisher(
        json!({"server": server, "keepAlive": "60s", "waitTimeout": "1s", "connectTimeout": "2s"}),
        "e2e/wait/:name",
    );
    wait_status(&rx, true, None).await;
    front.freeze(true);
    p.publish(br#"{"n":1}"#.to_vec());
    wait_status(&rx, false, Some("not acknowledged within waitTimeout")).await;
    front.freeze(false);
    wait_status(&rx, true, None).await;
    let m = subscriber.next(WAIT).await;
    assert_eq!(m.payload, json!({"n": 1}), "the message was sent again");
}

#[tokio::test]
async fn without_auto_reconnect_a_lost_connection_stays_down_and_says_why() {
    let broker = Broker::start().await;
    let front = Front::start(broker.port).await;
    let server = format!("tcp://127.0.0.1:{}", front.port);
    let (_p, rx) = publisher(
        json!({"server": server, "autoReconnect": false}),
        "e2e/noreconnect/:name",
    );
    wait_status(&rx, true, None).await;
    front.cut();
    let s = wait_status(&rx, false, Some("autoReconnect is false")).await;
    assert!(!s.connected);
    // Well past the first retry (1 s): no new connection was tried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(front.accepted.load(Ordering::SeqCst), 1);
    assert!(!rx.borrow().as_ref().unwrap().connected);
}

/// A client of the test's own, connected to `port` as `client_id` (MQTT
/// 5), polled until the broker ends its connection; it does not come back.
async fn intruder(port: u16, client_id: &str) -> tokio::task::JoinHandle<String> {
    use rumqttc::v5::{AsyncClient, Event, MqttOptions, mqttbytes::v5::Packet};
    let (client, mut events) = AsyncClient::new(MqttOptions::new(client_id, "127.0.0.1", port), 10);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        let _client = client;
        let mut connected_tx = Some(connected_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    });
    tokio::time::timeout(WAIT, connected)
        .await
        .expect("the intruder to connect")
        .expect("the intruder's task");
    handle
}

#[tokio::test]
async fn a_client_that_takes_over_the_client_id_is_named_and_the_connection_comes_back() {
    let broker = Broker::start().await;
    let mut subscriber = Subscriber::start(broker.port, "e2e/takeover/#").await;
    let (p, rx) = publisher(
        json!({"server": broker.url(), "protocolVersion": 5, "clientID": "e2e-takeover"}),
        "e2e/takeover/:name",
    );
    wait_status(&rx, true, None).await;
    // Another client with the same ID: the broker ends the adaptor's
    // connection. HiveMQ says why (MQTT 5 DISCONNECT, SessionTakenOver),
    // and so does the status; mosquitto 2.0.11 only closes the connection
    // (docs/interop.md). The adaptor connects again at once, taking the ID
    // back, so the status is caught by its last error, which stays.
    let intruder = intruder(broker.port, "e2e-takeover").await;
    let (adaptor_sees, intruder_sees) = match broker.implementation {
        Implementation::HiveMq => (
            "another client connected with the same client ID (SessionTakenOver",
            "SessionTakenOver",
        ),
        Implementation::Mosquitto => ("closed by peer", "closed by peer"),
    };
    eventually_showing("the status to say why the connection ended", WAIT, || {
        let seen = rx.borrow().clone();
        async move {
            match seen {
                Some(s)
                    if s.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains(adaptor_sees)) =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    wait_status(&rx, true, None).await;
    let ended = tokio::time::timeout(WAIT, intruder)
        .await
        .expect("the intruder's connection to end")
        .unwrap();
    assert!(ended.contains(intruder_sees), "{ended}");
    // What the adaptor publishes arrives again.
    p.publish(br#"{"n":1}"#.to_vec());
    let m = subscriber.next(WAIT).await;
    assert_eq!(m.payload, json!({"n": 1}));
}
