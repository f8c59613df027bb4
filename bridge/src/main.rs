//! devicelink-bridge: parses flags, runs the KafkaBridges it serves and
//! answers health checks, until SIGTERM.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, http::StatusCode, routing::get};
use clap::Parser;
use devicelink_bridge::controller::{self, Serving};

/// Delivers MQTT messages into Kafka as KafkaBridge objects say.
#[derive(Parser, Debug)]
#[command(version)]
struct Flags {
    /// Serve only the KafkaBridges of this namespace (all by default).
    #[arg(long, env = "DEVICELINK_BRIDGE_NAMESPACE")]
    namespace: Option<String>,
    /// This replica's name, unique among the replicas (the pod's name):
    /// part of its MQTT client IDs.
    #[arg(long, env = "POD_NAME")]
    instance: String,
    /// Where /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    devicelink_process::init_logging();
    let flags = Flags::parse();
    let client = kube::Client::try_default().await?;
    let ready = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicBool::new(true));
    let serving = Serving {
        instance: flags.instance.clone(),
        namespace: flags.namespace.clone(),
    };
    let bridges = tokio::spawn(controller::run(client, serving, ready.clone()));
    // The watch retries for ever: if it ends, or panics, this replica is
    // not alive any more.
    tokio::spawn({
        let alive = alive.clone();
        async move {
            let why = match bridges.await {
                Ok(()) => "the KafkaBridge watch ended".to_string(),
                Err(e) => format!("the KafkaBridge watch failed: {e}"),
            };
            tracing::error!(%why, "not alive");
            alive.store(false, Ordering::Release);
        }
    });
    let health = Router::new()
        .route(
            "/healthz",
            get(move || flag(alive.clone(), "the KafkaBridge watch stopped")),
        )
        .route(
            "/readyz",
            get(move || flag(ready.clone(), "KafkaBridges not listed yet")),
        );
    let listener = tokio::net::TcpListener::bind(flags.health_addr).await?;
    tracing::info!(health = %flags.health_addr, instance = %flags.instance, "serving");
    axum::serve(listener, health)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn flag(flag: Arc<AtomicBool>, otherwise: &'static str) -> (StatusCode, &'static str) {
    if flag.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, otherwise)
    }
}

async fn shutdown_signal() {
    devicelink_process::stop_signal().await;
    tracing::info!("stopping");
}
