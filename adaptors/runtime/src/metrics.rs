//! The adaptor's `/metrics` (Prometheus), `/readyz` and `/healthz` endpoint.

use std::sync::Arc;

use axum::{Router, http::StatusCode, routing::get};
use devicelink_mqtt::MqttMetrics;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::health::Health;

/// Serves in the background; an address that cannot be bound is logged,
/// never fatal (the devices matter more than their metrics). `protocol`
/// adds the adaptor's own metrics.
pub(crate) fn serve(
    address: &str,
    health: Arc<Health>,
    mqtt: &MqttMetrics,
    protocol: impl FnOnce(&mut Registry),
) {
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
            .route("/readyz", {
                let health = health.clone();
                get(move || async move { answer(health.readiness()) })
            })
            .route(
                "/healthz",
                get(move || async move { answer(health.liveness()) }),
            );
        match tokio::net::TcpListener::bind(&address).await {
            Ok(listener) => {
                info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or(address), "serving /metrics, /readyz and /healthz");
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "metrics endpoint stopped");
                }
            }
            Err(e) => warn!(%address, error = %e, "metrics endpoint not served"),
        }
    });
}

/// 200 "ok", or 503 with what is wrong (the kubelet logs it with the probe's
/// failure).
fn answer(check: Result<(), String>) -> (StatusCode, String) {
    match check {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
