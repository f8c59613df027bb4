//! Benchmark (not a test) of the MQTT path of one adaptor: N dummy fans
//! in one dummy adaptor, each publishing its status every second (QoS 1,
//! retained), next to bare rumqttc in this process publishing a status of
//! the same size at the same pace on the same mosquitto: one client for all
//! N topics when the adaptor shares connections (`--shared 1`, the
//! default), N clients when it does not (`--shared 0`), so the floor is
//! fair. Run it with `bash e2e/bench-mqtt.sh` (release build, its own
//! control plane).
//!
//! Both are counted the same way, by one subscriber to the broker: messages
//! per second delivered over the measuring window. For the adaptor it also
//! prints its CPU (cores used), RSS, its status writes to the API server a
//! second, and the broker's count of connected clients.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, client, create_all_connected, dummy_link, ensure_namespace,
    mqtt::{broker_clients, counter, rate},
    process::{cpu_seconds, free_port, metric_at, operator_sharing, print_footprint, rss_mib},
};
use kube::Api;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use tokio::task::JoinHandle;

const NAMESPACE: &str = "bench-mqtt";
const POD: &str = "devicelink-adaptor-dummy-edge-worker";

/// A fan-sized status at `speed`.
fn status(speed: u32) -> String {
    json!({"gear": "fast", "rotatingSpeed": speed}).to_string()
}

/// A bare rumqttc client `id` that publishes a fan-sized status on each of
/// `topics` every second, with `inflight` messages in flight at most.
fn bare_client(id: String, port: u16, topics: Vec<String>, inflight: u16) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_inflight(inflight);
        let (client, mut events) = AsyncClient::new(options, topics.len() * 2 + 8);
        let mut speed = 200;
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = events.poll() => if event.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                },
                _ = ticks.tick() => {
                    speed = (speed + 1).min(300);
                    // Never blocks this loop, which also drives the connection.
                    for topic in &topics {
                        let _ = client.try_publish(topic, QoS::AtLeastOnce, true, status(speed));
                    }
                }
            }
        }
    })
}

/// Bare rumqttc publishing a status for each of N topics every second: one
/// client for all (`shared`, with as many in flight as the adaptor's shared
/// connection) or one per topic.
async fn bare(port: u16, devices: usize, seconds: u64, shared: bool) -> f64 {
    let count = counter(port, "bench/bare/#").await;
    let topic = |i: usize| format!("bench/bare/fan-{i}");
    let clients: Vec<JoinHandle<()>> = if shared {
        let topics = (0..devices).map(topic).collect();
        vec![bare_client("bench-bare-shared".into(), port, topics, 1000)]
    } else {
        (0..devices)
            .map(|i| bare_client(format!("bench-bare-{i}"), port, vec![topic(i)], 100))
            .collect()
    };
    let rate = rate(&count, Duration::from_secs(10), seconds).await;
    clients.iter().for_each(|c| c.abort());
    rate
}

#[tokio::main]
async fn main() {
    let [devices, seconds, shared] =
        devicelink_e2e::flags([("--devices", 1000), ("--seconds", 60), ("--shared", 1)]);
    let (devices, shared) = (devices as usize, shared == 1);
    // $SYS every second: the broker's own count of connections.
    let broker = Broker::mosquitto_with(free_port(), &[], "sys_interval 1").await;

    let bare_rate = bare(broker.port, devices, seconds, shared).await;
    eprintln!("bare rumqttc: {bare_rate:.0} messages/s");

    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let count = counter(broker.port, "bench/adaptor/#").await;
    // The benchmark's own clients (its counters), before the adaptor's.
    let ours = broker_clients(broker.port).await;
    let operator = operator_sharing("bench-mqtt-operator", shared, &["--leader-elect=false"]);
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let url = broker.url();
    let all = (0..devices)
        .map(|i| {
            dummy_link(
                NAMESPACE,
                &format!("fan-{i}"),
                "edge-worker",
                json!({"spec": {
                    "protocol": {"location": "bench"}, "gear": "fast", "on": true,
                    "extension": {"mqtt": {"client": {"server": url},
                                           "message": {"topic": "bench/adaptor/:name"}}},
                }}),
            )
        })
        .collect();
    let took = create_all_connected(&links, all, &operator).await;
    eprintln!("{devices} fans: {took}");
    let (pid, _) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    let metrics = kubelet
        .metrics_port(POD)
        .expect("the adaptor serves metrics");
    let writes = || async move {
        metric_at(metrics, "devicelink_adaptor_status_writes_total")
            .await
            .unwrap_or(0.0)
    };
    let cpu = cpu_seconds(pid);
    let written = writes().await;
    let t = Instant::now();
    let adaptor_rate = rate(&count, Duration::ZERO, seconds).await;
    let elapsed = t.elapsed().as_secs_f64();
    let cores = (cpu_seconds(pid) - cpu) / elapsed;
    let writes_per_second = (writes().await - written) / elapsed;
    let waiting = metric_at(metrics, "devicelink_adaptor_status_writes_waiting")
        .await
        .unwrap_or(0.0);
    let connections = broker_clients(broker.port).await - ours;

    println!(
        "| {} devices, 1 status/s each, QoS 1, retained, shared connections {} | |",
        devices,
        if shared { "on" } else { "off" }
    );
    println!("|---|---|");
    println!(
        "| bare rumqttc ({}), messages/s delivered | {bare_rate:.0} |",
        if shared {
            "one client"
        } else {
            "one client per device"
        }
    );
    println!("| one dummy adaptor, messages/s delivered | {adaptor_rate:.0} |");
    println!("| ratio | {:.2}x |", adaptor_rate / bare_rate);
    print_footprint(pid, cores);
    println!(
        "| adaptor RSS per device | {:.1} KiB |",
        rss_mib(pid) * 1024.0 / devices as f64
    );
    println!("| adaptor status writes to the API server | {writes_per_second:.1}/s |");
    println!("| devices waiting for their turn to write their status, at the end | {waiting:.0} |");
    println!("| broker connections from the adaptor | {connections} |");
    println!(
        "| DeviceLinks created in | {:.1} s |",
        took.created.as_secs_f64()
    );
    println!(
        "| DeviceLinks created until all DeviceConnected | {:.1} s |",
        took.all_connected.as_secs_f64()
    );
    println!(
        "| each DeviceLink from its creation: DeviceCreated (the operator) | {} |",
        took.device_created
    );
    println!(
        "| each DeviceLink from its creation: DeviceConnected | {} |",
        took.connected
    );

    drop(kubelet);
    operator.stop().await;
    broker.stop().await;
}
