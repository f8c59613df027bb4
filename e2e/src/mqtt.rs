//! A test subscriber on the real broker.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// A message as the subscriber received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: serde_json::Value,
    pub at: Instant,
}

/// How long a subscriber waits for the broker to take its subscription (a
/// bound on a loaded machine, not a timing check).
const SUBSCRIBED_WITHIN: Duration = Duration::from_secs(60);

/// Subscribes to `filter` and collects messages.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Received>,
    _client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(port: u16, filter: &str) -> Subscriber {
        Subscriber::start_as(port, filter, None).await
    }

    /// Subscribes with a username and password.
    pub async fn start_as(port: u16, filter: &str, user: Option<(&str, &str)>) -> Subscriber {
        let mut options = Subscriber::options("127.0.0.1", port);
        if let Some((user, password)) = user {
            options.set_credentials(user, password);
        }
        Subscriber::run(options, filter).await
    }

    /// Subscribes to a broker on another host (a Service in the cluster).
    pub async fn start_at(host: &str, port: u16, filter: &str) -> Subscriber {
        Subscriber::start_at_as(host, port, filter, None).await
    }

    /// Like [`Subscriber::start_at`], with a username and password.
    pub async fn start_at_as(
        host: &str,
        port: u16,
        filter: &str,
        user: Option<(&str, &str)>,
    ) -> Subscriber {
        let mut options = Subscriber::options(host, port);
        if let Some((user, password)) = user {
            options.set_credentials(user, password);
        }
        Subscriber::run(options, filter).await
    }

    fn options(host: &str, port: u16) -> MqttOptions {
        // Unique per subscriber: a broker drops a client whose ID reconnects.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        large(MqttOptions::new(
            format!("e2e-sub-{}-{n}", std::process::id()),
            host,
            port,
        ))
    }

    /// A subscriber with a session the broker keeps (clean session off,
    /// QoS 1): what is published while it is away, a broker restart
    /// included if the broker persists sessions, reaches it when it is back.
    pub async fn start_durable(port: u16, filter: &str) -> Subscriber {
        let mut options = large(MqttOptions::new(
            format!("e2e-durable-{}-{port}", std::process::id()),
            "127.0.0.1",
            port,
        ));
        options.set_clean_session(false);
        Subscriber::run(options, filter).await
    }

    /// Returns once the broker acknowledged the subscription: a message
    /// published after that reaches this subscriber, however slow the
    /// machine (a test that publishes right after must not race it).
    async fn run(options: MqttOptions, filter: &str) -> Subscriber {
        let (client, mut event_loop) = AsyncClient::new(options, 100);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed, acknowledged) = tokio::sync::oneshot::channel();
        let mut subscribed = Some(subscribed);
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if let Some(tell) = subscribed.take() {
                            let _ = tell.send(ack.return_codes);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                            serde_json::Value::String(String::from_utf8_lossy(&p.payload).into())
                        });
                        let _ = tx.send(Received {
                            topic: p.topic.clone(),
                            payload,
                            at: Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        let codes = tokio::time::timeout(SUBSCRIBED_WITHIN, acknowledged)
            .await
            .unwrap_or_else(|_| {
                panic!("the broker did not acknowledge the subscription to {filter} within {SUBSCRIBED_WITHIN:?}")
            })
            .expect("subscriber running");
        assert!(
            codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
            "the broker refused the subscription to {filter}: {codes:?}"
        );
        Subscriber {
            rx,
            _client: client,
            task,
        }
    }

    /// The next message, or panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Received {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no MQTT message within {timeout:?}"))
            .expect("subscriber running")
    }
}

impl Subscriber {
    /// The first message whose payload satisfies `wanted`, within
    /// `timeout` in all (a device that keeps publishing something else does
    /// not keep the wait going); the panic shows the last payload seen.
    pub async fn next_matching(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Received {
        self.next_matching_unless(timeout, wanted, |_| false, "")
            .await
    }

    /// Like [`Subscriber::next_matching`], and panics with `why` if a
    /// message satisfying `forbidden` comes first (one connection gets
    /// messages in the order the broker took them: what a broker should
    /// have refused shows up before what was published after it).
    pub async fn next_matching_unless(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
        forbidden: impl Fn(&serde_json::Value) -> bool,
        why: &str,
    ) -> Received {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = serde_json::Value::Null;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_next(left).await {
                Some(m) if forbidden(&m.payload) => panic!("{why}: {m:?}"),
                Some(m) if wanted(&m.payload) => return m,
                Some(m) => last = m.payload,
                None => panic!("no matching MQTT message within {timeout:?}; last: {last}"),
            }
        }
    }

    /// The next message within `timeout`, if any.
    pub async fn try_next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.rx.recv()).await.ok()?
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Test clients take and send messages of any size a test makes (rumqttc
/// stops at 10 KiB by default).
fn large(mut options: MqttOptions) -> MqttOptions {
    options.set_max_packet_size(64 << 20, 64 << 20);
    options
}

/// Publishes one message (QoS 1, not retained) and waits for the broker's
/// acknowledgement.
pub async fn publish(port: u16, topic: &str, payload: &[u8]) {
    publish_at("127.0.0.1", port, topic, payload).await
}

/// Like [`publish`], retained: the broker keeps it for later subscribers.
pub async fn publish_retained(port: u16, topic: &str, payload: &[u8]) {
    publish_with("127.0.0.1", port, topic, payload, true).await
}

/// Like [`publish`], to a broker on another host.
pub async fn publish_at(host: &str, port: u16, topic: &str, payload: &[u8]) {
    publish_with(host, port, topic, payload, false).await
}

/// Like [`publish`], as `user` (name, password) if given.
pub async fn publish_as(port: u16, user: Option<(&str, &str)>, topic: &str, payload: &[u8]) {
    publish_by("127.0.0.1", port, user, topic, payload, false).await
}

/// Like [`publish_retained`], as `user` (name, password).
pub async fn publish_retained_as(port: u16, user: (&str, &str), topic: &str, payload: &[u8]) {
    publish_by("127.0.0.1", port, Some(user), topic, payload, true).await
}

/// Like [`publish_as`], to a broker on another host.
pub async fn publish_at_as(
    host: &str,
    port: u16,
    user: Option<(&str, &str)>,
    topic: &str,
    payload: &[u8],
) {
    publish_by(host, port, user, topic, payload, false).await
}

async fn publish_with(host: &str, port: u16, topic: &str, payload: &[u8], retain: bool) {
    publish_by(host, port, None, topic, payload, retain).await
}

async fn publish_by(
    host: &str,
    port: u16,
    user: Option<(&str, &str)>,
    topic: &str,
    payload: &[u8],
    retain: bool,
) {
    let mut options = large(MqttOptions::new(
        format!("e2e-pub-{}", std::process::id()),
        host,
        port,
    ));
    if let Some((name, password)) = user {
        options.set_credentials(name, password);
    }
    let (client, mut event_loop) = AsyncClient::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
        .await
        .expect("queue publish");
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("publishing to {topic}: {e}"),
            }
        }
    })
    .await;
    assert!(
        acked.is_ok(),
        "the broker acknowledged the publish to {topic}"
    );
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), event_loop.poll()).await;
}

/// Whether a broker admits a client: Ok once it acknowledges the
/// connection, Err with its refusal (or what kept it from answering).
pub async fn admits(host: &str, port: u16, user: Option<(&str, &str)>) -> Result<(), String> {
    let mut options = MqttOptions::new(format!("e2e-admit-{}", std::process::id()), host, port);
    if let Some((user, password)) = user {
        options.set_credentials(user, password);
    }
    let (client, mut event_loop) = AsyncClient::new(options, 10);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return match ack.code {
                        rumqttc::ConnectReturnCode::Success => Ok(()),
                        refused => Err(format!("{refused:?}")),
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 10 s".into()));
    let _ = client.disconnect().await;
    answer
}

/// A device publisher started outside any adaptor, for transport and
/// timing tests: `options` is a v1alpha1 MQTT extension (client and
/// message), the device is `ns/fan`. Returns it with its status.
pub fn test_publisher(
    options: serde_json::Value,
) -> (
    devicelink_mqtt::Publisher,
    devicelink_mqtt::publisher::StatusReceiver,
) {
    let options: devicelink_api::mqtt::MqttOptions =
        serde_json::from_value(options).expect("valid MQTT options");
    let data = crate::log_dir().join("data").join("publishers");
    let (device, status) =
        devicelink_mqtt::publisher::DeviceMqtt::new(Default::default(), data.into());
    let link = devicelink_mqtt::TopicContext {
        namespace: "ns".into(),
        name: "fan".into(),
        uid: "uid".into(),
    };
    let no_refs =
        |_: &devicelink_api::devicelink::ReferenceItem| Err("no references here".to_string());
    let publisher = devicelink_mqtt::Publisher::start(&options, &link, &no_refs, &device)
        .expect("options are valid");
    (publisher, status)
}

/// An MQTT 5 request: publishes `payload` on `topic` with `response_topic`
/// and correlation data of its own, and returns the first message on
/// `listen` (the response topic, or where the answer is expected instead)
/// with the correlation data it quoted.
pub async fn request_v5(
    port: u16,
    topic: &str,
    payload: &[u8],
    response_topic: &str,
    listen: &str,
    timeout: Duration,
) -> (serde_json::Value, Option<Vec<u8>>) {
    use rumqttc::v5::{
        AsyncClient, Event,
        mqttbytes::{
            QoS,
            v5::{Packet, PublishProperties},
        },
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("e2e-v5-{}-{n}", std::process::id());
    let correlation = format!("request-{n}").into_bytes();
    let options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(listen, QoS::AtLeastOnce).await.unwrap();
    let properties = PublishProperties {
        response_topic: Some(response_topic.to_string()),
        correlation_data: Some(correlation.into()),
        ..Default::default()
    };
    let mut sent = false;
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) if !sent => {
                    sent = true;
                    client
                        .publish_with_properties(
                            topic,
                            QoS::AtLeastOnce,
                            false,
                            payload.to_vec(),
                            properties.clone(),
                        )
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == listen.as_bytes() => {
                    let correlation = p
                        .properties
                        .and_then(|props| props.correlation_data)
                        .map(|c| c.to_vec());
                    return (
                        serde_json::from_slice(&p.payload).expect("a JSON answer"),
                        correlation,
                    );
                }
                Ok(_) => {}
                Err(e) => panic!("MQTT 5 request: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no answer on {listen} within {timeout:?}"));
    let _ = client.disconnect().await;
    answer
}

/// Waits until a publisher's status shows `connected` and, if `error` is
/// given, a last error containing it (an error seen, not just "not yet").
pub async fn wait_status(
    status: &devicelink_mqtt::publisher::StatusReceiver,
    connected: bool,
    error: Option<&str>,
) -> devicelink_api::property::MqttStatus {
    crate::eventually_showing(
        &format!("connected={connected}, error {error:?}"),
        Duration::from_secs(30),
        || {
            let seen = status.borrow().clone();
            async move {
                match seen {
                    Some(s)
                        if s.connected == connected
                            && error.is_none_or(|e| {
                                s.last_error.as_deref().is_some_and(|l| l.contains(e))
                            }) =>
                    {
                        Ok(s)
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
}

/// Counts the messages one subscriber receives on `filter` (benchmarks).
pub async fn counter(port: u16, filter: &str) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    // One client ID per counter: a second client with the same ID would
    // push the first off the broker.
    let id = format!(
        "bench-count-{}-{}",
        std::process::id(),
        filter.replace(['/', '#', '+'], "-")
    );
    let options = large(MqttOptions::new(id, "127.0.0.1", port));
    let (client, mut events) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtMostOnce).await.unwrap();
    let seen = count.clone();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    count
}

/// Messages per second the counter sees over `seconds`, after `settle`
/// (benchmarks).
pub async fn rate(count: &AtomicU64, settle: Duration, seconds: u64) -> f64 {
    tokio::time::sleep(settle).await;
    let (a, t) = (count.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    (count.load(Ordering::Relaxed) - a) as f64 / t.elapsed().as_secs_f64()
}

/// The count of connected clients of a broker that publishes `$SYS` every
/// second (`sys_interval 1`), besides the one asking.
pub async fn broker_clients(port: u16) -> u64 {
    let mut sys = Subscriber::start(port, "$SYS/broker/clients/connected").await;
    // The retained count comes first and may be up to a second old; the
    // broker publishes a new one (within a second) only if it changed.
    let mut last = sys.next(Duration::from_secs(10)).await;
    while let Some(m) = sys.try_next(Duration::from_millis(2500)).await {
        last = m;
    }
    last.payload.as_u64().expect("a count") - 1
}
