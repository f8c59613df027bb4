//! Devices discovery found (docs/discovery.md), for the page's
//! "Discovered" view: the finds of a namespace with what they say they
//! are and the template that matches, and adopting one. Both are decided
//! by the API server for the request's user, as for DeviceLinks: `list`
//! on discovereddevices to see them, `patch` on a find to adopt it (what
//! `kubectl annotate` needs).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use devicelink_api::discovery::{ADOPT, DiscoveredDevice};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    api::{App, ListQuery, allow, checked_names, error, listed_namespace},
    auth::Access,
};

const RESOURCE: &str = "discovereddevices";

/// The finds of `namespace` (all namespaces without it), newest scan
/// first by name. Needs `list` on DiscoveredDevices there.
pub async fn list(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Response> {
    let namespace = listed_namespace(&app, &headers, peer.ip(), &query, RESOURCE).await?;
    let api: Api<DiscoveredDevice> = match namespace {
        Some(ns) => Api::namespaced(app.gate.client(), ns),
        None => Api::all(app.gate.client()),
    };
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(unavailable)?
        .items;
    items.sort_by_key(|f| (f.namespace(), f.name_any()));
    let items: Vec<Value> = items.iter().map(summary).collect();
    Ok(Json(json!({"items": items})).into_response())
}

/// Adopts a find: sets its `edge.cattle.io/adopt` annotation, after which
/// the operator makes its DeviceLink (the find's `adoptedAs` then names
/// it). Needs `patch` on that DiscoveredDevice.
pub async fn adopt(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Response> {
    checked_names(Some(&namespace), &[&name])?;
    let access = Access::to(RESOURCE, "patch", Some(&namespace), Some(&name));
    allow(&app, &headers, peer.ip(), &access).await?;
    let api: Api<DiscoveredDevice> = Api::namespaced(app.gate.client(), &namespace);
    let Some(found) = api.get_opt(&name).await.map_err(unavailable)? else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no DiscoveredDevice {name:?} in namespace {namespace:?}"),
        ));
    };
    if let Some(link) = found.status.as_ref().and_then(|s| s.adopted_as.as_ref()) {
        return Err(error(
            StatusCode::CONFLICT,
            format!("adopted already: it is DeviceLink {link:?}"),
        ));
    }
    let annotation = json!({"metadata": {"annotations": {ADOPT: "true"}}});
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&annotation))
        .await
        .map_err(unavailable)?;
    tracing::info!(found = %format!("{namespace}/{name}"), "adopted from the console");
    Ok(Json(json!({"ok": true, "found": summary(&patched)})).into_response())
}

fn unavailable(e: kube::Error) -> Response {
    tracing::warn!(error = %e, "cannot read or annotate discovered devices");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the API server did not answer as asked; try again",
    )
}

/// What the page shows of a find.
fn summary(found: &DiscoveredDevice) -> Value {
    let status = found.status.clone().unwrap_or_default();
    let adopted = status.conditions.iter().find(|c| c.type_ == "Adopted");
    json!({
        "namespace": found.namespace(),
        "name": found.name_any(),
        "discovery": found.spec.discovery,
        "node": found.spec.node,
        "protocol": found.spec.protocol,
        "address": found.spec.address,
        "unitId": found.spec.unit_id,
        "identity": status.identity,
        "template": status.template,
        "gone": status.gone,
        "lastSeen": status.last_seen.map(|t| t.0.to_string()),
        "adoptedAs": status.adopted_as,
        "asked": found.annotations().get(ADOPT).is_some_and(|v| v == "true"),
        "adoption": adopted.map(|c| json!({"status": c.status, "reason": c.reason, "message": c.message})),
    })
}
