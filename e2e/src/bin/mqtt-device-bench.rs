//! Benchmark (not a test) of the MQTT adaptor: N devices that speak MQTT
//! themselves (AttributedMessage, one JSON object of three values each),
//! each publishing once a second, through one MQTT adaptor that mirrors
//! every device's status to its MQTT extension at most once a second. Run
//! it with `bash e2e/bench-mqtt-device.sh` (release build, its own control
//! plane).
//!
//! Prints the messages per second the devices sent (counted by a
//! subscriber), those the adaptor took in (its own metric) and the status
//! messages it delivered to the extension's topics (counted by a
//! subscriber), with the adaptor's CPU (cores used), RSS and broker
//! connections (the broker's own count). `--shared 0` turns the adaptor's
//! shared connections off.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, client, create_all_connected, ensure_namespace,
    mqtt::{broker_clients, counter, rate},
    mqtt_device::{self, Layout, MqttDevice, Options},
    process::{cpu_seconds, free_port, metric_at, operator_sharing, print_footprint, rss_mib},
};
use kube::Api;
use serde_json::json;

const NAMESPACE: &str = "bench-mqtt-device";
const POD: &str = "devicelink-adaptor-mqtt-edge-worker";
const TAKEN_IN: &str = "devicelink_adaptor_mqtt_device_messages_total";

#[tokio::main]
async fn main() {
    let [devices, seconds, shared] =
        devicelink_e2e::flags([("--devices", 1000), ("--seconds", 60), ("--shared", 1)]);
    let (devices, shared) = (devices as usize, shared == 1);
    // $SYS every second: the broker's own count of connections.
    let broker = Broker::mosquitto_with(free_port(), &[], "sys_interval 1").await;
    let sent = counter(broker.port, "bench/device/+/state").await;
    let delivered = counter(broker.port, "bench/mirror/#").await;
    let _devices = MqttDevice::start(Options {
        name: "bench",
        port: broker.port,
        layout: Layout::Message,
        topic: "bench/device/{n}/state",
        command_topic: "bench/device/{n}/set",
        state: json!({"counter": 0, "sensor": {"temperature": 21.5}, "on": true}),
        interval: 1.0,
        more: vec![
            "--count".into(),
            devices.to_string(),
            "--tick".into(),
            "counter".into(),
        ],
    })
    .await;

    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    // The device program's and the counters' connections, before the adaptor's.
    let ours = broker_clients(broker.port).await;
    let operator = operator_sharing(
        "bench-mqtt-device-operator",
        shared,
        &["--leader-elect=false"],
    );
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let url = broker.url();
    let all = (0..devices)
        .map(|i| {
            mqtt_device::link(
                NAMESPACE,
                &format!("device-{i}"),
                json!({
                    "protocol": {
                        "pattern": "AttributedMessage",
                        "client": {"server": url},
                        "message": {"topic": format!("bench/device/{i}/:operator"),
                                    "operator": {"read": "state", "write": "set"}},
                        "syncInterval": "1s",
                    },
                    "properties": [
                        {"name": "counter", "type": "int"},
                        {"name": "temperature", "path": "sensor.temperature", "type": "float"},
                        {"name": "on", "type": "boolean"},
                    ],
                    "extension": {"mqtt": {"client": {"server": url},
                                           "message": {"topic": "bench/mirror/:name"}}},
                }),
            )
        })
        .collect();
    let took = create_all_connected(&links, all, &operator).await;
    eprintln!("{took}");
    eprintln!(
        "{} devices connected in {:.1}s",
        devices,
        took.all_connected.as_secs_f64()
    );
    let (pid, metrics_port) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    let cpu = cpu_seconds(pid);
    let taken = metric_at(metrics_port, TAKEN_IN).await.unwrap_or(0.0);
    let t = Instant::now();
    let (sent_rate, delivered_rate) = tokio::join!(
        rate(&sent, Duration::ZERO, seconds),
        rate(&delivered, Duration::ZERO, seconds)
    );
    let elapsed = t.elapsed().as_secs_f64();
    let taken_rate = (metric_at(metrics_port, TAKEN_IN).await.unwrap_or(0.0) - taken) / elapsed;
    let cores = (cpu_seconds(pid) - cpu) / elapsed;
    let connections = broker_clients(broker.port).await - ours;

    println!(
        "| {} MQTT devices (AttributedMessage, 3 values), 1 message/s each; status mirrored at most 1/s; shared connections {} | |",
        devices,
        if shared { "on" } else { "off" }
    );
    println!("|---|---|");
    println!("| messages/s the devices sent | {sent_rate:.0} |");
    println!("| messages/s the adaptor took in | {taken_rate:.0} |");
    println!("| status messages/s the adaptor delivered to MQTT | {delivered_rate:.0} |");
    print_footprint(pid, cores);
    println!(
        "| adaptor RSS per device | {:.1} KiB |",
        rss_mib(pid) * 1024.0 / devices as f64
    );
    println!("| broker connections from the adaptor | {connections} |");

    drop(kubelet);
    operator.stop().await;
    broker.stop().await;
}
