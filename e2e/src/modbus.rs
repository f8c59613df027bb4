//! Modbus devices for the tests: pymodbus servers (TCP, or RTU on one end
//! of a socat pty pair), or over TCP libmodbus ones (the second
//! implementation, `DEVICELINK_E2E_MODBUS_SERVER=libmodbus`), and a plain
//! client to look at what they hold.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use tokio::process::Command;
use tokio_modbus::{
    Slave,
    client::{Context, Reader},
};

use crate::{Process, process::free_port};

/// The Python that has pymodbus (installed by `e2e/prereqs.sh`).
pub(crate) fn python() -> PathBuf {
    let python = crate::cache_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (e2e/prereqs.sh installs pymodbus and asyncua there)",
        python.display()
    );
    python
}

fn server_script() -> PathBuf {
    crate::devices_dir().join("modbus_server.py")
}

/// Which implementation serves the tests' Modbus TCP devices: pymodbus
/// (Python) unless `DEVICELINK_E2E_MODBUS_SERVER=libmodbus` (C), with which
/// `make test` runs the Modbus tests a second time (docs/interop.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    Pymodbus,
    Libmodbus,
}

impl Implementation {
    pub fn chosen() -> Implementation {
        match std::env::var("DEVICELINK_E2E_MODBUS_SERVER").as_deref() {
            Err(_) | Ok("pymodbus") => Implementation::Pymodbus,
            Ok("libmodbus") => Implementation::Libmodbus,
            Ok(other) => panic!("DEVICELINK_E2E_MODBUS_SERVER={other}: pymodbus or libmodbus"),
        }
    }
}

/// e2e/devices/libmodbus_server.c, compiled once against Debian's
/// libmodbus (installed by `e2e/prereqs.sh`) into the cache.
fn libmodbus_server() -> &'static PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        let source = crate::devices_dir().join("libmodbus_server.c");
        // Named for its source, so a changed source is compiled again.
        let text = std::fs::read(&source).expect("the libmodbus server's source");
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut hasher);
            hasher.finish()
        };
        let binary = python()
            .parent()
            .unwrap()
            .join(format!("libmodbus_server-{digest:016x}"));
        if binary.exists() {
            return binary;
        }
        // Compiled aside and renamed: test processes may race here.
        let partial = binary.with_extension(std::process::id().to_string());
        let flags = std::process::Command::new("pkg-config")
            .args(["--cflags", "--libs", "libmodbus"])
            .output()
            .expect("pkg-config (installed by make test)");
        assert!(
            flags.status.success(),
            "libmodbus is missing: run `make test` (e2e/prereqs.sh installs libmodbus-dev)"
        );
        let flags = String::from_utf8(flags.stdout).unwrap();
        let built = std::process::Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&partial)
            .arg(&source)
            .args(flags.split_whitespace())
            .output()
            .expect("cc");
        assert!(
            built.status.success(),
            "compiling {}: {}",
            source.display(),
            String::from_utf8_lossy(&built.stderr)
        );
        std::fs::rename(&partial, &binary).unwrap();
        binary
    })
}

/// The contents JSON as libmodbus_server.c reads them: a line per unit,
/// value and hole.
fn libmodbus_contents(units: &str, contents: &serde_json::Value) -> String {
    let mut lines = String::new();
    for unit in units.split(',') {
        lines += &format!("unit {unit}\n");
        let Some(tables) = contents.get(unit).and_then(|u| u.as_object()) else {
            continue;
        };
        for (table, values) in tables.iter().filter(|(t, _)| *t != "holes") {
            for (address, value) in values.as_object().into_iter().flatten() {
                let value = value
                    .as_i64()
                    .unwrap_or(value.as_bool().map_or(0, i64::from));
                lines += &format!("set {unit} {table} {address} {value}\n");
            }
        }
        for (table, spans) in tables
            .get("holes")
            .and_then(|h| h.as_object())
            .into_iter()
            .flatten()
        {
            for span in spans.as_array().into_iter().flatten() {
                lines += &format!("hole {unit} {table} {} {}\n", span[0], span[1]);
            }
        }
    }
    lines
}

/// Where a pymodbus server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    Tcp(SocketAddr),
    /// The server's end of a pty pair, and the framing.
    Rtu {
        device: PathBuf,
        baud: u32,
    },
}

/// A pymodbus server holding given contents for given units; stopped when
/// dropped.
pub struct ModbusServer {
    pub listen: Listen,
    units: String,
    contents: PathBuf,
    fail_flag: PathBuf,
    process: Option<Process>,
    implementation: Implementation,
    idle_close: Option<Duration>,
}

impl ModbusServer {
    /// A TCP server on a free port. `contents` is by unit, then table
    /// (coils, discrete, input, holding), then address:
    /// `{"1": {"holding": {"0": 2965}}}`.
    pub async fn tcp(units: &[u8], contents: serde_json::Value) -> ModbusServer {
        ModbusServer::tcp_on(Ipv4Addr::LOCALHOST, units, contents).await
    }

    /// A TCP server on a free port of `host` (the node address, for an
    /// adaptor in a pod).
    pub async fn tcp_on(host: Ipv4Addr, units: &[u8], contents: serde_json::Value) -> ModbusServer {
        let address = SocketAddr::from((host, free_port()));
        ModbusServer::start(Listen::Tcp(address), units, contents).await
    }

    /// A libmodbus TCP server, whatever DEVICELINK_E2E_MODBUS_SERVER says,
    /// that closes a connection once it has been silent for `idle`, as many
    /// devices and gateways do.
    pub async fn closing_idle(
        units: &[u8],
        contents: serde_json::Value,
        idle: Duration,
    ) -> ModbusServer {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        ModbusServer::start_as(
            Implementation::Libmodbus,
            Some(idle),
            Listen::Tcp(address),
            units,
            contents,
        )
        .await
    }

    /// A TCP server of the given implementation at `address` (discovery
    /// scans several on one port at different loopback addresses).
    pub async fn tcp_as(
        implementation: Implementation,
        address: SocketAddr,
        units: &[u8],
        contents: serde_json::Value,
    ) -> ModbusServer {
        ModbusServer::start_as(implementation, None, Listen::Tcp(address), units, contents).await
    }

    pub async fn start(listen: Listen, units: &[u8], contents: serde_json::Value) -> ModbusServer {
        let implementation = match listen {
            // libmodbus stands in over TCP; serial lines stay pymodbus's.
            Listen::Rtu { .. } => Implementation::Pymodbus,
            Listen::Tcp(_) => Implementation::chosen(),
        };
        ModbusServer::start_as(implementation, None, listen, units, contents).await
    }

    async fn start_as(
        implementation: Implementation,
        idle_close: Option<Duration>,
        listen: Listen,
        units: &[u8],
        contents: serde_json::Value,
    ) -> ModbusServer {
        let tag = match &listen {
            Listen::Tcp(address) => format!("tcp-{}-{}", address.ip(), address.port()),
            Listen::Rtu { device, .. } => format!(
                "rtu-{}",
                device.file_name().unwrap_or_default().to_string_lossy()
            ),
        };
        let dir = crate::log_dir();
        let contents_file = dir.join(format!("modbus-{tag}.json"));
        std::fs::write(&contents_file, contents.to_string()).unwrap();
        let fail_flag = dir.join(format!("modbus-{tag}.fail"));
        let _ = std::fs::remove_file(&fail_flag);
        let mut server = ModbusServer {
            listen,
            units: units
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(","),
            contents: contents_file,
            fail_flag,
            process: None,
            implementation,
            idle_close,
        };
        server.restart().await;
        server
    }

    /// `host:port` of a TCP server.
    pub fn endpoint(&self) -> String {
        match &self.listen {
            Listen::Tcp(address) => address.to_string(),
            Listen::Rtu { .. } => panic!("an RTU server has no TCP endpoint"),
        }
    }

    /// Starts the server (again), with its initial contents.
    pub async fn restart(&mut self) {
        self.stop().await;
        if let (Implementation::Libmodbus, Listen::Tcp(address)) =
            (self.implementation, &self.listen)
        {
            let contents: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&self.contents).unwrap()).unwrap();
            let lines = self.contents.with_extension("lines");
            std::fs::write(&lines, libmodbus_contents(&self.units, &contents)).unwrap();
            let mut command = Command::new(libmodbus_server());
            command
                .arg("--host")
                .arg(address.ip().to_string())
                .arg("--tcp")
                .arg(address.port().to_string())
                .arg("--contents")
                .arg(&lines)
                .arg("--fail-while")
                .arg(&self.fail_flag);
            if let Some(idle) = self.idle_close {
                command.arg("--idle-close").arg(idle.as_secs().to_string());
            }
            self.spawn(command).await;
            return;
        }
        let mut command = Command::new(python());
        command.arg(server_script());
        match &self.listen {
            Listen::Tcp(address) => {
                command
                    .arg("--tcp")
                    .arg(address.port().to_string())
                    .arg("--host")
                    .arg(address.ip().to_string());
            }
            Listen::Rtu { device, baud } => {
                command
                    .arg("--rtu")
                    .arg(device)
                    .arg("--baud")
                    .arg(baud.to_string())
                    .arg("--parity")
                    .arg("N");
            }
        }
        command
            .arg("--units")
            .arg(&self.units)
            .arg("--contents")
            .arg(&self.contents)
            .arg("--fail-while")
            .arg(&self.fail_flag);
        self.spawn(command).await;
    }

    /// Runs the server and waits until it listens.
    async fn spawn(&mut self, command: Command) {
        let name = format!(
            "modbus-{}",
            self.contents.file_stem().unwrap().to_string_lossy()
        );
        self.process = Some(Process::spawn(&name, command));
        if let Listen::Tcp(address) = self.listen {
            crate::eventually(
                "the Modbus server to listen",
                Duration::from_secs(20),
                || async move {
                    tokio::net::TcpStream::connect(address)
                        .await
                        .ok()
                        .map(|_| ())
                },
            )
            .await;
        } else {
            // The serial server opens its pty at once; give it a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// What the server has printed (every run of it, appended).
    pub fn log(&self) -> String {
        let name = format!(
            "modbus-{}",
            self.contents.file_stem().unwrap().to_string_lossy()
        );
        std::fs::read_to_string(crate::log_dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Kills the server, as a power cut would.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill().await;
        }
    }

    /// While on, every request is answered with exception 0x04.
    pub fn fail(&self, on: bool) {
        if on {
            std::fs::write(&self.fail_flag, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(&self.fail_flag);
        }
    }

    /// A plain client to a TCP server, to look at registers directly.
    pub async fn client(&self, unit: u8) -> Context {
        let stream = tokio::net::TcpStream::connect(self.endpoint())
            .await
            .unwrap();
        tokio_modbus::client::tcp::attach_slave(stream, Slave(unit))
    }
}

/// Reads holding registers directly.
pub async fn holding(client: &mut Context, start: u16, count: u16) -> Vec<u16> {
    client
        .read_holding_registers(start, count)
        .await
        .expect("transport")
        .expect("no exception")
}

/// Reads coils directly.
pub async fn coils(client: &mut Context, start: u16, count: u16) -> Vec<bool> {
    client
        .read_coils(start, count)
        .await
        .expect("transport")
        .expect("no exception")
}

/// A connected pair of pseudo-terminals (socat), as a serial cable: the
/// server takes one end, the adaptor the other.
pub struct SerialCable {
    pub server_end: PathBuf,
    pub device_end: PathBuf,
    _socat: Process,
}

impl SerialCable {
    pub async fn new(name: &str) -> SerialCable {
        let dir =
            std::env::temp_dir().join(format!("devicelink-e2e-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        SerialCable::at(
            &dir.join(format!("{name}-server")),
            &dir.join(format!("{name}-device")),
        )
        .await
    }

    /// A cable whose ends are named under /dev (`/dev/tty-e2e-NAME-device`),
    /// where the operator's settings take serial devices from, for an
    /// adaptor in a pod.
    pub async fn in_dev(name: &str) -> SerialCable {
        let end = |side: &str| PathBuf::from(format!("/dev/tty-e2e-{name}-{side}"));
        SerialCable::at(&end("server"), &end("device")).await
    }

    async fn at(server_end: &std::path::Path, device_end: &std::path::Path) -> SerialCable {
        let (server_end, device_end) = (server_end.to_path_buf(), device_end.to_path_buf());
        let mut command = Command::new("socat");
        // The device end as a serial port on Debian is: group dialout,
        // which adaptor pods join.
        command
            .arg(format!("pty,raw,echo=0,link={}", server_end.display()))
            .arg(format!(
                "pty,raw,echo=0,group=dialout,mode=660,link={}",
                device_end.display()
            ));
        let name = device_end.file_name().unwrap_or_default().to_string_lossy();
        let socat = Process::spawn(&format!("socat-{name}"), command);
        let (a, b) = (server_end.clone(), device_end.clone());
        crate::eventually(
            "socat to make the pty pair",
            Duration::from_secs(10),
            || {
                let ready = a.exists() && b.exists();
                async move { ready.then_some(()) }
            },
        )
        .await;
        SerialCable {
            server_end,
            device_end,
            _socat: socat,
        }
    }
}

/// A serial port with no hardware behind it: a device node of the first
/// 8250 UART beyond the console (`ttyS1`, 4:65), which answers every open
/// with ENXIO. Opening it says whether the device cgroup let a container
/// reach the driver at all (an unprivileged container gets EPERM).
/// Removed when dropped.
pub struct AbsentUart {
    pub path: PathBuf,
}

impl AbsentUart {
    pub fn new(name: &str) -> AbsentUart {
        let path = PathBuf::from(format!("/dev/tty-e2e-{name}"));
        let _ = std::fs::remove_file(&path);
        let run = |args: &[&str]| {
            let status = std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
            assert!(status.success(), "{args:?} failed");
        };
        let p = path.to_str().unwrap();
        run(&["mknod", p, "c", "4", "65"]);
        run(&["chgrp", "dialout", p]);
        run(&["chmod", "660", p]);
        AbsentUart { path }
    }
}

impl Drop for AbsentUart {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The devices discovery's tests scan, at 127.0.0.2 to .5 on `port` (on
/// loopback: never any other address): a meter (pymodbus, identified by
/// Read Device Identification, regular stream included), a drive
/// (pymodbus, identified, units 1 and 2), a plain device (libmodbus: no
/// function 43) and one that accepts connections and never answers. The
/// meter and the drive hold what their catalog entries
/// (deploy/catalog/) say: 230.1 V, 15.2 A and 123.456 kWh on a CT ratio
/// of 40; a drive running at 49.8 Hz towards 50. Stopped when dropped.
pub struct Plant {
    pub meter: ModbusServer,
    pub drive: ModbusServer,
    pub plain: ModbusServer,
    pub hung: Silent,
}

impl Plant {
    pub async fn start(port: u16) -> Plant {
        let at = |last: u8| SocketAddr::from(([127, 0, 0, last], port));
        let meter = serde_json::json!({
            "identity": {"VendorName": "Acme", "ProductCode": "PM-200",
                         "MajorMinorRevision": "1.4", "ProductName": "Power meter",
                         "ModelName": "PM-200-EU"},
            // 123,456 Wh is 0x0001_E240.
            "1": {"input": {"0": 2301, "1": 1520, "2": 1, "3": 0xE240}, "holding": {"0": 40}},
        });
        let drive = serde_json::json!({
            "identity": {"VendorName": "Initech", "ProductCode": "VFD-7",
                         "MajorMinorRevision": "2.0"},
            "1": {"coils": {"0": true}, "holding": {"0": 500}, "input": {"0": 498}},
        });
        let plain = serde_json::json!({"1": {"holding": {"0": 7}}});
        Plant {
            meter: ModbusServer::tcp_as(Implementation::Pymodbus, at(2), &[1], meter).await,
            drive: ModbusServer::tcp_as(Implementation::Pymodbus, at(3), &[1, 2], drive).await,
            plain: ModbusServer::tcp_as(Implementation::Libmodbus, at(4), &[1], plain).await,
            hung: Silent::start_on(at(5)).await,
        }
    }
}

/// A TCP endpoint that accepts connections and never answers, as a device
/// that hangs does; stops when dropped.
pub struct Silent {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        Silent::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// At `address` (port 0: a free one).
    pub async fn start_on(address: SocketAddr) -> Silent {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Silent { port, task }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A DeviceLink for a Modbus TCP device on edge-worker (unit 1, polled
/// every second) with `properties`, whose MQTT extension publishes on
/// `<topic>/<name>` and takes writes on `<topic>/<name>/set` (QoS 1).
pub fn device_with_writes(
    namespace: &str,
    name: &str,
    endpoint: &str,
    broker: &str,
    topic: &str,
    properties: serde_json::Value,
) -> devicelink_api::DeviceLink {
    crate::device_link(
        namespace,
        name,
        "edge-worker",
        "modbus",
        "ModbusDevice",
        serde_json::json!({"spec": {
            "parameters": {"syncInterval": "1s"},
            "protocol": {"tcp": {"endpoint": endpoint, "workerID": 1}},
            "properties": properties,
            "extension": {"mqtt": {
                "client": {"server": broker},
                "message": {"topic": format!("{topic}/:name/:operator"),
                            "operator": {"read": "set"}, "qos": 1},
            }},
        }}),
    )
}
