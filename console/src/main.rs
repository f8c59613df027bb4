//! devicelink-console: parses flags, starts the watches, the broker feed
//! and the HTTP server, and stops on SIGTERM.

use std::sync::{Arc, atomic::Ordering};

use clap::Parser;
use devicelink_console::{
    api::{self, App},
    auth::Gate,
    catalog::Catalog,
    config::Config,
    feed::Feed,
    hub::Hub,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    devicelink_process::init_logging();
    let config = Config::parse();
    let identity = config.identity()?;
    let client = kube::Client::try_default().await?;
    let (catalog, link_changes, device_watches) = Catalog::watch(&client);
    let hub = Arc::new(Hub::default());
    let feed = Feed::new(
        catalog.clone(),
        hub.clone(),
        config.client_id.clone(),
        devicelink_console::brokers::AllowedBrokers::new(&config.allowed_brokers),
        client.clone(),
        identity,
    );
    let app = Arc::new(App {
        routes: feed.routes(),
        gate: Gate::new(
            client.clone(),
            config.review_for(),
            config.token_audience.clone(),
            config.reviews_per_minute,
        ),
        catalog: catalog.clone(),
        hub,
        ready: Default::default(),
        stopped: Default::default(),
        config: config.clone(),
    });

    // The device caches fill as their watches are polled.
    // Neither ends while the console works (their watches retry); if one
    // does, or panics, the console is not alive any more.
    let watching = [
        (
            "the device watches",
            tokio::spawn(async {
                futures::future::join_all(device_watches).await;
            }),
        ),
        (
            "the DeviceLink watch and broker feed",
            tokio::spawn(feed.run(link_changes)),
        ),
    ];
    for (what, task) in watching {
        let app = app.clone();
        tokio::spawn(async move {
            let why = match task.await {
                Ok(()) => format!("{what} ended"),
                Err(e) => format!("{what} failed: {e}"),
            };
            tracing::error!(%why, "not alive");
            *app.stopped.lock().unwrap() = Some(why);
        });
    }
    tokio::spawn({
        let app = app.clone();
        async move {
            app.catalog.filled().await;
            app.ready.store(true, Ordering::Release);
            tracing::info!("caches filled; ready");
        }
    });

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "serving the console");
    // Each client's address limits its token reviews.
    let service = api::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    devicelink_process::stop_signal().await;
    tracing::info!("stopping");
}
