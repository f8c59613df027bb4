//! Runs adaptor pods as local processes.
//!
//! kwok marks pods Running without running anything, so this stands in for
//! the kubelet's "run the container" part: for each adaptor pod scheduled to
//! a node it starts the pod's command with the pod's environment
//! (`fieldRef`s resolved from the pod) and a kubeconfig holding a token of
//! the pod's service account bound to the pod, so the adaptor has exactly
//! the pod's RBAC and identity. It stops the process when the pod is
//! deleted.

use std::collections::HashMap;

use devicelink_api::labels;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{
    process::Command,
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use crate::{Process, SYSTEM_NAMESPACE};

/// Runs adaptor pods until dropped.
pub struct LocalKubelet {
    task: JoinHandle<()>,
    metrics_ports: MetricsPorts,
    started: watch::Receiver<Vec<String>>,
    kill: mpsc::UnboundedSender<Kill>,
}

/// What is known of each started pod's process, by pod name.
type MetricsPorts = std::sync::Arc<std::sync::Mutex<HashMap<String, Launched>>>;

#[derive(Debug, Clone, Copy)]
struct Launched {
    metrics_port: u16,
    pid: Option<u32>,
}

/// SIGKILL the process of pod `pod`; start it again if `restart`.
struct Kill {
    pod: String,
    restart: bool,
    done: oneshot::Sender<bool>,
}

impl LocalKubelet {
    pub fn start(client: Client) -> LocalKubelet {
        let (tx, started) = watch::channel(Vec::new());
        let (kill, kills) = mpsc::unbounded_channel();
        let metrics_ports = MetricsPorts::default();
        LocalKubelet {
            task: tokio::spawn(run(client, tx, kills, metrics_ports.clone())),
            metrics_ports,
            started,
            kill,
        }
    }

    /// The port a pod's adaptor serves /metrics on (each process gets a
    /// free one, as they share this host).
    pub fn metrics_port(&self, pod: &str) -> Option<u16> {
        self.metrics_ports
            .lock()
            .unwrap()
            .get(pod)
            .map(|l| l.metrics_port)
    }

    /// The process id of a pod's adaptor (for benchmarks that watch its
    /// CPU and memory).
    pub fn pid(&self, pod: &str) -> Option<u32> {
        self.metrics_ports
            .lock()
            .unwrap()
            .get(pod)
            .and_then(|l| l.pid)
    }

    /// A pod's adaptor process id and metrics port, once it has run for
    /// `settle` (benchmarks measure from there); panics if no such pod runs
    /// here.
    pub async fn settled_adaptor(&self, pod: &str, settle: std::time::Duration) -> (u32, u16) {
        let pid = self
            .pid(pod)
            .unwrap_or_else(|| panic!("no adaptor process for {pod}"));
        let port = self
            .metrics_port(pod)
            .unwrap_or_else(|| panic!("no metrics port for {pod}"));
        tokio::time::sleep(settle).await;
        (pid, port)
    }

    /// Names of the pods that were started as processes so far.
    pub fn started(&self) -> Vec<String> {
        self.started.borrow().clone()
    }

    /// SIGKILLs the process of a pod, as a crash would: no cleanup, no
    /// goodbye to the broker. It is not started again. False if it was not
    /// running.
    pub async fn kill(&self, pod: &str) -> bool {
        self.send_kill(pod, false).await
    }

    /// SIGKILLs the process of a pod and starts it again, as a kubelet does
    /// when a container crashes: same pod, same data directory (an
    /// emptyDir lives as long as its pod).
    pub async fn crash_and_restart(&self, pod: &str) -> bool {
        self.send_kill(pod, true).await
    }

    async fn send_kill(&self, pod: &str, restart: bool) -> bool {
        let (done, killed) = oneshot::channel();
        let kill = Kill {
            pod: pod.to_string(),
            restart,
            done,
        };
        self.kill.send(kill).is_ok() && killed.await.unwrap_or(false)
    }
}

impl Drop for LocalKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    client: Client,
    started: watch::Sender<Vec<String>>,
    mut kills: mpsc::UnboundedReceiver<Kill>,
    metrics_ports: MetricsPorts,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let config =
        watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    let mut events = watcher(pods, config).default_backoff().boxed();
    let mut running: HashMap<String, (Pod, Process)> = HashMap::new();
    // Pods whose process was killed: not started again.
    let mut crashed: Vec<String> = Vec::new();
    loop {
        let event = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => return },
            Some(kill) = kills.recv() => {
                let uid = running.iter().find(|(_, (_, p))| p.name == kill.pod).map(|(uid, _)| uid.clone());
                let killed = match uid.and_then(|uid| running.remove(&uid).map(|p| (uid, p))) {
                    Some((uid, (pod, mut process))) => {
                        process.kill().await;
                        if kill.restart {
                            match launch(&pod, &metrics_ports).await {
                                Ok(process) => {
                                    running.insert(uid, (pod, process));
                                }
                                Err(e) => eprintln!("local kubelet: cannot restart pod {}: {e}", kill.pod),
                            }
                        } else {
                            crashed.push(uid);
                        }
                        true
                    }
                    None => false,
                };
                let _ = kill.done.send(killed);
                continue;
            }
        };
        let Ok(event) = event else { continue };
        let (pod, gone) = match event {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                let gone = p.metadata.deletion_timestamp.is_some();
                (p, gone)
            }
            watcher::Event::Delete(p) => (p, true),
            _ => continue,
        };
        let uid = pod.uid().unwrap_or_default();
        if gone {
            if let Some((_, process)) = running.remove(&uid) {
                process.stop().await;
            }
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if running.contains_key(&uid) || crashed.contains(&uid) || phase != "Running" {
            continue;
        }
        match launch(&pod, &metrics_ports).await {
            Ok(process) => {
                running.insert(uid, (pod.clone(), process));
                started.send_modify(|v| v.push(pod.name_any()));
            }
            Err(e) => eprintln!("local kubelet: cannot start pod {}: {e}", pod.name_any()),
        }
    }
}

async fn launch(pod: &Pod, metrics_ports: &MetricsPorts) -> anyhow::Result<Process> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("pod has no spec"))?;
    let container = spec
        .containers
        .first()
        .ok_or_else(|| anyhow::anyhow!("pod has no container"))?;
    let command = container
        .command
        .as_ref()
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow::anyhow!("no command"))?;
    let mut cmd = Command::new(crate::bin(command));
    cmd.args(container.command.as_ref().unwrap().iter().skip(1));
    cmd.args(container.args.iter().flatten());
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for env in container.env.iter().flatten() {
        let value = match (&env.value, &env.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) if from.resource_field_ref.is_some() => {
                let resource = &from.resource_field_ref.as_ref().unwrap().resource;
                anyhow::ensure!(
                    resource == "limits.memory",
                    "env {} from resource {resource} is not supported by the local kubelet",
                    env.name
                );
                // Without a limit a kubelet gives the node's memory; here,
                // nothing (this host is no node of a known size).
                let limit = container
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|l| l.get("memory"));
                match limit.and_then(|q| bytes_of(&q.0)) {
                    Some(bytes) => bytes.to_string(),
                    None => continue,
                }
            }
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("spec.nodeName") => spec.node_name.clone().unwrap_or_default(),
                Some("metadata.name") => pod.name_any(),
                Some("metadata.namespace") => pod.namespace().unwrap_or_default(),
                other => anyhow::bail!(
                    "env {} from {other:?} is not supported by the local kubelet",
                    env.name
                ),
            },
            (None, None) => String::new(),
        };
        cmd.env(&env.name, value);
    }
    // The pod's emptyDir data volume, kept as long as the pod; and metrics
    // on a free port, as several adaptors share this host.
    let data = crate::log_dir()
        .join("data")
        .join(pod.uid().unwrap_or_default());
    cmd.env("DEVICELINK_DATA_DIR", data);
    let port = crate::process::free_port();
    cmd.env("DEVICELINK_METRICS_ADDRESS", format!("127.0.0.1:{port}"));
    let service_account = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let pod_name = pod.name_any();
    // Bound to the pod, as a kubelet's token is (the API server sees the
    // pod's node in it, which the adaptor write policy checks).
    let kubeconfig = tokio::task::spawn_blocking(move || {
        let token = crate::token_for(&service_account, Some(&pod_name))?;
        crate::kubeconfig_with_token(&token, &pod_name)
    })
    .await??;
    cmd.env("KUBECONFIG", kubeconfig);
    let process = Process::spawn(&pod.name_any(), cmd);
    let launched = Launched {
        metrics_port: port,
        pid: process.pid(),
    };
    metrics_ports
        .lock()
        .unwrap()
        .insert(pod.name_any(), launched);
    Ok(process)
}

/// A memory quantity (`48Mi`, `1G`, `1048576`) in bytes.
fn bytes_of(quantity: &str) -> Option<u64> {
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let factor: u64 = match &quantity[digits.len()..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| n * factor)
}
