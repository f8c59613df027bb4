//! The HTTP API and the WebSocket stream. Every request under /api is
//! authorized by the API server before anything is read (see auth.rs).

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{
        ConnectInfo, Path, Query, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use tracing::debug;

use crate::{
    auth::{Access, Gate, Refusal},
    catalog::{Catalog, Stream},
    config::Config,
    feed::{Routes, WriteError},
    hub::{Hub, Interest},
    names::{name_problem, namespace_problem},
};

/// What the handlers share.
pub struct App {
    pub config: Config,
    pub gate: Gate,
    pub catalog: Arc<Catalog>,
    pub hub: Arc<Hub>,
    /// Where writes to each followed DeviceLink go.
    pub routes: Routes,
    /// The caches have been filled once.
    pub ready: AtomicBool,
    /// Why the console stopped following DeviceLinks or devices, if it did:
    /// then it is not alive (its liveness probe restarts it).
    pub stopped: std::sync::Mutex<Option<String>>,
}

/// The subprotocol the stream speaks (JSON text frames).
pub const STREAM_PROTOCOL: &str = "devicelink.console.v1";
/// Browsers cannot set headers on a WebSocket: as with the Kubernetes API
/// server, the token may come as a subprotocol
/// `base64url.bearer.authorization.k8s.io.<token, base64url>`.
const TOKEN_PROTOCOL: &str = "base64url.bearer.authorization.k8s.io.";

/// The OpenAPI description of this API.
const OPENAPI: &str = include_str!("openapi.json");
/// The page: one file, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page/index.html");

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/api/devicelinks", get(list))
        .route("/api/devicelinks/{namespace}/{name}", get(one))
        .route("/api/devicelinks/{namespace}/{name}/write", post(write))
        .route("/api/devicelinks/{namespace}/{name}/events", get(events))
        .route("/api/stream", get(stream))
        .route("/api/discovereddevices", get(crate::discovered::list))
        .route(
            "/api/discovereddevices/{namespace}/{name}/adopt",
            post(crate::discovered::adopt),
        )
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.stopped.lock().unwrap().clone() {
        None => "ok".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches are filling").into_response()
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page loads nothing from elsewhere, and nothing may frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The bearer token of a request: the Authorization header, or on a
/// WebSocket the token subprotocol.
fn bearer(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(token.trim().to_string());
    }
    use base64::Engine;
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL))
        .and_then(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.trim_end_matches('='))
                .ok()
        })
        .and_then(|t| String::from_utf8(t).ok())
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn no_such_link(namespace: &str, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no DeviceLink {name:?} in namespace {namespace:?}"),
    )
}

/// Ok if the API server says the request's user may do `access`; the
/// answer to send otherwise. `from` is the client's address.
pub(crate) async fn allow(
    app: &App,
    headers: &HeaderMap,
    from: IpAddr,
    access: &Access,
) -> Result<(), Response> {
    app.gate
        .check(bearer(headers).as_deref(), access, from)
        .await
        .map(|_| ())
        .map_err(refused)
}

/// Names from a URL are Kubernetes names, or the request goes no further.
// The error is the response the handler answers with, as it is.
#[allow(clippy::result_large_err)]
pub(crate) fn checked_names(namespace: Option<&str>, names: &[&str]) -> Result<(), Response> {
    namespace
        .and_then(namespace_problem)
        .or_else(|| names.iter().find_map(|n| name_problem(n)))
        .map_or(Ok(()), |why| Err(error(StatusCode::BAD_REQUEST, why)))
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthenticated(why) => {
            let mut response = error(StatusCode::UNAUTHORIZED, why);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Refusal::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
        refusal @ Refusal::Unavailable => {
            error(StatusCode::SERVICE_UNAVAILABLE, refusal.to_string())
        }
        Refusal::TooMany(seconds) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                Refusal::TooMany(seconds).to_string(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub namespace: Option<String>,
}

/// The namespace a list asks for (None: every one), once the request's
/// user may `list` `resource` there.
pub(crate) async fn listed_namespace<'q>(
    app: &App,
    headers: &HeaderMap,
    from: IpAddr,
    query: &'q ListQuery,
    resource: &'static str,
) -> Result<Option<&'q str>, Response> {
    let namespace = query.namespace.as_deref().filter(|n| !n.is_empty());
    checked_names(namespace, &[])?;
    allow(
        app,
        headers,
        from,
        &Access::to(resource, "list", namespace, None),
    )
    .await?;
    Ok(namespace)
}

async fn list(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Response> {
    let namespace = listed_namespace(&app, &headers, peer.ip(), &query, "devicelinks").await?;
    Ok(Json(json!({"items": app.catalog.list(namespace)})).into_response())
}

async fn one(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Response> {
    checked_names(Some(&namespace), &[&name])?;
    let access = Access::new("get", Some(&namespace), Some(&name));
    allow(&app, &headers, peer.ip(), &access).await?;
    match app.catalog.get(&namespace, &name) {
        Some(link) => Ok(Json(link).into_response()),
        None => Err(no_such_link(&namespace, &name)),
    }
}

/// The newest Events about a DeviceLink (needs get on it).
async fn events(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, Response> {
    checked_names(Some(&namespace), &[&name])?;
    let access = Access::new("get", Some(&namespace), Some(&name));
    allow(&app, &headers, peer.ip(), &access).await?;
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(app.gate.client(), &namespace);
    let selector = format!("involvedObject.kind=DeviceLink,involvedObject.name={name}");
    let list = match api
        .list(&kube::api::ListParams::default().fields(&selector))
        .await
    {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list events");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot list events now: the API server did not answer; try again",
            ));
        }
    };
    let mut items: Vec<serde_json::Value> = list
        .items
        .into_iter()
        .map(|e| {
            let time = e
                .series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| e.last_timestamp.as_ref().map(|t| t.0.to_string()))
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()));
            json!({
                "type": e.type_,
                "reason": e.reason,
                "action": e.action,
                "note": e.message,
                "time": time,
                "count": e.series.as_ref().and_then(|s| s.count).or(e.count),
            })
        })
        .collect();
    items.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    items.truncate(MAX_EVENTS);
    Ok(Json(json!({"items": items})).into_response())
}

/// Events shown per DeviceLink, newest first.
const MAX_EVENTS: usize = 20;

/// The largest write body taken; the adaptor takes at most 64 KiB.
const MAX_WRITE_BODY: usize = devicelink_mqtt::write::MAX_WRITE_BYTES;

/// Writes property values to a DeviceLink's device through its adaptor,
/// as an MQTT client would, and answers with what the adaptor said. Needs
/// update on the DeviceLink: the right that lets one change a spec value.
async fn write(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    checked_names(Some(&namespace), &[&name])?;
    let access = Access::new("update", Some(&namespace), Some(&name));
    allow(&app, &headers, peer.ip(), &access).await?;
    if body.len() > MAX_WRITE_BODY {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a write is at most {MAX_WRITE_BODY} bytes; this one has {}",
                body.len()
            ),
        ));
    }
    if !matches!(serde_json::from_slice(&body), Ok(serde_json::Value::Object(ref o)) if !o.is_empty())
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object of property values, such as {\"on\": true}",
        ));
    }
    let key = (namespace.clone(), name.clone());
    let route = app.routes.lock().unwrap().get(&key).cloned();
    let Some(route) = route else {
        return Err(match app.catalog.stream(&key) {
            _ if app.catalog.get(&namespace, &name).is_none() => no_such_link(&namespace, &name),
            Some(Stream::Unavailable(why)) => error(StatusCode::CONFLICT, why),
            _ => error(
                StatusCode::CONFLICT,
                "the DeviceLink has no MQTT extension (spec.template.spec.extension.mqtt), so its device takes no writes from MQTT",
            ),
        });
    };
    Ok(
        match route.write(body.to_vec(), app.config.write_timeout()).await {
            Ok(answer) => {
                let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_else(
                    |_| json!({"ok": false, "error": String::from_utf8_lossy(&answer)}),
                );
                // Applied: 200; refused by the adaptor: 422 with its reasons.
                let status = if answer["ok"] == true {
                    StatusCode::OK
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                (status, Json(answer)).into_response()
            }
            Err(e @ WriteError::NotConnected(_)) => {
                error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Err(e @ WriteError::NoAnswer(_)) => error(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    namespace: Option<String>,
    /// DeviceLink names, comma separated.
    names: Option<String>,
    /// An MQTT topic filter.
    topic: Option<String>,
}

impl StreamQuery {
    /// What the client asks for, and the rights that takes.
    fn interest(&self) -> Result<(Interest, Vec<Access>), String> {
        let namespace = self.namespace.clone().filter(|n| !n.is_empty());
        let names: Vec<String> = self
            .names
            .iter()
            .flat_map(|n| n.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if !names.is_empty() && namespace.is_none() {
            return Err("names needs namespace: DeviceLinks are named within one".into());
        }
        if let Some(why) = namespace
            .as_deref()
            .and_then(namespace_problem)
            .or_else(|| names.iter().find_map(|n| name_problem(n)))
        {
            return Err(why);
        }
        if let Some(filter) = &self.topic
            && !valid_filter(filter)
        {
            return Err(format!(
                "topic {filter:?} is not an MQTT topic filter (+ stands for a whole level, # for the rest and comes last)"
            ));
        }
        let access = if names.is_empty() {
            vec![Access::new("watch", namespace.as_deref(), None)]
        } else {
            names
                .iter()
                .map(|n| Access::new("watch", namespace.as_deref(), Some(n)))
                .collect()
        };
        Ok((
            Interest {
                namespace,
                names,
                topic: self.topic.clone(),
            },
            access,
        ))
    }
}

fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    !filter.is_empty()
        && levels.iter().enumerate().all(|(i, level)| match *level {
            "#" => i == levels.len() - 1,
            "+" => true,
            other => !other.contains(['+', '#']),
        })
}

async fn stream(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(why) = origin_allowed(&headers, &app.config.allowed_origins) {
        return error(StatusCode::FORBIDDEN, why);
    }
    let (interest, rights) = match query.interest() {
        Ok(asked) => asked,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let token = bearer(&headers);
    for access in &rights {
        if let Err(refusal) = app.gate.check(token.as_deref(), access, peer.ip()).await {
            return refused(refusal);
        }
    }
    let viewer = Viewer {
        token,
        rights,
        from: peer.ip(),
    };
    upgrade
        .protocols([STREAM_PROTOCOL])
        .on_upgrade(move |socket| send_stream(socket, app, interest, viewer))
}

/// A browser says which page opens a WebSocket (Origin); a page of another
/// site must not open one with a token it got hold of. The console's own
/// page (same host) and the configured origins may; clients that are not
/// browsers send no Origin.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o == host);
    if same || allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(format!(
            "a page from {origin:?} may not open a stream: only the console's own page and the origins of --allowed-origins may"
        ))
    }
}

/// Who watches a stream, and the rights checked again while it is open.
struct Viewer {
    token: Option<String>,
    rights: Vec<Access>,
    from: IpAddr,
}

/// An open stream whose access cannot be checked for this long is closed.
const UNCHECKED_FOR_AT_MOST: Duration = Duration::from_secs(30);

/// Sends the client the last message of each device it asked for, then
/// every new one, until it goes, falls too far behind, or loses its right.
async fn send_stream(mut socket: WebSocket, app: Arc<App>, interest: Interest, viewer: Viewer) {
    let subscription = app
        .hub
        .subscribe(interest, app.config.client_queue as usize);
    for message in app.catalog.latest_messages() {
        subscription.offer(message);
    }
    let mut recheck = tokio::time::interval(
        app.config
            .review_for()
            .max(std::time::Duration::from_secs(1)),
    );
    recheck.tick().await;
    let mut checked = Instant::now();
    let close = |why: String| {
        Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1008,
            reason: why.chars().take(120).collect::<String>().into(),
        }))
    };
    loop {
        tokio::select! {
            (message, dropped) = subscription.next() => {
                let mut frame = serde_json::to_value(message.as_ref()).unwrap_or_default();
                if dropped > 0 {
                    frame["dropped"] = json!(dropped);
                }
                let send = socket.send(Message::Text(frame.to_string().into()));
                match tokio::time::timeout(app.config.send_timeout(), send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        debug!("stream client took nothing for too long; cut off");
                        break;
                    }
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                if let Err(why) = still_allowed(&app, &viewer, &mut checked).await {
                    let _ = socket.send(close(why)).await;
                    return;
                }
            }
        }
    }
}

/// Ok while the viewer may still watch what it asked for; why not
/// otherwise, also when its access could not be checked for
/// [`UNCHECKED_FOR_AT_MOST`] (a right withdrawn meanwhile must not go on).
async fn still_allowed(app: &App, viewer: &Viewer, checked: &mut Instant) -> Result<(), String> {
    for access in &viewer.rights {
        match app
            .gate
            .check(viewer.token.as_deref(), access, viewer.from)
            .await
        {
            Ok(_) => {}
            Err(Refusal::Unavailable | Refusal::TooMany(_)) => {
                if checked.elapsed() >= UNCHECKED_FOR_AT_MOST {
                    return Err(format!(
                        "access could not be checked for {} s",
                        UNCHECKED_FOR_AT_MOST.as_secs()
                    ));
                }
                return Ok(());
            }
            Err(refusal) => return Err(refusal.to_string()),
        }
    }
    *checked = Instant::now();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_from_the_header_or_the_websocket_subprotocol() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc.def"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            // "abc.def" in base64url.
            HeaderValue::from_static(
                "devicelink.console.v1, base64url.bearer.authorization.k8s.io.YWJjLmRlZg",
            ),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc.def"));
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_stream_asks_for_watch_on_what_it_names() {
        let query = StreamQuery {
            namespace: Some("plant".into()),
            names: Some("fan, pump".into()),
            topic: None,
        };
        let (interest, rights) = query.interest().unwrap();
        assert_eq!(interest.names, ["fan", "pump"]);
        assert_eq!(
            rights,
            [
                Access::new("watch", Some("plant"), Some("fan")),
                Access::new("watch", Some("plant"), Some("pump"))
            ]
        );
        let everything = StreamQuery::default().interest().unwrap().1;
        assert_eq!(everything, [Access::new("watch", None, None)]);
        let unnamespaced = StreamQuery {
            names: Some("fan".into()),
            ..Default::default()
        };
        assert!(unnamespaced.interest().is_err());
        for (filter, ok) in [
            ("plant/#", true),
            ("plant/+/status", true),
            ("#", true),
            ("plant/#/x", false),
            ("plant/fan+", false),
            ("", false),
        ] {
            assert_eq!(valid_filter(filter), ok, "{filter}");
        }
    }

    #[test]
    fn a_stream_of_names_that_are_not_kubernetes_names_is_refused() {
        let query = StreamQuery {
            namespace: Some("kube-system/events#".into()),
            ..Default::default()
        };
        let why = query.interest().unwrap_err();
        assert!(why.contains("is not a Kubernetes namespace name"), "{why}");
        let query = StreamQuery {
            namespace: Some("plant".into()),
            names: Some("fan,../secrets".into()),
            ..Default::default()
        };
        let why = query.interest().unwrap_err();
        assert!(
            why.contains("\"../secrets\" is not a Kubernetes object name"),
            "{why}"
        );
    }

    #[test]
    fn only_the_consoles_own_page_and_configured_origins_open_a_stream() {
        let headers = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("console.plant:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        let allowed = vec!["https://ops.example.com".to_string()];
        assert!(
            origin_allowed(&headers(None), &allowed).is_ok(),
            "not a browser"
        );
        assert!(origin_allowed(&headers(Some("http://console.plant:8080")), &allowed).is_ok());
        assert!(origin_allowed(&headers(Some("https://ops.example.com")), &allowed).is_ok());
        for other in ["https://evil.example", "http://console.plant:8081", "null"] {
            assert!(
                origin_allowed(&headers(Some(other)), &allowed).is_err(),
                "{other}"
            );
        }
    }

    /// An App whose API server never answers (nothing listens on port 9).
    fn app_without_api_server() -> Arc<App> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Arc::new(App {
            config: <Config as clap::Parser>::parse_from(["devicelink-console"]),
            gate: Gate::new(
                client.clone(),
                Duration::from_secs(1),
                "devicelink-console".into(),
                60,
            ),
            catalog: Catalog::watch(&client).0,
            hub: Arc::default(),
            routes: Routes::default(),
            ready: AtomicBool::new(false),
            stopped: Default::default(),
        })
    }

    #[tokio::test]
    async fn a_stream_whose_access_cannot_be_checked_for_30_s_is_closed() {
        let app = app_without_api_server();
        let viewer = Viewer {
            token: Some("a.token".into()),
            rights: vec![Access::new("watch", Some("plant"), None)],
            from: IpAddr::from([127, 0, 0, 1]),
        };
        let mut checked = Instant::now();
        assert_eq!(still_allowed(&app, &viewer, &mut checked).await, Ok(()));
        let mut long_ago = Instant::now() - UNCHECKED_FOR_AT_MOST;
        let why = still_allowed(&app, &viewer, &mut long_ago)
            .await
            .unwrap_err();
        assert_eq!(why, "access could not be checked for 30 s");
    }

    #[tokio::test]
    async fn health_says_when_the_console_stopped_following() {
        use tower::ServiceExt;
        // These endpoints ask nobody.
        let app = app_without_api_server();
        let get = |path: &'static str| {
            let app = app.clone();
            async move {
                let response = router(app)
                    .oneshot(
                        axum::http::Request::get(path)
                            .body(axum::body::Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                response.status().as_u16()
            }
        };
        assert_eq!((get("/healthz").await, get("/readyz").await), (200, 503));
        app.ready.store(true, Ordering::Release);
        assert_eq!(get("/readyz").await, 200);
        *app.stopped.lock().unwrap() = Some("the DeviceLink watch ended".into());
        assert_eq!(get("/healthz").await, 503);
    }

    #[test]
    fn the_openapi_description_covers_every_route() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for route in [
            "/",
            "/api/devicelinks/{namespace}/{name}/events",
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/api/devicelinks",
            "/api/devicelinks/{namespace}/{name}",
            "/api/devicelinks/{namespace}/{name}/write",
            "/api/stream",
            "/api/discovereddevices",
            "/api/discovereddevices/{namespace}/{name}/adopt",
        ] {
            assert!(paths.contains(&route), "{route} is described");
        }
    }
}
