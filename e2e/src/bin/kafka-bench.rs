//! Benchmark (not a test) of the Kafka bridge: devices publishing `--rate`
//! MQTT messages a second in all (QoS 1, over `--devices` topics) through
//! one bridge replica into Kafka, next to a bare rdkafka producer with the
//! bridge's settings (idempotent, acks=all) producing records of the same
//! size at the same rate on the same Kafka. Run it with
//! `make bench-kafka` (release build, its own control plane).
//!
//! Both are counted the same way, by one consumer: records a second that
//! reach Kafka over the measuring window, and the latency from the moment
//! a message was published (MQTT) or produced (bare) to the moment the
//! consumer read it, from a timestamp in the payload. For the bridge it
//! also prints its CPU (cores used) and RSS.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use devicelink_api::kafka_bridge::KafkaBridge;
use devicelink_e2e::{
    Broker, apply, client, ensure_namespace,
    kafka::{Bridge, Kafka},
    process::{cpu_seconds, free_port, peak_rss_mib, rss_mib},
};
use futures::StreamExt;
use kube::Api;
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer as _, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;

const NAMESPACE: &str = "bench-kafka";
/// How long the flow runs before the window is measured.
const WARM_UP: Duration = Duration::from_secs(5);

/// Microseconds since the epoch: the payload's timestamp.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A fan-sized status carrying when it was sent.
fn payload(sent: u64) -> String {
    json!({"gear": "fast", "rotatingSpeed": 250, "sent": sent}).to_string()
}

/// `rate` a second, in bursts every 10 ms: each tick says which numbers
/// are due (a slow burst is made up in the next).
struct Pace {
    rate: u64,
    started: Instant,
    next: u64,
    tick: tokio::time::Interval,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Pace {
            rate,
            started: Instant::now(),
            next: 0,
            tick,
        }
    }

    async fn due(&mut self) -> std::ops::Range<u64> {
        self.tick.tick().await;
        let due = (self.started.elapsed().as_secs_f64() * self.rate as f64) as u64;
        let range = self.next..due.max(self.next);
        self.next = range.end;
        range
    }
}

/// What one consumer saw in the window: records a second, and latencies.
struct Seen {
    rate: f64,
    latencies_ms: Vec<f64>,
}

/// Reads `topic` from its end for `WARM_UP` + `seconds`, counting the
/// records of the window.
async fn consume(bootstrap: &str, topic: &str, seconds: u64) -> Seen {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}-{}", now_micros()))
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut stream = consumer.stream();
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let mut latencies_ms = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(end.into(), stream.next()).await {
        let Ok(message) = message else { continue };
        if Instant::now() < start {
            continue;
        }
        let sent = message
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v["sent"].as_u64());
        if let Some(sent) = sent {
            latencies_ms.push(now_micros().saturating_sub(sent) as f64 / 1000.0);
        }
    }
    Seen {
        rate: latencies_ms.len() as f64 / seconds as f64,
        latencies_ms,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A bare producer with the bridge's settings at `rate` records a second.
async fn bare(kafka: &Kafka, rate: u64, devices: u64, seconds: u64) -> Seen {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .create()
        .expect("a Kafka producer");
    let stop = Arc::new(AtomicBool::new(false));
    let producing = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut pace = Pace::new(rate);
            while !stop.load(Ordering::Relaxed) {
                for i in pace.due().await {
                    let key = format!("bench/fan-{}", i % devices);
                    let value = payload(now_micros());
                    // Queued; no one waits for the delivery (the consumer
                    // counts what arrived).
                    let mut record = FutureRecord::to("bench-bare").key(&key).payload(&value);
                    while let Err((_, back)) = producer.send_result(record) {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
    });
    let seen = consume(&kafka.bootstrap(), "bench-bare", seconds).await;
    stop.store(true, Ordering::Relaxed);
    let _ = producing.await;
    seen
}

/// MQTT devices at `rate` messages a second in all, through the bridge.
async fn through_bridge(
    broker: &Broker,
    kafka: &Kafka,
    bridge_pid: u32,
    rate: u64,
    devices: u64,
    seconds: u64,
) -> (Seen, f64) {
    let mut options = MqttOptions::new("bench-devices", "127.0.0.1", broker.port);
    options.set_inflight(1000);
    let (mqtt, mut events) = AsyncClient::new(options, 10_000);
    let driving = tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut pace = Pace::new(rate);
            while !stop.load(Ordering::Relaxed) {
                for i in pace.due().await {
                    let topic = format!("bench/fan-{}", i % devices);
                    let _ = mqtt
                        .publish(topic, QoS::AtLeastOnce, false, payload(now_micros()))
                        .await;
                }
            }
        }
    });
    let cpu = Arc::new(Mutex::new((Instant::now(), cpu_seconds(bridge_pid))));
    let measuring = tokio::spawn({
        let cpu = cpu.clone();
        async move {
            tokio::time::sleep(WARM_UP).await;
            *cpu.lock().unwrap() = (Instant::now(), cpu_seconds(bridge_pid));
        }
    });
    let seen = consume(&kafka.bootstrap(), "bench-bridge", seconds).await;
    let _ = measuring.await;
    let (since, cpu_then) = *cpu.lock().unwrap();
    let cores = (cpu_seconds(bridge_pid) - cpu_then) / since.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = publishing.await;
    driving.abort();
    (seen, cores)
}

fn row(what: &str, seen: &Seen) {
    let mut sorted = seen.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "| {what} | {:.0} | {:.1} | {:.1} |",
        seen.rate,
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99)
    );
}

#[tokio::main]
async fn main() {
    let [rate, devices, seconds] =
        devicelink_e2e::flags([("--rate", 10_000), ("--devices", 1000), ("--seconds", 30)]);
    // As many unacknowledged QoS 1 messages towards the bridge as its
    // producer batches need: mosquitto's default (20) would hold the
    // bridge to 20 messages per Kafka round trip.
    let broker = Broker::mosquitto_with(
        free_port(),
        &[],
        "max_inflight_messages 1000\nmax_queued_messages 100000",
    )
    .await;
    let kafka = Kafka::start().await;

    let bare_seen = bare(&kafka, rate, devices, seconds).await;
    eprintln!("bare producer: {:.0} records/s", bare_seen.rate);

    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let bridge = Bridge::start(NAMESPACE, "bench-0").await;
    let pid = bridge.process.pid().expect("the bridge runs");
    let api: Api<KafkaBridge> = Api::namespaced(client, NAMESPACE);
    apply(
        &api,
        &json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "metadata": {"name": "bench", "namespace": NAMESPACE},
            "spec": {
                "source": {"client": {"server": broker.url()}, "topics": ["bench/#"]},
                "sink": {"bootstrapServers": [kafka.bootstrap()], "topic": "bench-bridge"},
            },
        }),
    )
    .await;
    // Subscribed and producing before the flow starts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (bridge_seen, cores) = through_bridge(&broker, &kafka, pid, rate, devices, seconds).await;
    eprintln!("through the bridge: {:.0} records/s", bridge_seen.rate);

    println!(
        "| {rate} messages/s offered over {devices} topics, QoS 1, {seconds} s | records/s in Kafka | p50 latency (ms) | p99 latency (ms) |"
    );
    println!("|---|---|---|---|");
    row("bare rdkafka producer (same settings)", &bare_seen);
    row("MQTT -> one bridge replica -> Kafka", &bridge_seen);
    println!("| ratio | {:.2}x | | |", bridge_seen.rate / bare_seen.rate);
    println!("| bridge CPU (cores) | {cores:.2} | | |");
    println!(
        "| bridge RSS now / peak | {:.1} / {:.1} MiB | | |",
        rss_mib(pid),
        peak_rss_mib(pid)
    );

    let _ = api.delete("bench", &Default::default()).await;
    bridge.stop().await;
    broker.stop().await;
}
