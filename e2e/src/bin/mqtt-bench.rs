//! Benchmark (not a test) of the MQTT path of one adaptor: N dummy fans
//! in one dummy adaptor, each publishing its status every second (QoS 1,
//! retained), next to N bare rumqttc clients in this process publishing a
//! status of the same size at the same pace, on the same mosquitto. Run it
//! with `bash e2e/bench-mqtt.sh` (release build, its own control plane).
//!
//! Both are counted the same way, by one subscriber to the broker: messages
//! per second delivered over the measuring window. For the adaptor it also
//! prints its CPU (cores used) and RSS.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    LocalKubelet, Mosquitto, client, create_all_connected, dummy_link, ensure_namespace,
    mqtt::{counter, rate},
    process::{Operator, cpu_seconds, print_footprint},
};
use kube::Api;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;

const NAMESPACE: &str = "bench-mqtt";
const POD: &str = "devicelink-adaptor-dummy-edge-worker";

/// N bare rumqttc clients, each publishing a fan-sized status every second.
async fn bare(port: u16, devices: usize, seconds: u64) -> f64 {
    let count = counter(port, "bench/bare/#").await;
    let mut tasks = Vec::new();
    for i in 0..devices {
        tasks.push(tokio::spawn(async move {
            let options = MqttOptions::new(format!("bench-bare-{i}"), "127.0.0.1", port);
            let (client, mut events) = AsyncClient::new(options, 10);
            let mut speed = 200;
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    event = events.poll() => if event.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    },
                    _ = ticks.tick() => {
                        speed = (speed + 1).min(300);
                        let payload = json!({"gear": "fast", "rotatingSpeed": speed}).to_string();
                        // Never blocks this loop, which also drives the connection.
                        let _ = client.try_publish(
                            format!("bench/bare/fan-{i}"),
                            QoS::AtLeastOnce,
                            true,
                            payload,
                        );
                    }
                }
            }
        }));
    }
    let rate = rate(&count, Duration::from_secs(10), seconds).await;
    tasks.iter().for_each(|t| t.abort());
    rate
}

#[tokio::main]
async fn main() {
    let [devices, seconds] = devicelink_e2e::flags([("--devices", 1000), ("--seconds", 60)]);
    let devices = devices as usize;
    let broker = Mosquitto::start().await;

    let bare_rate = bare(broker.port, devices, seconds).await;
    eprintln!("bare rumqttc: {bare_rate:.0} messages/s");

    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let count = counter(broker.port, "bench/adaptor/#").await;
    let operator = Operator::start_with("bench-mqtt-operator", &["--leader-elect=false"]);
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
    eprintln!("{} fans connected in {:.1}s", devices, took.as_secs_f64());
    let (pid, _) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    let cpu = cpu_seconds(pid);
    let t = Instant::now();
    let adaptor_rate = rate(&count, Duration::ZERO, seconds).await;
    let cores = (cpu_seconds(pid) - cpu) / t.elapsed().as_secs_f64();

    println!(
        "| {} devices, 1 status/s each, QoS 1, retained | |",
        devices
    );
    println!("|---|---|");
    println!("| bare rumqttc clients, messages/s delivered | {bare_rate:.0} |");
    println!("| one dummy adaptor, messages/s delivered | {adaptor_rate:.0} |");
    println!("| ratio | {:.2}x |", adaptor_rate / bare_rate);
    print_footprint(pid, cores);

    drop(kubelet);
    operator.stop().await;
    broker.stop().await;
}
