//! devicelink-operator: parses flags, serves metrics and health, takes the
//! leader lease and runs the controller (see lib.rs).

use clap::Parser;
use devicelink_operator::{config::Config, controller, http, leader, metrics::Metrics};
use kube::runtime::reflector;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    devicelink_process::init_logging();
    let config = Config::parse().load_settings()?;
    let (links, links_writer) = reflector::store();
    let metrics = Metrics::new(links);
    let client = metrics.counting_client().await?;
    tracing::info!(adaptor_namespace = %config.adaptor_namespace, "starting devicelink-operator");
    // A standby replica is healthy and ready; the controller lowers readiness
    // while its caches fill once it leads.
    let readiness = http::Readiness::default();
    readiness.set(true);
    tokio::spawn({
        let (addr, metrics, readiness) = (config.metrics_addr, metrics.clone(), readiness.clone());
        async move {
            if let Err(e) = http::serve(addr, metrics, readiness).await {
                tracing::error!(%addr, error = %e, "cannot serve metrics and health");
                std::process::exit(1);
            }
        }
    });

    // Stopping is bounded: what has not finished by then (a reconcile
    // waiting on an API server that went away) is abandoned.
    let shutdown = devicelink_process::bounded_stop(STOP_WITHIN);
    let run_controller = {
        let (client, config, metrics, shutdown) = (
            client.clone(),
            config.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        move || controller::run(client, config, links_writer, metrics, readiness, shutdown)
    };
    if !config.leader_elect {
        metrics.leader.set(1);
        run_controller().await;
        return Ok(());
    }
    let identity = config.identity();
    let leading = leader::while_leading(
        client,
        &config.lease_namespace,
        &identity,
        shutdown,
        |is_leader| {
            metrics.leader.set(i64::from(is_leader));
        },
        run_controller,
    );
    leading.await?;
    tracing::info!("stopped");
    Ok(())
}

/// How long the operator takes at most to stop after SIGTERM or Ctrl-C:
/// within the pod's default grace period (30 s).
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
