//! Benchmark (not a test) of the OPC-UA adaptor: one adaptor watches N
//! devices of I monitored items each, sampled at 100 ms, on asyncua servers
//! that change one item of every device every 100 ms to the current time
//! in milliseconds; each device publishes its status to mosquitto on every
//! change. Run it with `bash e2e/bench-opcua.sh` (release build, its own
//! control plane).
//!
//! It prints the update latency (the server setting a value to the MQTT
//! message carrying it, as percentiles), data changes and MQTT messages per
//! second, the adaptor's CPU (cores used) and its RSS.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, LocalKubelet, client, create_all_connected, device_link, ensure_namespace,
    mqtt::Subscriber,
    opcua::{OpcuaServer, ServerOptions},
    process::{Operator, cpu_seconds, metric_at, print_footprint},
};
use kube::Api;
use serde_json::json;

struct Args {
    devices: usize,
    items: usize,
    servers: usize,
    millis: u64,
    seconds: u64,
}

fn args() -> Args {
    let [devices, items, servers, millis, seconds] = devicelink_e2e::flags([
        ("--devices", 200),
        ("--items", 50),
        ("--servers", 4),
        ("--millis", 100),
        ("--seconds", 60),
    ]);
    Args {
        devices: devices as usize,
        items: items as usize,
        servers: servers as usize,
        millis,
        seconds,
    }
}

const NAMESPACE: &str = "bench-opcua";
const POD: &str = "devicelink-adaptor-opcua-edge-worker";

/// Device `i` watches items dev<d>.v* of its server, `d` its index there.
fn link(i: usize, d: usize, endpoint: &str, args: &Args, broker: &str) -> DeviceLink {
    let properties: Vec<_> = (0..args.items)
        .map(|v| {
            json!({"name": format!("v{v}"), "type": "double", "readOnly": true,
                   "visitor": {"nodeID": format!("ns=2;s=dev{d}.v{v}")}})
        })
        .collect();
    device_link(
        NAMESPACE,
        &format!("line-{i}"),
        "edge-worker",
        "opcua",
        "OPCUADevice",
        json!({"spec": {
            "extension": {"mqtt": {"client": {"server": broker}, "message": {"topic": "bench/opcua/:name"}}},
            "parameters": {"syncInterval": format!("{}ms", args.millis), "timeout": "10s"},
            "protocol": {"endpoint": endpoint, "connectTimeout": "30s"},
            "properties": properties,
        }}),
    )
}

fn now_ms(at: Instant, anchor: (Instant, SystemTime)) -> f64 {
    let wall = anchor.1 + (at - anchor.0);
    wall.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = client().await;
    ensure_namespace(&client, NAMESPACE).await;
    let broker = Broker::start().await;
    let per_server = args.devices.div_ceil(args.servers);
    let mut servers = Vec::new();
    for _ in 0..args.servers {
        servers.push(
            OpcuaServer::start(ServerOptions {
                variables: json!([]),
                bench: Some((per_server, args.items, args.millis)),
                ..Default::default()
            })
            .await,
        );
    }
    let operator = Operator::start_with("bench-opcua-operator", &["--leader-elect=false"]);
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let all = (0..args.devices)
        .map(|i| {
            link(
                i,
                i / args.servers,
                &servers[i % args.servers].endpoint(),
                &args,
                &broker.url(),
            )
        })
        .collect();
    let took = create_all_connected(&links, all, &operator).await;
    eprintln!("{took}");
    eprintln!(
        "{} devices x {} items connected in {:.1}s; settling 10 s, then measuring {} s",
        args.devices,
        args.items,
        took.all_connected.as_secs_f64(),
        args.seconds
    );
    let mut messages = Subscriber::start(broker.port, "bench/opcua/+").await;
    let (pid, port) = kubelet.settled_adaptor(POD, Duration::from_secs(10)).await;
    while messages.try_next(Duration::ZERO).await.is_some() {}

    let anchor = (Instant::now(), SystemTime::now());
    let metric = |name: &'static str| async move { metric_at(port, name).await.unwrap_or(0.0) };
    let (changes_a, published_a, cpu_a) = (
        metric("devicelink_adaptor_opcua_data_changes_total").await,
        metric("devicelink_adaptor_mqtt_published_total").await,
        cpu_seconds(pid),
    );
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut latencies = Vec::new();
    while let Some(m) = messages
        .try_next(end.saturating_duration_since(Instant::now()))
        .await
    {
        // The newest value in the message is the change that sent it.
        let newest = m.payload["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["value"].as_str()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        if newest > 0.0 {
            latencies.push(now_ms(m.at, anchor) - newest);
        }
    }
    let secs = anchor.0.elapsed().as_secs_f64();
    let changes = metric("devicelink_adaptor_opcua_data_changes_total").await - changes_a;
    let published = metric("devicelink_adaptor_mqtt_published_total").await - published_a;
    let cpu = cpu_seconds(pid) - cpu_a;
    latencies.sort_by(f64::total_cmp);

    println!(
        "| OPC-UA adaptor, {} devices x {} monitored items at {} ms | |",
        args.devices, args.items, args.millis
    );
    println!("|---|---|");
    println!(
        "| server changes per second (one item per device per {} ms) | {:.0} |",
        args.millis,
        args.devices as f64 * 1000.0 / args.millis as f64
    );
    println!(
        "| data changes received per second | {:.0} |",
        changes / secs
    );
    println!("| MQTT messages per second | {:.0} |", published / secs);
    println!(
        "| latency server change -> MQTT, p50 / p95 / p99 / max | {:.0} / {:.0} / {:.0} / {:.0} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("| latency samples | {} |", latencies.len());
    print_footprint(pid, cpu / secs);

    drop(kubelet);
    operator.stop().await;
}
