//! Apache Kafka for the bridge's tests: a single-node KRaft broker
//! (e2e/devices/kafka, built into the cache by e2e/prereqs.sh) on free
//! loopback ports, [`Consumer`], Kafka's own Java consumer reading what
//! arrived, so what the bridge delivered is checked by a client it does not
//! share code with, and [`Producer`], its Java producer, writing what the
//! bridge reads.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::process::{Process, free_port};

/// A running broker; stopped when dropped. Its data lives in the log
/// directory, so [`Kafka::restart`] brings back what it held (an outage).
pub struct Kafka {
    /// The address its client listener is on (and advertises).
    pub host: std::net::Ipv4Addr,
    pub port: u16,
    /// With [`Kafka::start_secured`]: the SASL_SSL and the SSL (client
    /// certificate required) listeners' ports.
    secured_ports: Option<(u16, u16)>,
    dir: PathBuf,
    process: Option<Process>,
}

fn installed() -> PathBuf {
    let dir = crate::cache_dir().join("kafka");
    assert!(
        dir.join("classes/Produce.class").exists(),
        "{} is missing: run `make test` (e2e/prereqs.sh builds Kafka there)",
        dir.display()
    );
    dir
}

fn class_path() -> String {
    let dir = installed();
    format!(
        "{}/*:{}",
        dir.join("lib").display(),
        dir.join("classes").display()
    )
}

fn java(log4j: &str) -> Command {
    let mut command = Command::new("java");
    command
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            installed().join("source").join(log4j).display()
        ))
        .arg("-cp")
        .arg(class_path());
    command
}

impl Kafka {
    /// Formats a fresh data directory and starts the broker on free
    /// loopback ports.
    pub async fn start() -> Kafka {
        Kafka::start_on(std::net::Ipv4Addr::LOCALHOST).await
    }

    /// The same, with its client listener on `host` (an address pods
    /// reach); its controller stays on loopback.
    pub async fn start_on(host: std::net::Ipv4Addr) -> Kafka {
        Kafka::start_with(host, None).await
    }

    /// The same on loopback, with two more listeners besides the plaintext
    /// one (which [`Consumer`] reads through): `SASL_SSL` (PLAIN,
    /// SCRAM-SHA-256 and SCRAM-SHA-512 for [`SASL_USER`]) and `SSL` that
    /// requires a client certificate, both with the server certificate of
    /// `certs` ([`crate::certs::certificates`]: for 127.0.0.1, by its CA).
    pub async fn start_secured(certs: &std::path::Path) -> Kafka {
        Kafka::start_with(std::net::Ipv4Addr::LOCALHOST, Some(certs)).await
    }

    async fn start_with(host: std::net::Ipv4Addr, certs: Option<&std::path::Path>) -> Kafka {
        let (port, controller) = (free_port(), free_port());
        let dir = crate::log_dir().join(format!("kafka-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut listeners = vec![
            format!("PLAINTEXT://{host}:{port}"),
            format!("CONTROLLER://127.0.0.1:{controller}"),
        ];
        let mut protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string();
        let mut secured = String::new();
        let mut secured_ports = None;
        if let Some(certs) = certs {
            let (sasl, mtls) = (free_port(), free_port());
            secured_ports = Some((sasl, mtls));
            listeners.push(format!("SASL_SSL://{host}:{sasl}"));
            listeners.push(format!("SSL://{host}:{mtls}"));
            protocols.push_str(",SASL_SSL:SASL_SSL,SSL:SSL");
            // Kafka reads its key from a PKCS#12 store; it trusts client
            // certificates of the test CA.
            crate::openssl(
                certs,
                &[
                    "pkcs12",
                    "-export",
                    "-in",
                    "server.pem",
                    "-inkey",
                    "server.key",
                    "-name",
                    "kafka",
                    "-out",
                    "kafka.p12",
                    "-passout",
                    "pass:kafka-store",
                ],
            );
            let (user, password) = SASL_USER;
            secured = format!(
                "ssl.keystore.type=PKCS12\n\
                 ssl.keystore.location={store}\n\
                 ssl.keystore.password=kafka-store\n\
                 ssl.key.password=kafka-store\n\
                 ssl.truststore.type=PEM\n\
                 ssl.truststore.location={ca}\n\
                 listener.name.ssl.ssl.client.auth=required\n\
                 sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n\
                 listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";\n\
                 listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n",
                store = certs.join("kafka.p12").display(),
                ca = certs.join("ca.pem").display(),
            );
        }
        let listeners = listeners.join(",");
        std::fs::write(
            dir.join("server.properties"),
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
                 listeners={listeners}\n\
                 advertised.listeners={listeners}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 listener.security.protocol.map={protocols}\n\
                 log.dirs={data}\n\
                 num.partitions=3\n\
                 offsets.topic.replication.factor=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 log.cleaner.dedupe.buffer.size=16777216\n\
                 {secured}",
                data = dir.join("data").display()
            ),
        )
        .unwrap();
        let cluster_id = java("log4j2-tools.xml")
            .args(["kafka.tools.StorageTool", "random-uuid"])
            .output()
            .await
            .expect("run Kafka's storage tool");
        let cluster_id = String::from_utf8_lossy(&cluster_id.stdout)
            .trim()
            .to_string();
        let mut format = java("log4j2-tools.xml");
        format
            .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
            .arg(&cluster_id)
            .arg("-c")
            .arg(dir.join("server.properties"));
        if certs.is_some() {
            // SCRAM credentials live in the cluster's metadata, written
            // with the storage.
            let (user, password) = SASL_USER;
            for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
                format
                    .arg("--add-scram")
                    .arg(format!("{mechanism}=[name={user},password={password}]"));
            }
        }
        let status = format
            .stdout(Stdio::null())
            .status()
            .await
            .expect("run Kafka's storage tool");
        assert!(
            status.success(),
            "formatting Kafka's storage failed: {status}"
        );
        let mut kafka = Kafka {
            host,
            port,
            secured_ports,
            dir,
            process: None,
        };
        kafka.run().await;
        kafka
    }

    /// `127.0.0.1:port` of the SASL_SSL listener.
    pub fn sasl_ssl(&self) -> String {
        let (port, _) = self.secured_ports.expect("started with start_secured");
        format!("{}:{port}", self.host)
    }

    /// `127.0.0.1:port` of the SSL listener that requires a client
    /// certificate.
    pub fn mutual_tls(&self) -> String {
        let (_, port) = self.secured_ports.expect("started with start_secured");
        format!("{}:{port}", self.host)
    }

    /// `host:port`, for bootstrap servers.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    async fn run(&mut self) {
        let name = format!("kafka-{}", self.port);
        let log = crate::log_dir().join(format!("{name}.log"));
        let already = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(STARTED)
            .count();
        let mut command = java("log4j2.xml");
        command
            // Small and quick: a heap of 192 MiB (the log cleaner's buffer is
            // set down to 16 MiB to fit), serial GC, no optimizing compiler.
            .args([
                "-Xms128m",
                "-Xmx192m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"));
        self.process = Some(Process::spawn(&name, command));
        crate::eventually("Kafka to start", Duration::from_secs(90), || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).ok()?;
                (text.matches(STARTED).count() > already).then_some(())
            }
        })
        .await;
    }

    /// Stops the broker (SIGTERM, as an orderly shutdown).
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop().await;
        }
    }

    /// Starts it again on the same ports with the data it had.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }
}

const STARTED: &str = "Kafka Server started";

/// The user [`Kafka::start_secured`] knows on its SASL listener, with every
/// mechanism.
pub const SASL_USER: (&str, &str) = ("bridge", "bridge-s3cret");

/// A replica of the bridge (`devicelink-bridge`), run here against the
/// test control plane as its administrator.
pub struct Bridge {
    pub process: Process,
    pub health_port: u16,
}

impl Bridge {
    /// Serves the KafkaBridges of `namespace` as replica `instance`, once
    /// it has listed them.
    pub async fn start(namespace: &str, instance: &str) -> Bridge {
        let health_port = free_port();
        let mut command = Command::new(crate::bin("devicelink-bridge"));
        command
            .env("RUST_LOG", "info,devicelink_bridge=debug")
            .arg("--namespace")
            .arg(namespace)
            .arg("--instance")
            .arg(instance)
            .arg("--health-addr")
            .arg(format!("127.0.0.1:{health_port}"));
        let bridge = Bridge {
            process: Process::spawn(&format!("bridge-{instance}"), command),
            health_port,
        };
        crate::eventually(
            "the bridge to be ready",
            Duration::from_secs(30),
            || async {
                let (code, _) = crate::process::http_get(health_port, "/readyz").await?;
                (code == 200).then_some(())
            },
        )
        .await;
        bridge
    }

    /// SIGKILL: the replica dies mid-stream, acknowledging nothing more.
    pub async fn kill(mut self) {
        self.process.kill().await;
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// One record as [`Consumer`] read it (key, value and header values as
/// UTF-8).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

impl Record {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Kafka's Java consumer (e2e/devices/kafka/Consume.java) in a group of its
/// own, reading the given topics from their start.
pub struct Consumer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Consumer {
    pub fn start(kafka: &Kafka, topics: &[&str]) -> Consumer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(crate::log_dir().join(format!("kafka-consumer-{}.log", kafka.port)))
            .unwrap();
        let mut child = java("log4j2-tools.xml")
            .arg("Consume")
            .arg(kafka.bootstrap())
            .arg(topics.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start Kafka's consumer");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Consumer { child, lines }
    }

    /// The next record, if one arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Record> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .ok()?
            .expect("read the consumer's output")?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
    }

    /// Records until `count` have arrived or `within` has passed.
    pub async fn take(&mut self, count: usize, within: Duration) -> Vec<Record> {
        let deadline = Instant::now() + within;
        let mut records = Vec::new();
        while records.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(record) => records.push(record),
                None => break,
            }
        }
        records
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One record for [`Producer::send`].
#[derive(Debug, Clone, Default)]
pub struct Outgoing<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    /// Milliseconds since the epoch; the producer's clock without it.
    pub timestamp: Option<i64>,
}

/// Kafka's Java producer (e2e/devices/kafka/Produce.java) writing to one
/// topic.
pub struct Producer {
    child: Child,
    input: ChildStdin,
    acks: Lines<BufReader<ChildStdout>>,
}

impl Producer {
    pub fn start(kafka: &Kafka, topic: &str) -> Producer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(crate::log_dir().join(format!("kafka-producer-{}.log", kafka.port)))
            .unwrap();
        let mut child = java("log4j2-tools.xml")
            .arg("Produce")
            .arg(kafka.bootstrap())
            .arg(topic)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start Kafka's producer");
        let input = child.stdin.take().unwrap();
        let acks = BufReader::new(child.stdout.take().unwrap()).lines();
        Producer { child, input, acks }
    }

    /// Sends `record` and waits until Kafka acknowledged it.
    pub async fn send(&mut self, record: &Outgoing<'_>) {
        let mut line = format!("{}\t{}", record.key, record.value);
        for (name, value) in &record.headers {
            line.push_str(&format!("\th:{name}={value}"));
        }
        if let Some(millis) = record.timestamp {
            line.push_str(&format!("\tt:{millis}"));
        }
        assert!(!record.value.contains(['\t', '\n']), "one line per record");
        line.push('\n');
        self.input.write_all(line.as_bytes()).await.unwrap();
        self.input.flush().await.unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(60), self.acks.next_line())
            .await
            .expect("Kafka to acknowledge a record within 60 s")
            .expect("read the producer's output");
        assert!(
            ack.as_deref().is_some_and(|a| a.starts_with("sent ")),
            "the producer said {ack:?}"
        );
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
