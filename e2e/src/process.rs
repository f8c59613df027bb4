//! Child processes that end with the test.

use std::{net::TcpListener, path::Path, process::Stdio, time::Duration};

use tokio::process::{Child, ChildStdin, Command};

/// A child process killed when dropped.
pub struct Process {
    pub name: String,
    child: Child,
}

impl Process {
    /// Starts `command`; its output is appended to
    /// `<log dir>/<name>.log` (several scenarios start an operator).
    pub fn spawn(name: &str, command: Command) -> Process {
        Self::start(name, command, Stdio::null())
    }

    /// Starts `command` as `spawn` does, with a pipe to its stdin (for
    /// programs controlled by what they read).
    pub fn spawn_with_input(name: &str, command: Command) -> (Process, ChildStdin) {
        let mut process = Self::start(name, command, Stdio::piped());
        let stdin = process.child.stdin.take().expect("piped stdin");
        (process, stdin)
    }

    fn start(name: &str, mut command: Command, stdin: Stdio) -> Process {
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
            .stdin(stdin)
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

    /// SIGKILL, and waits for it to end.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM (what a pod gets when it is deleted) and waits up to
    /// `within` for it to end; whether it did.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(within, self.child.wait())
            .await
            .is_ok()
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

/// A console process against the test control plane, as the console's
/// ServiceAccount (so the chart's RBAC is what it has), serving on a free
/// loopback port.
pub struct Console {
    pub process: Process,
    pub port: u16,
}

impl Console {
    pub fn start(name: &str, args: &[&str]) -> Console {
        let kubeconfig = crate::kubeconfig_as("devicelink-console", name)
            .expect("a token for the console's ServiceAccount");
        let port = free_port();
        let mut command = Command::new(crate::bin("devicelink-console"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,devicelink_console=debug")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--client-id")
            .arg(name)
            // The tests' brokers, all on this host.
            .arg("--allowed-brokers")
            .arg("127.0.0.1,localhost")
            .args(args);
        Console {
            process: Process::spawn(name, command),
            port,
        }
    }

    pub async fn stop(self) {
        self.process.stop().await
    }
}

/// An operator process against the test control plane, with its metrics
/// and health endpoints on a free loopback port.
pub struct Operator {
    pub process: Process,
    pub metrics_port: u16,
}

impl Operator {
    /// Starts a replica; several may run, and leader election picks one.
    pub fn start(name: &str) -> Operator {
        Operator::start_with(name, &[])
    }

    /// Starts a replica with extra command-line arguments. It runs as the
    /// operator's ServiceAccount, so the deploy manifests' RBAC is what it has.
    pub fn start_with(name: &str, args: &[&str]) -> Operator {
        let kubeconfig = crate::kubeconfig_as("devicelink-operator", name)
            .expect("a token for the operator's ServiceAccount");
        Operator::start_with_kubeconfig(name, &kubeconfig, args)
    }

    /// Like [`Operator::start_with`], reaching the API server as
    /// `kubeconfig` says.
    pub fn start_with_kubeconfig(name: &str, kubeconfig: &Path, args: &[&str]) -> Operator {
        let metrics_port = free_port();
        let mut command = Command::new(crate::bin("devicelink-operator"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,devicelink_operator=debug")
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--identity")
            .arg(name)
            // Most tests run no adaptor process for the pods kwok reports
            // Ready; their deletions need not wait the full 30 s.
            .arg("--device-release-grace=3s")
            .args(args);
        Operator {
            process: Process::spawn(name, command),
            metrics_port,
        }
    }

    /// GET on the operator's HTTP port: (status code, body), or None if it
    /// does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path).await
    }

    /// The value of one sample in the operator's /metrics.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        metric_at(self.metrics_port, sample).await
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub async fn stop(self) {
        self.process.stop().await
    }

    /// SIGKILL: the replica dies without releasing anything.
    pub async fn kill(mut self) {
        self.process.kill().await;
    }
}

/// Starts one operator replica against the test control plane.
///
/// With `DEVICELINK_E2E_MQTT_SHARING=off` in the environment, its adaptors
/// run with shared MQTT connections off (`make test` runs the MQTT tests
/// both ways).
pub fn start_operator() -> Operator {
    if std::env::var("DEVICELINK_E2E_MQTT_SHARING").as_deref() == Ok("off") {
        return operator_sharing("operator", false, &[]);
    }
    Operator::start("operator")
}

/// Starts an operator (`name`, with `args` besides) whose adaptors share
/// MQTT connections or not, as `shared` says.
pub fn operator_sharing(name: &str, shared: bool, args: &[&str]) -> Operator {
    let settings = crate::log_dir().join(format!("{name}-adaptor-settings.yaml"));
    std::fs::write(
        &settings,
        format!(
            "defaults:\n  env: [{{name: DEVICELINK_SHARE_MQTT_CONNECTIONS, value: \"{shared}\"}}]\n"
        ),
    )
    .expect("write the adaptor settings");
    let mut all = vec!["--adaptor-settings-file", settings.to_str().unwrap()];
    all.extend(args);
    Operator::start_with(name, &all)
}

/// GET on a local HTTP port: (status code, body), or None if nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at((std::net::Ipv4Addr::LOCALHOST, port).into(), path).await
}

/// GET on a local HTTP port with a bearer token: (status code, body), or
/// None if nothing answers.
pub async fn http_get_as(port: u16, path: &str, token: &str) -> Option<(u16, String)> {
    let headers = format!("Authorization: Bearer {token}\r\n");
    http_request(
        (std::net::Ipv4Addr::LOCALHOST, port).into(),
        "GET",
        path,
        &headers,
        "",
    )
    .await
}

/// GET with a bearer token on an HTTP server anywhere (a pod, a Service):
/// (status code, body), or None if nothing answers.
pub async fn http_get_at_as(
    address: std::net::SocketAddr,
    path: &str,
    token: &str,
) -> Option<(u16, String)> {
    let headers = format!("Authorization: Bearer {token}\r\n");
    http_request(address, "GET", path, &headers, "").await
}

/// POST of a JSON body on a local HTTP port with a bearer token: (status
/// code, body), or None if nothing answers.
pub async fn http_post_as(port: u16, path: &str, token: &str, body: &str) -> Option<(u16, String)> {
    let headers = format!(
        "Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    http_request(
        (std::net::Ipv4Addr::LOCALHOST, port).into(),
        "POST",
        path,
        &headers,
        body,
    )
    .await
}

/// GET on an HTTP server anywhere (a pod, a Service): (status code, body),
/// or None if nothing answers.
pub async fn http_get_at(address: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    http_request(address, "GET", path, "", "").await
}

async fn http_request(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n{body}");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The value of one sample in the /metrics served on `port` (`name{labels}`
/// exactly as exposed, or a bare name), if present.
pub async fn metric_at(port: u16, sample: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics").await?;
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Prints a benchmark's table rows for the adaptor's footprint: the cores
/// it used over the run and its resident memory now and at its peak.
pub fn print_footprint(pid: u32, cores: f64) {
    println!("| adaptor CPU (cores) | {cores:.2} |");
    println!(
        "| adaptor RSS now / peak | {:.1} / {:.1} MiB |",
        rss_mib(pid),
        peak_rss_mib(pid)
    );
}

/// Peak resident memory of a process, in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmHWM:") / 1024.0
}

/// Current resident memory of a process, in MiB (VmRSS).
pub fn rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmRSS:") / 1024.0
}

fn proc_status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time a process has used so far (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) closed by ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; the first after ')' is field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // Linux reports in USER_HZ, 100 on every platform it runs on.
    (ticks(11) + ticks(12)) / 100.0
}
