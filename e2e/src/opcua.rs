//! OPC-UA servers for the tests: asyncua (e2e/devices/opcua_server.py),
//! or node-opcua (e2e/devices/node-opcua/server.js, the second stack,
//! `DEVICELINK_E2E_OPCUA_SERVER=node-opcua`), with a line of JSON on its
//! stdin to look at or change a variable.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::{modbus::python, process::free_port};

/// How a server is set up.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Endpoints offered: None, or a policy and mode as asyncua names them
    /// (Basic256Sha256_Sign, Aes256Sha256RsaPss_SignAndEncrypt, ...).
    pub policies: Vec<&'static str>,
    /// Users allowed to sign in (none: anonymous).
    pub users: Vec<(&'static str, &'static str)>,
    /// A user certificate (PEM file) allowed to sign in.
    pub user_cert: Option<PathBuf>,
    /// Variables: `[{"name": .., "type": "Int32", "value": ..}]`.
    pub variables: Value,
    /// DEVICES,ITEMS,MILLIS for the benchmark's changing variables.
    pub bench: Option<(usize, usize, u64)>,
    /// The server's certificate and key (PEM files); by default the server
    /// makes a self-signed one.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// The loopback address it listens on (default 127.0.0.1).
    pub host: Option<&'static str>,
    /// Its application URI (default [`APP_URI`]).
    pub app_uri: Option<String>,
    /// Its product URI (default one naming its stack).
    pub product_uri: Option<String>,
    /// A local discovery server (asyncua) rather than a server of variables.
    pub discovery_server: bool,
    /// The discovery URL of a local discovery server to register with.
    pub register_to: Option<String>,
    /// The stack, whatever `DEVICELINK_E2E_OPCUA_SERVER` says.
    pub implementation: Option<Implementation>,
}

/// Which stack serves the tests' OPC-UA devices: asyncua (Python) unless
/// `DEVICELINK_E2E_OPCUA_SERVER=node-opcua` (JavaScript), with which `make
/// test` runs the OPC-UA tests a second time (docs/interop.md). Both
/// servers take the same command line and control lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    Asyncua,
    NodeOpcua,
}

impl Implementation {
    pub fn chosen() -> Implementation {
        match std::env::var("DEVICELINK_E2E_OPCUA_SERVER").as_deref() {
            Err(_) | Ok("asyncua") => Implementation::Asyncua,
            Ok("node-opcua") => Implementation::NodeOpcua,
            Ok(other) => panic!("DEVICELINK_E2E_OPCUA_SERVER={other}: asyncua or node-opcua"),
        }
    }

    /// The command that starts this stack's server, before its arguments.
    fn command(self) -> Command {
        let devices = crate::devices_dir();
        match self {
            Implementation::Asyncua => {
                let mut command = Command::new(python());
                command.arg(devices.join("opcua_server.py"));
                command
            }
            Implementation::NodeOpcua => {
                let modules = crate::cache_dir().join("node-opcua/node_modules");
                assert!(
                    modules.join("node-opcua").exists(),
                    "{} is missing: run `make test` (e2e/prereqs.sh installs node-opcua there)",
                    modules.display()
                );
                let mut command = Command::new("node");
                command
                    .env("NODE_PATH", modules)
                    .arg(devices.join("node-opcua/server.js"));
                command
            }
        }
    }
}

/// The test server's application URI (both stacks).
pub const APP_URI: &str = "urn:devicelink:test:opcua-server";

/// A running OPC-UA server; stopped when dropped.
pub struct OpcuaServer {
    pub port: u16,
    options: ServerOptions,
    /// The server's certificate and key (kept across restarts).
    pub cert: PathBuf,
    key: PathBuf,
    child: Option<(Child, ChildStdin, Lines<BufReader<ChildStdout>>)>,
}

impl OpcuaServer {
    pub async fn start(options: ServerOptions) -> OpcuaServer {
        let port = free_port();
        let dir = crate::log_dir();
        let mut server = OpcuaServer {
            port,
            options,
            cert: dir.join(format!("opcua-{port}.cert.pem")),
            key: dir.join(format!("opcua-{port}.key.pem")),
            child: None,
        };
        let _ = std::fs::remove_file(&server.cert);
        let _ = std::fs::remove_file(&server.key);
        if let Some((cert, key)) = &server.options.certificate {
            std::fs::copy(cert, &server.cert).unwrap();
            std::fs::copy(key, &server.key).unwrap();
        }
        server.restart().await;
        server
    }

    /// The endpoint URL for a spec.
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://{}:{}/devicelink/", self.host(), self.port)
    }

    fn host(&self) -> &'static str {
        self.options.host.unwrap_or("127.0.0.1")
    }

    /// The server's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("the server wrote its certificate")
    }

    /// Starts the server (again) with its initial variables and the same
    /// certificate. Its port may be held a moment by another socket (the
    /// host's outgoing connections take ports from the same range): the
    /// server is started again then, a few times.
    pub async fn restart(&mut self) {
        for _ in 0..10 {
            match self.launch().await {
                Ok(()) => return,
                Err(log) if log.contains("address already in use") => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break,
            }
        }
        panic!(
            "the OPC-UA server did not start; see opcua-{}.log",
            self.port
        );
    }

    /// One attempt to start the server: the tail of its log if it fails.
    async fn launch(&mut self) -> Result<(), String> {
        self.stop().await;
        let dir = crate::log_dir();
        let variables = dir.join(format!("opcua-{}.json", self.port));
        let listed = match &self.options.variables {
            serde_json::Value::Null => json!([]),
            given => given.clone(),
        };
        std::fs::write(&variables, listed.to_string()).unwrap();
        let policies = if self.options.policies.is_empty() {
            "None".to_string()
        } else {
            self.options.policies.join(",")
        };
        let implementation = self
            .options
            .implementation
            .unwrap_or_else(Implementation::chosen);
        let mut command = implementation.command();
        if let Some(host) = self.options.host {
            command.arg("--host").arg(host);
        }
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--policies")
            .arg(policies)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .arg("--variables")
            .arg(&variables);
        if !self.options.users.is_empty() {
            let users: Vec<String> = self
                .options
                .users
                .iter()
                .map(|(u, p)| format!("{u}:{p}"))
                .collect();
            command.arg("--users").arg(users.join(","));
        }
        if let Some(cert) = &self.options.user_cert {
            command.arg("--user-cert").arg(cert);
        }
        for (flag, value) in [
            ("--app-uri", &self.options.app_uri),
            ("--product-uri", &self.options.product_uri),
            ("--register-to", &self.options.register_to),
        ] {
            if let Some(value) = value {
                command.arg(flag).arg(value);
            }
        }
        if self.options.discovery_server {
            command.arg("--role").arg("discovery");
        }
        if let Some((d, i, ms)) = self.options.bench {
            command.arg("--bench").arg(format!("{d},{i},{ms}"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("opcua-{}.log", self.port)))
            .unwrap();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the OPC-UA server");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the OPC-UA server to start within 60 s")
            .unwrap();
        if ready.as_deref() != Some("ready") {
            let _ = child.kill().await;
            let log = std::fs::read_to_string(dir.join(format!("opcua-{}.log", self.port)))
                .unwrap_or_default();
            let tail = log.len().saturating_sub(2000);
            return Err(log[log.floor_char_boundary(tail)..].to_string());
        }
        self.child = Some((child, stdin, lines));
        Ok(())
    }

    /// Kills the server, as a power cut would.
    pub async fn stop(&mut self) {
        if let Some((mut child, _, _)) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn ask(&mut self, command: Value) -> Value {
        let (_, stdin, lines) = self.child.as_mut().expect("the server runs");
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server answers");
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert!(answer.get("error").is_none(), "{command}: {answer}");
        answer
    }

    /// The value of a variable as the server holds it (ByteString in hex,
    /// DateTime in ISO 8601).
    pub async fn get(&mut self, name: &str) -> Value {
        self.ask(json!({"get": name})).await["value"].clone()
    }

    /// Sets a variable, keeping its type.
    pub async fn set(&mut self, name: &str, value: Value) {
        self.ask(json!({"set": name, "value": value})).await;
    }
}

/// Waits until the server holds `expected` in `name`.
pub async fn wait_value(server: &mut OpcuaServer, name: &str, expected: Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = server.get(name).await;
        if v == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} on the server is {v}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A free port (for a server that is not there).
pub fn unused_endpoint() -> String {
    format!("opc.tcp://127.0.0.1:{}/", free_port())
}
