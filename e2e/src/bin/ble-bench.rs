//! Benchmark (not a test) of the BLE adaptor: N peripherals on BlueZoo,
//! each notifying a temperature every 100 ms, through one BLE adaptor that
//! publishes every notification to the device's MQTT extension. Run it
//! with `bash e2e/bench-ble.sh` (release build, its own control plane).
//!
//! Prints the notifications per second the adaptor took in (its own
//! metric) against the rate the peripherals were asked for, the status
//! messages it delivered to MQTT (counted by a subscriber), and the
//! adaptor's CPU (cores used) and RSS.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet,
    ble::{Bluezoo, Bus, Peripheral},
    client, create_all_connected, device_link, ensure_namespace, log_dir,
    mqtt::{counter, rate},
    process::{Operator, cpu_seconds, metric_at, print_footprint},
};
use kube::Api;
use serde_json::json;

const NAMESPACE: &str = "bench-ble";
const POD: &str = "devicelink-adaptor-ble-edge-worker";
const TAKEN_IN: &str = "devicelink_adaptor_ble_notifications_total";
const TEMPERATURE: &str = "226caa55-6476-4566-7562-66734470666d";

#[tokio::main]
async fn main() {
    let [devices, every_ms, seconds] =
        devicelink_e2e::flags([("--devices", 50), ("--every-ms", 100), ("--seconds", 60)]);
    let devices = devices as usize;
    let broker = Broker::start().await;
    let delivered = counter(broker.port, "bench/ble/#").await;
    let bus = Bus::start("bench").await;
    let _zoo = Bluezoo::start(&bus, "bench", devices).await;
    // Peripheral n advertises as BENCH-n on adapter hci{n+1}.
    let config = json!({"name": "BENCH-{n}", "services": [
        {"uuid": "226c0000-6476-4566-7562-66734470666d", "characteristics": [
            {"uuid": TEMPERATURE, "flags": ["read", "notify"], "value": "3408",
             "notify": ["3408", "3e08"], "every": every_ms as f64 / 1000.0}]}]});
    let _peripherals = Peripheral::start(&bus, "bench", 1, devices, &config).await;

    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let settings = log_dir().join("ble-bench-settings.yaml");
    std::fs::write(&settings, bus.adaptor_settings()).unwrap();
    let operator = Operator::start_with(
        "bench-ble-operator",
        &[
            "--leader-elect=false",
            "--adaptor-settings-file",
            settings.to_str().unwrap(),
        ],
    );
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let url = broker.url();
    let all = (0..devices)
        .map(|i| {
            device_link(
                NAMESPACE,
                &format!("sensor-{i}"),
                "edge-worker",
                "ble",
                "BluetoothDevice",
                json!({"spec": {
                    "protocol": {"endpoint": format!("BENCH-{i}"), "syncInterval": "10s"},
                    "properties": [
                        {"name": "temperature", "type": "int16", "accessModes": ["Notify"],
                         "visitor": {"characteristic": TEMPERATURE,
                                     "arithmeticOperations": [{"type": "Divide", "value": "100"}]}},
                    ],
                    "extension": {"mqtt": {"client": {"server": url},
                                           "message": {"topic": "bench/ble/:name"}}},
                }}),
            )
        })
        .collect();
    let took = create_all_connected(&links, all, &operator).await;
    eprintln!("{took}");
    eprintln!(
        "{devices} peripherals connected in {:.1}s",
        took.all_connected.as_secs_f64()
    );
    let (pid, metrics_port) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    let cpu = cpu_seconds(pid);
    let taken = metric_at(metrics_port, TAKEN_IN).await.unwrap_or(0.0);
    let t = Instant::now();
    let delivered_rate = rate(&delivered, Duration::ZERO, seconds).await;
    let elapsed = t.elapsed().as_secs_f64();
    let taken_rate = (metric_at(metrics_port, TAKEN_IN).await.unwrap_or(0.0) - taken) / elapsed;
    let cores = (cpu_seconds(pid) - cpu) / elapsed;

    let asked = devices as f64 * 1000.0 / every_ms as f64;
    println!("| {devices} BLE peripherals (BlueZoo), a notification every {every_ms} ms each | |");
    println!("|---|---|");
    println!("| notifications/s the peripherals were asked for | {asked:.0} |");
    println!("| notifications/s the adaptor took in | {taken_rate:.0} |");
    println!("| status messages/s the adaptor delivered to MQTT | {delivered_rate:.0} |");
    print_footprint(pid, cores);

    drop(kubelet);
    operator.stop().await;
    broker.stop().await;
}
