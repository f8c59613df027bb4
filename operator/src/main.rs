//! devicelink-operator: reconciles DeviceLinks.
//!
//! For each DeviceLink it checks the node and the model, makes sure the
//! adaptor pod for that adaptor kind runs on that node, creates the device
//! object from the template, and reports each step as a condition.

mod adaptor_pod;
mod config;
mod controller;
mod device;
mod error;
mod stages;

use clap::Parser;
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
