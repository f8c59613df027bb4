//! Benchmark (not a test) of the Modbus adaptor: one adaptor polls N
//! devices of R holding registers each at a 1 s interval, against pymodbus
//! servers, on the real control plane, publishing every poll to mosquitto.
//! Run it with `bash e2e/bench-modbus.sh` (release build, its own control
//! plane).
//!
//! It prints: polls per second (against the N the schedule asks for), read
//! requests per poll cycle next to the one-request-per-property count, the
//! adaptor's CPU (cores used) and its RSS, and MQTT messages per second.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, client, create_all_connected, device_link, ensure_namespace,
    modbus::ModbusServer,
    process::{Operator, cpu_seconds, metric_at, print_footprint},
};
use kube::Api;
use serde_json::json;

struct Args {
    devices: usize,
    registers: usize,
    servers: usize,
    seconds: u64,
    /// Publish every poll to MQTT (1) or not (0).
    mqtt: bool,
}

fn args() -> Args {
    let [devices, registers, servers, seconds, mqtt] = devicelink_e2e::flags([
        ("--devices", 1000),
        ("--registers", 20),
        ("--servers", 4),
        ("--seconds", 60),
        ("--mqtt", 1),
    ]);
    Args {
        devices: devices as usize,
        registers: registers as usize,
        servers: servers as usize,
        seconds,
        mqtt: mqtt != 0,
    }
}

const NAMESPACE: &str = "bench-modbus";
const POD: &str = "devicelink-adaptor-modbus-edge-worker";

fn link(i: usize, endpoint: &str, registers: usize, broker: Option<&str>) -> DeviceLink {
    let properties: Vec<_> = (0..registers)
        .map(|r| {
            json!({"name": format!("r{r}"), "type": "uint16", "readOnly": true,
                   "visitor": {"register": "HoldingRegister", "offset": r}})
        })
        .collect();
    let mut spec = json!({
        "parameters": {"syncInterval": "1s", "timeout": "5s"},
        "protocol": {"tcp": {"endpoint": endpoint, "workerID": (i % 247) + 1}},
        "properties": properties,
    });
    if let Some(broker) = broker {
        spec["extension"] = json!({"mqtt": {"client": {"server": broker},
                                            "message": {"topic": "bench/modbus/:name"}}});
    }
    device_link(
        NAMESPACE,
        &format!("meter-{i}"),
        "edge-worker",
        "modbus",
        "ModbusDevice",
        json!({ "spec": spec }),
    )
}

/// The adaptor's counters that the benchmark follows.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    polls: f64,
    reads: f64,
    failed: f64,
    published: f64,
    cpu: f64,
}

async fn sample(port: u16, pid: u32) -> Sample {
    let get = |name: &'static str| async move { metric_at(port, name).await.unwrap_or(0.0) };
    let reads =
        get("devicelink_adaptor_modbus_requests_total{operation=\"read\",outcome=\"ok\"}").await;
    let mut failed = 0.0;
    for outcome in [
        "Timeout",
        "ExceptionResponse",
        "ConnectionLost",
        "Unreachable",
    ] {
        let name = format!(
            "devicelink_adaptor_modbus_requests_total{{operation=\"read\",outcome=\"{outcome}\"}}"
        );
        failed += metric_at(port, &name).await.unwrap_or(0.0);
    }
    Sample {
        at: Instant::now(),
        polls: get("devicelink_adaptor_modbus_polls_total").await,
        reads,
        failed,
        published: get("devicelink_adaptor_mqtt_published_total").await,
        cpu: cpu_seconds(pid),
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let broker = Broker::start().await;
    // Each server answers for any unit id; their contents are r0 = 0, ...
    let contents: serde_json::Map<String, serde_json::Value> = (0..args.registers)
        .map(|r| (r.to_string(), json!(r)))
        .collect();
    let mut servers = Vec::new();
    for _ in 0..args.servers {
        servers.push(ModbusServer::tcp(&[0], json!({"0": {"holding": contents}})).await);
    }
    let operator = Operator::start_with("bench-modbus-operator", &["--leader-elect=false"]);
    let kubelet = LocalKubelet::start(client.clone());

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let all = (0..args.devices)
        .map(|i| {
            let endpoint = servers[i % servers.len()].endpoint();
            link(
                i,
                &endpoint,
                args.registers,
                args.mqtt.then(|| broker.url()).as_deref(),
            )
        })
        .collect();
    let took = create_all_connected(&links, all, &operator).await;
    eprintln!("{took}");
    eprintln!(
        "{} devices created and connected in {:.1}s; settling 10 s, then measuring {} s",
        args.devices,
        took.all_connected.as_secs_f64(),
        args.seconds
    );
    let (pid, port) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    let a = sample(port, pid).await;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let b = sample(port, pid).await;

    let secs = (b.at - a.at).as_secs_f64();
    let polls = b.polls - a.polls;
    let reads = b.reads - a.reads;
    let cycles = polls / args.devices as f64;
    println!(
        "| Modbus adaptor, {} devices x {} registers at 1 s | |",
        args.devices, args.registers
    );
    println!("|---|---|");
    println!(
        "| polls per second (schedule: {}) | {:.0} |",
        args.devices,
        polls / secs
    );
    println!(
        "| read requests per cycle, coalesced | {:.0} |",
        reads / cycles
    );
    println!(
        "| read requests per cycle, one per property | {} |",
        args.devices * args.registers
    );
    println!(
        "| failed reads in {secs:.0} s | {:.0} |",
        b.failed - a.failed
    );
    println!(
        "| MQTT messages per second | {:.0} |",
        (b.published - a.published) / secs
    );
    print_footprint(pid, (b.cpu - a.cpu) / secs);

    drop(kubelet);
    operator.stop().await;
}
