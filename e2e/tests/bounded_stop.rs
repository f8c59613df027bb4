//! Stopping is bounded whatever is unreachable: with the API server gone
//! (every connection to it cut, as when a control plane or the node's
//! network goes away) and the MQTT broker gone while the adaptor holds
//! messages for it, SIGTERM stops the operator and a Modbus adaptor within
//! their grace (a pod's default is 30 s; each says it stops within 10 s),
//! even with a device whose disconnectQuiesce is an hour.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    Broker, Process, begin, device_link, kubeconfig_as, log_dir,
    modbus::ModbusServer,
    process::{Operator, free_port, metric_at},
    wait_condition, wait_connected,
};
use kube::{Api, api::PostParams};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinSet};

const GRACE: Duration = Duration::from_secs(30);
const NAMESPACE: &str = "e2e-bounded-stop";

/// A TCP forwarder to the API server; `cut` closes every connection and
/// stops listening, so whoever talks through it finds the server gone.
struct Forwarder {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            // Dropped with this task: every connection ends with it.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Forwarder { port, task }
    }

    fn cut(&self) {
        self.task.abort();
    }
}

/// The API server's address, from the test kubeconfig.
fn api_server() -> SocketAddr {
    let config = kube::config::Kubeconfig::read().expect("the test kubeconfig");
    let server = config.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("a server in the kubeconfig");
    server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{server} is not https://<ip>:<port>: {e}"))
}

/// A kubeconfig for `account` that reaches the API server through `port`
/// (127.0.0.1 is in the server's certificate).
fn through(account: &str, name: &str, port: u16) -> PathBuf {
    let direct = kubeconfig_as(account, name).expect("a token for the account");
    let text = std::fs::read_to_string(&direct).unwrap();
    let upstream = api_server();
    let text = text.replace(
        &format!("https://{upstream}"),
        &format!("https://127.0.0.1:{port}"),
    );
    let path = log_dir().join(format!("{name}-through-forwarder.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The Modbus adaptor as its pod runs it, as its node's ServiceAccount.
fn adaptor(kubeconfig: &Path, metrics_port: u16) -> Process {
    let data = log_dir().join("bounded-stop-adaptor-data");
    std::fs::create_dir_all(&data).unwrap();
    let mut command =
        tokio::process::Command::new(devicelink_e2e::bin("devicelink-adaptor-modbus"));
    command
        .env("KUBECONFIG", kubeconfig)
        .env("NODE_NAME", "edge-worker")
        .env("DEVICELINK_DATA_DIR", &data)
        .env(
            "DEVICELINK_METRICS_ADDRESS",
            format!("127.0.0.1:{metrics_port}"),
        );
    Process::spawn("bounded-stop-adaptor", command)
}

#[tokio::test]
async fn sigterm_stops_operator_and_adaptor_with_api_server_and_broker_gone() {
    let (_guard, client) = begin(NAMESPACE).await;
    let broker = Broker::start().await;
    let device = ModbusServer::tcp(&[1], json!({"1": {"holding": {"0": 2965}}})).await;
    let forwarder = Forwarder::start(api_server()).await;
    let mut operator = Operator::start_with_kubeconfig(
        "bounded-stop-operator",
        &through(
            "devicelink-operator",
            "bounded-stop-operator",
            forwarder.port,
        ),
        &["--leader-elect=false"],
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let name = "boiler";
    let link = device_link(
        NAMESPACE,
        name,
        "edge-worker",
        "modbus",
        "ModbusDevice",
        json!({"spec": {
            "parameters": {"syncInterval": "500ms"},
            "protocol": {"tcp": {"endpoint": device.endpoint(), "workerID": 1}},
            "properties": [{"name": "temperature", "type": "uint16", "readOnly": true,
                            "visitor": {"register": "HoldingRegister", "offset": 0}}],
            "extension": {"mqtt": {
                "client": {"server": broker.url(), "disconnectQuiesce": "1h"},
                "message": {"topic": "e2e/stop/:name", "qos": 1},
            }},
        }}),
    );
    let _ = links.delete(name, &Default::default()).await;
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create the DeviceLink");
    // The operator made the adaptor's ServiceAccount and its access.
    wait_condition(&links, name, "DeviceCreated", "True").await;
    let metrics_port = free_port();
    let mut adaptor = adaptor(
        &through(
            "devicelink-adaptor-modbus-edge-worker",
            "bounded-stop-adaptor",
            forwarder.port,
        ),
        metrics_port,
    );
    wait_connected(&links, name).await;

    // Everything it talks to goes away; what it samples waits for the broker.
    forwarder.cut();
    broker.stop().await;
    devicelink_e2e::eventually(
        "the adaptor to hold messages for the broker",
        GRACE,
        || async {
            let waiting = metric_at(metrics_port, "devicelink_adaptor_mqtt_buffered").await?;
            (waiting >= 2.0).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    assert!(
        adaptor.terminate(GRACE).await,
        "the adaptor did not stop within {GRACE:?} of SIGTERM"
    );
    println!("adaptor stopped {:?} after SIGTERM", started.elapsed());
    let started = Instant::now();
    assert!(
        operator.process.terminate(GRACE).await,
        "the operator did not stop within {GRACE:?} of SIGTERM"
    );
    println!("operator stopped {:?} after SIGTERM", started.elapsed());

    // Cleaning up needs an operator that can reach the API server.
    let cleanup = devicelink_e2e::process::start_operator();
    devicelink_e2e::delete_link_and_wait(&links, name).await;
    cleanup.stop().await;
}
