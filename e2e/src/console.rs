//! Driving the console from tests and benchmarks: its ServiceAccount and
//! rights as the chart renders them, users with tokens, and its stream.

use std::time::Duration;

use async_tungstenite::{
    WebSocketStream,
    tokio::client_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The console's ServiceAccount and rights, as the chart renders them
/// (deploy/manifests/console/console.yaml), for as long as the guard lives: the
/// chart installed by the Helm test owns the same objects.
pub fn install_rbac() -> ConsoleRbac {
    for document in rbac_documents() {
        let out = crate::kubectl::kubectl(&["apply", "-f", "-"], Some(&document));
        assert!(out.success, "apply the console's RBAC: {}", out.text);
    }
    ConsoleRbac
}

fn rbac_documents() -> Vec<String> {
    let path = crate::repo_root().join("deploy/manifests/console/console.yaml");
    crate::yaml_documents(&path)
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("ServiceAccount" | "ClusterRole" | "ClusterRoleBinding")
            )
        })
        .map(|d| serde_json::to_string(&d).unwrap())
        .collect()
}

/// Removes the console's RBAC when dropped.
pub struct ConsoleRbac;

impl Drop for ConsoleRbac {
    fn drop(&mut self) {
        for document in rbac_documents() {
            let _ = crate::kubectl::kubectl(
                &["delete", "--ignore-not-found", "-f", "-"],
                Some(&document),
            );
        }
    }
}

/// A ServiceAccount of `namespace` and a token for it, allowed `verbs` on
/// DeviceLinks there.
pub fn user(namespace: &str, name: &str, verbs: &[&str]) -> String {
    user_allowed(namespace, name, &[("devicelinks", verbs)])
}

/// A ServiceAccount of `namespace` and a token for it, allowed, for each
/// `(resource, verbs)`, those verbs on that resource of edge.cattle.io
/// there.
pub fn user_allowed(namespace: &str, name: &str, rights: &[(&str, &[&str])]) -> String {
    let rules: Vec<serde_json::Value> = rights
        .iter()
        .filter(|(_, verbs)| !verbs.is_empty())
        .map(|(resource, verbs)| {
            json!({"apiGroups": ["edge.cattle.io"], "resources": [resource], "verbs": verbs})
        })
        .collect();
    let granted = !rules.is_empty();
    let mut objects = vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace}})];
    if granted {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules}),
        );
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}),
        );
    }
    for object in objects {
        let out = crate::kubectl::kubectl(&["apply", "-f", "-"], Some(&object.to_string()));
        assert!(out.success, "{}", out.text);
    }
    token_of(namespace, name, Some(AUDIENCE))
}

/// The audience the console takes tokens for (its default).
pub const AUDIENCE: &str = "devicelink-console";

/// A token of the ServiceAccount `name` of `namespace`, minted for
/// `audience` (None: the API server's own).
pub fn token_of(namespace: &str, name: &str, audience: Option<&str>) -> String {
    let mut args = vec!["create", "token", name, "-n", namespace];
    if let Some(audience) = audience {
        args.extend(["--audience", audience]);
    }
    let token = crate::kubectl::kubectl(&args, None);
    assert!(token.success, "{}", token.text);
    token.text.trim().to_string()
}

pub type Socket = WebSocketStream<async_tungstenite::tokio::TokioAdapter<tokio::net::TcpStream>>;

/// Opens the stream with `query` as the holder of `token`; Err with the
/// HTTP status when the console refuses.
pub async fn open_stream(port: u16, query: &str, token: &str) -> Result<Socket, u16> {
    open_stream_with(port, query, token, None).await
}

/// Like [`open_stream`], with the client's TCP receive buffer set (a small
/// one makes a client that does not read fall behind at once).
pub async fn open_stream_with(
    port: u16,
    query: &str,
    token: &str,
    receive_buffer: Option<u32>,
) -> Result<Socket, u16> {
    open_stream_from(port, query, token, receive_buffer, None).await
}

/// Like [`open_stream_with`], as a browser showing a page of `origin` would.
pub async fn open_stream_from(
    port: u16,
    query: &str,
    token: &str,
    receive_buffer: Option<u32>,
    origin: Option<&str>,
) -> Result<Socket, u16> {
    let mut request = format!("ws://127.0.0.1:{port}/api/stream?{query}")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("devicelink.console.v1"),
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("the console listens");
    match client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(async_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("stream handshake: {e}"),
    }
}

/// The next frame of the stream, parsed; None when the stream ended.
pub async fn next_frame(socket: &mut Socket) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame within the wait")?;
        match frame {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// GET `path` on the console as the holder of `token`: the status code and
/// the body parsed (null if it is not JSON).
pub async fn get_json(port: u16, path: &str, token: &str) -> (u16, Value) {
    let (code, body) = crate::process::http_get_as(port, path, token)
        .await
        .expect("the console answers");
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Opens the console's page in `browser` as a person does: the page, then
/// the namespace and token typed in and Show pressed.
pub async fn open_page(
    browser: &mut crate::browser::Browser,
    port: u16,
    namespace: &str,
    token: &str,
) {
    browser.open(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_for("the page to load", "document.readyState === 'complete'")
        .await;
    browser
        .eval(&format!(
            "document.getElementById('namespace').value = {namespace:?};
             document.getElementById('token').value = {token:?};
             document.getElementById('apply').click(); true"
        ))
        .await;
}
