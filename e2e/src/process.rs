//! Child processes that end with the test.

use std::{net::TcpListener, path::Path, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// A child process killed when dropped.
pub struct Process {
    pub name: String,
    child: Child,
}

impl Process {
    /// Starts `command`; its output is appended to
    /// `<target>/e2e-logs/<name>.log` (several scenarios start an operator).
    pub fn spawn(name: &str, mut command: Command) -> Process {
        use std::io::Write;
        let logs = crate::log_dir();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{name}.log")))
            .expect("open log file");
        let _ = writeln!(
            log,
            "==== {name} started by {:?}",
            std::thread::current().name()
        );
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process {
            name: name.to_string(),
            child,
        }
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it with SIGTERM, then SIGKILL if it lingers.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .unwrap()
        .port()
}

/// A real mosquitto broker on a free loopback port.
pub struct Mosquitto {
    pub port: u16,
    _process: Process,
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        let port = free_port();
        let dir = crate::log_dir();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed: run `make test`, which installs it");
        let mut command = Command::new(binary);
        command.arg("-c").arg(&conf);
        let process = Process::spawn(&format!("mosquitto-{port}"), command);
        crate::eventually("mosquitto to listen", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Mosquitto {
            port,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// Starts the operator against the test control plane.
pub fn start_operator() -> Process {
    let mut command = Command::new(crate::bin("devicelink-operator"));
    command.env("RUST_LOG", "info,devicelink_operator=debug");
    Process::spawn("operator", command)
}
