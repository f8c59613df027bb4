//! Benchmark (not a test) of the console: D devices publishing once a
//! second each, streamed to C WebSocket clients. Run it with
//! `bash e2e/bench-console.sh` (release build, a control plane and a broker
//! of its own).
//!
//! The devices are D DeviceLinks with an MQTT extension whose status topics
//! this program publishes on, as their adaptors would (no adaptor runs: the
//! console follows a DeviceLink's topics whatever its conditions). Each
//! message carries the time it was published; each client notes when it
//! got it. Printed: messages/s delivered per client (and what the
//! publishers sent), the latency from publish to client (p50, p99, max),
//! messages dropped for slow clients, and the console's CPU and RSS.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, client,
    console::{install_rbac, next_frame, open_stream, user},
    dummy_link, ensure_namespace, eventually,
    process::{Console, cpu_seconds, http_get, http_get_as, rss_mib},
};
use futures::{StreamExt, stream};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "bench-console";

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// What one client got during the measured period.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    dropped: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let [devices, clients, seconds] =
        devicelink_e2e::flags([("--devices", 1000), ("--clients", 50), ("--seconds", 60)]);
    let (devices, clients) = (devices as usize, clients as usize);
    let kube = client().await;
    ensure_namespace(&kube, NAMESPACE).await;
    let _rbac = install_rbac();
    let viewer = user(NAMESPACE, "bench-viewer", &["get", "list", "watch"]);
    let broker = Broker::mosquitto_with(
        devicelink_e2e::process::free_port(),
        &[],
        "max_queued_messages 0",
    )
    .await;

    eprintln!("creating {devices} DeviceLinks");
    let links: Api<DeviceLink> = Api::namespaced(kube.clone(), NAMESPACE);
    stream::iter(0..devices)
        .for_each_concurrent(16, |i| {
            let links = links.clone();
            let url = broker.url();
            async move {
                let link = dummy_link(
                    NAMESPACE,
                    &format!("fan-{i:05}"),
                    "bench-no-node",
                    json!({"spec": {"protocol": {"location": "bench"},
                        "extension": {"mqtt": {"client": {"server": url},
                                               "message": {"topic": "bench/console/:name"}}}}}),
                );
                match links.create(&PostParams::default(), &link).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => panic!("create DeviceLink {i}: {e}"),
                }
            }
        })
        .await;

    let console = Console::start("bench-console", &["--client-queue", "1024"]);
    let pid = console.process.pid().expect("the console runs");
    eventually(
        "the console to follow every device",
        Duration::from_secs(300),
        || async {
            (http_get(console.port, "/readyz").await?.0 == 200).then_some(())?;
            let (_, body) = http_get_as(
                console.port,
                &format!("/api/devicelinks?namespace={NAMESPACE}"),
                &viewer,
            )
            .await?;
            let listed: Value = serde_json::from_str(&body).ok()?;
            let items = listed["items"].as_array()?;
            (items.len() == devices && items.iter().all(|l| l["stream"]["connected"] == true))
                .then_some(())
        },
    )
    .await;

    eprintln!("opening {clients} stream clients");
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tallies = Vec::new();
    for _ in 0..clients {
        let tally = Arc::new(Tally::default());
        tallies.push(tally.clone());
        let mut socket = open_stream(console.port, &format!("namespace={NAMESPACE}"), &viewer)
            .await
            .expect("the viewer may watch");
        let measuring = measuring.clone();
        tokio::spawn(async move {
            while let Some(frame) = next_frame(&mut socket).await {
                let Some(sent) = frame["value"]["sentAt"].as_u64() else {
                    continue;
                };
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                tally.received.fetch_add(1, Ordering::Relaxed);
                tally
                    .dropped
                    .fetch_add(frame["dropped"].as_u64().unwrap_or(0), Ordering::Relaxed);
                tally
                    .latencies_us
                    .lock()
                    .unwrap()
                    .push(now_micros().saturating_sub(sent));
            }
        });
    }

    // The devices: each publishes once a second, spread over the second.
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let published = published.clone();
        let mut options =
            rumqttc::MqttOptions::new("bench-console-devices", "127.0.0.1", broker.port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (mqtt, mut events) = rumqttc::AsyncClient::new(options, 10_000);
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let measuring = measuring.clone();
        tokio::spawn(async move {
            let slices = 20;
            let mut pace = tokio::time::interval(Duration::from_millis(1000 / slices as u64));
            let mut n = 0u64;
            loop {
                for slice in 0..slices {
                    pace.tick().await;
                    for i in (slice..devices).step_by(slices) {
                        n += 1;
                        let payload = json!({"n": n, "sentAt": now_micros(), "rotatingSpeed": i});
                        mqtt.publish(
                            format!("bench/console/fan-{i:05}"),
                            rumqttc::QoS::AtMostOnce,
                            false,
                            payload.to_string(),
                        )
                        .await
                        .unwrap();
                        if measuring.load(Ordering::Relaxed) {
                            published.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };

    eprintln!("warming up for 10 s, then measuring for {seconds} s");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu_before) / elapsed;
    let rss = rss_mib(pid);
    publisher.abort();

    let rates: Vec<f64> = tallies
        .iter()
        .map(|t| t.received.load(Ordering::Relaxed) as f64 / elapsed)
        .collect();
    let dropped: u64 = tallies
        .iter()
        .map(|t| t.dropped.load(Ordering::Relaxed))
        .sum();
    let mut latencies: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.lock().unwrap().clone())
        .collect();
    latencies.sort_unstable();
    let sent_rate = published.load(Ordering::Relaxed) as f64 / elapsed;
    let min_rate = rates.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean_rate = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    println!(
        "| devices | clients | published/s | delivered/s per client (mean, min) | latency p50 / p99 / max (ms) | dropped | console CPU | console RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {devices} | {clients} | {sent_rate:.0} | {mean_rate:.0}, {min_rate:.0} | {:.1} / {:.1} / {:.1} | {dropped} | {:.2} cores | {rss:.0} MiB |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        cpu,
    );
    console.stop().await;
    broker.stop().await;
}
