//! devicelink-operator: parses flags and runs the controller (see lib.rs).

use clap::Parser;
use devicelink_operator::{config, controller};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = config::Config::parse();
    let client = kube::Client::try_default().await?;
    tracing::info!(adaptor_namespace = %config.adaptor_namespace, "starting devicelink-operator");
    controller::run(client, config).await;
    Ok(())
}
