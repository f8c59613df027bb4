//! The memory of the Modbus pollers alone, without the adaptor runtime,
//! Kubernetes or MQTT: N pollers of 20 holding registers each, polling a
//! pymodbus server every second from this process, and the process's RSS
//! every 3 s. It tells the adaptor's own per-device cost apart from the
//! runtime's (see docs/benchmarks.md).
//!
//!   cargo run --release -p devicelink-e2e --bin modbus-poller-footprint -- 1000

use std::time::Duration;

use devicelink_adaptor_modbus::{metrics::ModbusMetrics, poller::Poller};
use devicelink_api::modbus::ModbusDeviceSpec;
use devicelink_e2e::{modbus::ModbusServer, process::rss_mib};
use serde_json::json;

#[tokio::main]
async fn main() {
    let devices: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let contents: serde_json::Map<String, serde_json::Value> =
        (0..20).map(|r| (r.to_string(), json!(r))).collect();
    let server = ModbusServer::tcp(&[0], json!({"0": {"holding": contents}})).await;
    let properties: Vec<_> = (0..20)
        .map(|r| {
            json!({"name": format!("r{r}"), "type": "uint16", "readOnly": true,
                   "visitor": {"register": "HoldingRegister", "offset": r}})
        })
        .collect();
    let spec: ModbusDeviceSpec = serde_json::from_value(json!({
        "protocol": {"tcp": {"endpoint": server.endpoint(), "workerID": 1}},
        "properties": properties,
    }))
    .expect("a ModbusDevice spec");
    let pid = std::process::id();
    println!("before: {:.1} MiB", rss_mib(pid));
    let metrics = ModbusMetrics::default();
    {
        let mut poller = Poller::new(&spec, metrics.clone());
        let cycle = std::mem::size_of_val(&poller.cycle());
        let write = std::mem::size_of_val(&poller.write(&Default::default()));
        println!(
            "a poller: {} bytes; its cycle's future: {cycle} bytes; a write's: {write} bytes",
            std::mem::size_of::<Poller>()
        );
    }
    for _ in 0..devices {
        let mut poller = Poller::new(&spec, metrics.clone());
        tokio::spawn(async move {
            loop {
                let _ = poller.cycle().await;
                // What the adaptor does with every poll: the status as JSON.
                let _ = serde_json::to_vec(&poller.status());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!("{devices} pollers: {:.1} MiB", rss_mib(pid));
    }
}
