//! The adaptor's `/metrics` (Prometheus) and `/healthz` endpoint.

use std::sync::Arc;

use axum::{Router, routing::get};
use devicelink_mqtt::MqttMetrics;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

/// Serves in the background; an address that cannot be bound is logged,
/// never fatal (the devices matter more than their metrics). `protocol`
/// adds the adaptor's own metrics.
pub(crate) fn serve(address: &str, mqtt: &MqttMetrics, protocol: impl FnOnce(&mut Registry)) {
    if address.is_empty() {
        return;
    }
    let mut registry = Registry::with_prefix("devicelink_adaptor");
    mqtt.register(&mut registry);
    protocol(&mut registry);
    let registry = Arc::new(registry);
    let address = address.to_string();
    tokio::spawn(async move {
        let app = Router::new()
            .route(
                "/metrics",
                get(move || {
                    let registry = registry.clone();
                    async move {
                        let mut out = String::new();
                        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            out,
                        )
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        match tokio::net::TcpListener::bind(&address).await {
            Ok(listener) => {
                info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or(address), "serving /metrics and /healthz");
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "metrics endpoint stopped");
                }
            }
            Err(e) => warn!(%address, error = %e, "metrics endpoint not served"),
        }
    });
}
