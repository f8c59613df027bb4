//! A real browser for the console page: Debian's chromium, headless, driven
//! over the DevTools protocol (JSON messages on a WebSocket), so a test
//! types, clicks and reads the page as a person would.

use std::time::Duration;

use async_tungstenite::{WebSocketStream, tokio::ConnectStream, tungstenite::Message};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::process::{Process, free_port};

pub struct Browser {
    process: Process,
    page: WebSocketStream<ConnectStream>,
    next_id: u64,
}

/// The chromium program, from Debian (e2e/prereqs.sh installs it).
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: run e2e/prereqs.sh (make test does)")
}

/// GET on the DevTools HTTP endpoint (HTTP/1.1 only; it keeps the
/// connection open, and makes its WebSocket addresses from the Host
/// header): the body, read to its Content-Length.
async fn devtools_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                return None;
            }
            response.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&response);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Some(body.to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

impl Browser {
    /// A headless chromium with a fresh profile and one blank page.
    pub async fn start(name: &str) -> Browser {
        let port = free_port();
        let profile = crate::log_dir().join(format!("{name}-profile"));
        let _ = std::fs::remove_dir_all(&profile);
        let mut command = Command::new(chromium());
        command.args([
            "--headless=new",
            // Root in a container: chromium's own sandbox needs user namespaces.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            &format!("--remote-debugging-port={port}"),
            &format!("--user-data-dir={}", profile.display()),
            "about:blank",
        ]);
        let process = Process::spawn(name, command);
        let address = crate::eventually(
            "chromium's DevTools endpoint",
            Duration::from_secs(60),
            || async {
                let body = devtools_get(port, "/json/list").await?;
                let targets: Value = serde_json::from_str(&body).ok()?;
                targets.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                    .as_str()
                    .map(str::to_string)
            },
        )
        .await;
        let (page, _) = async_tungstenite::tokio::connect_async(address)
            .await
            .expect("connect to the page");
        Browser {
            process,
            page,
            next_id: 0,
        }
    }

    /// One DevTools command and its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params}).to_string();
        self.page
            .send(Message::Text(command.into()))
            .await
            .expect("send to the browser");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.page.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} in 30 s"))
                .expect("the browser is alive")
                .expect("a frame from the browser");
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            // Events (no id) and answers to earlier commands are skipped.
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Runs JavaScript in the page; the value it gives (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` every 200 ms until it gives something other
    /// than null or false, and returns that; panics with `what` after a
    /// minute. (A wait bound, not a performance assertion.)
    pub async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.eval(expression).await;
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after 60s waiting for {what} in the page; last: {value}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) {
        self.process.stop().await
    }
}
