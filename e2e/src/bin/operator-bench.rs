//! Benchmark (not a test) of the operator at scale, on the real control
//! plane: N DeviceLinks over M kwok nodes. Run it with
//! `bash e2e/bench-operator.sh` (it builds in release mode and starts a
//! control plane of its own).
//!
//! It prints: the time until every DeviceLink is settled (its operator
//! stages True and DeviceConnected waiting for an adaptor); the time a bare
//! client needs to write the same objects (each DeviceLink, its device and
//! its status), with the same concurrency; the operator's peak RSS; its API
//! requests per DeviceLink; and its writes during a period at rest.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use devicelink_api::{DeviceLink, DeviceLinkStatus, Outcome, condition, dummy::DummySpecialDevice};
use devicelink_e2e::{
    client, dummy_link, ensure_namespace,
    process::{Operator, peak_rss_mib},
};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
};
use serde_json::json;

struct Args {
    links: usize,
    nodes: usize,
    concurrency: usize,
    rest: Duration,
}

fn args() -> Args {
    let [links, nodes, concurrency, rest] = devicelink_e2e::flags([
        ("--links", 5000),
        ("--nodes", 50),
        ("--concurrency", 16),
        ("--rest-seconds", 60),
    ]);
    Args {
        links: links as usize,
        nodes: nodes as usize,
        concurrency: concurrency as usize,
        rest: Duration::from_secs(rest),
    }
}

fn node_name(i: usize) -> String {
    format!("bench-node-{i:03}")
}

fn link(namespace: &str, i: usize, nodes: usize) -> DeviceLink {
    dummy_link(
        namespace,
        &format!("fan-{i:05}"),
        &node_name(i % nodes),
        json!({"spec": {"protocol": {"location": format!("hall-{i}")}, "gear": "slow"}}),
    )
}

async fn create_nodes(client: &Client, count: usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let node = devicelink_e2e::kwok_node(&node_name(i));
        let _ = nodes.create(&PostParams::default(), &node).await;
    }
}

/// Sums the samples of one metric family, by label set.
async fn samples(operator: &Operator, family: &str) -> BTreeMap<String, f64> {
    let (_, body) = operator.get("/metrics").await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn requests(operator: &Operator) -> (f64, f64) {
    let by_method = samples(operator, "devicelink_operator_api_requests_total").await;
    let all: f64 = by_method.values().sum();
    let reads: f64 = by_method
        .iter()
        .filter(|(k, _)| k.contains("method=\"GET\""))
        .map(|(_, v)| v)
        .sum();
    (all, all - reads)
}

/// The operator phase: DeviceLinks created while the operator runs, until
/// all are settled. Returns (seconds, peak RSS MiB, requests/DL, writes/DL,
/// writes at rest).
async fn with_operator(client: &Client, args: &Args) -> (f64, f64, f64, f64, f64) {
    let namespace = "bench-operator";
    ensure_namespace(client, namespace).await;
    let operator = Operator::start_with("bench-operator", &["--leader-elect=false"]);
    let pid = operator.pid().expect("operator runs");
    devicelink_e2e::eventually(
        "the operator to be ready",
        Duration::from_secs(60),
        || async { matches!(operator.get("/readyz").await, Some((200, _))).then_some(()) },
    )
    .await;
    let (before, writes_before) = requests(&operator).await;

    let api: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let start = Instant::now();
    stream::iter(0..args.links)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &link(namespace, i, args.nodes))
                    .await
                    .expect("create DeviceLink");
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;
    let created = start.elapsed();
    let settled_sample =
        "devicelink_operator_devicelinks{phase=\"DeviceConnected\",status=\"Unknown\"}";
    let settled = loop {
        let n = operator.metric(settled_sample).await.unwrap_or(0.0) as usize;
        if n >= args.links {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(1800) {
            panic!(
                "only {n} of {} DeviceLinks settled in 30 minutes",
                args.links
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (after, writes_after) = requests(&operator).await;
    eprintln!(
        "operator requests by method: {:?}",
        samples(&operator, "devicelink_operator_api_requests_total").await
    );
    eprintln!(
        "reconciles: {:?}, errors: {:?}",
        operator
            .metric("devicelink_operator_reconciles_total")
            .await,
        samples(&operator, "devicelink_operator_reconcile_errors_total").await
    );
    eprintln!(
        "operator: created {} DeviceLinks in {:.1}s, all settled after {:.1}s",
        args.links,
        created.as_secs_f64(),
        settled.as_secs_f64()
    );

    // At rest: nothing changes, so nothing should be written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, rest_before) = requests(&operator).await;
    tokio::time::sleep(args.rest).await;
    let (_, rest_after) = requests(&operator).await;
    let rss = peak_rss_mib(pid);
    operator.stop().await;
    let n = args.links as f64;
    (
        settled.as_secs_f64(),
        rss,
        (after - before) / n,
        (writes_after - writes_before) / n,
        rest_after - rest_before,
    )
}

/// The bare-client phase: the same objects written directly, no operator:
/// each DeviceLink, its device, and its status.
async fn bare_client(client: &Client, args: &Args) -> f64 {
    let namespace = "bench-bare";
    ensure_namespace(client, namespace).await;
    let model = ApiResource::erase::<DummySpecialDevice>(&());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &model);
    let start = Instant::now();
    stream::iter(0..args.links)
        .map(|i| {
            let (links, devices, model) = (links.clone(), devices.clone(), model.clone());
            async move {
                let mut created = links
                    .create(&PostParams::default(), &link(namespace, i, args.nodes))
                    .await
                    .expect("create DeviceLink");
                let device = devicelink_operator::device::desired(&created, &model, "dummy");
                devices
                    .patch(
                        &device.name_any(),
                        &PatchParams::apply("bench").force(),
                        &Patch::Apply(&device),
                    )
                    .await
                    .expect("apply device");
                let outcomes = [
                    Outcome::ok("Found"),
                    Outcome::ok("Found"),
                    Outcome::ok("Found"),
                    Outcome::ok("Success"),
                ];
                created.status = Some(DeviceLinkStatus {
                    conditions: condition::advance(&[], &outcomes, &condition::now()),
                    observed_generation: created.metadata.generation,
                    ..Default::default()
                });
                links
                    .replace_status(&created.name_any(), &PostParams::default(), &created)
                    .await
                    .expect("write status");
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = client().await;
    create_nodes(&client, args.nodes).await;
    eprintln!(
        "{} DeviceLinks over {} kwok nodes, {} requests in flight",
        args.links, args.nodes, args.concurrency
    );
    let (settled, rss, per_link, writes_per_link, at_rest) = with_operator(&client, &args).await;
    let bare = bare_client(&client, &args).await;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| DeviceLinks / kwok nodes | {} / {} |",
        args.links, args.nodes
    );
    println!("| time until all settled, operator | {settled:.1} s |");
    println!("| time for a bare client to write the same objects | {bare:.1} s |");
    println!("| ratio | {:.2}x |", settled / bare);
    println!("| operator peak RSS | {rss:.1} MiB |");
    println!("| operator API requests per DeviceLink | {per_link:.2} |");
    println!("| of which writes | {writes_per_link:.2} |");
    println!(
        "| operator writes during {} s at rest | {at_rest} |",
        args.rest.as_secs()
    );
}
