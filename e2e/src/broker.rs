//! MQTT brokers for the tests, on free loopback ports: mosquitto, or HiveMQ
//! Community Edition (the second broker, `DEVICELINK_E2E_MQTT_BROKER=hivemq`,
//! with which `make test` runs the MQTT tests a second time;
//! docs/interop.md). Settings both brokers have ([`Settings`]: users, TLS,
//! a packet size limit, persistence) work with either; a test that needs
//! one of mosquitto's own (a unix socket, `$SYS`, ACL files, the dynamic
//! security plugin) asks for mosquitto by name and gets it in every pass.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::process::Command;

use crate::process::{Process, free_port};

/// Which broker the tests' MQTT brokers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    Mosquitto,
    HiveMq,
}

impl Implementation {
    pub fn chosen() -> Implementation {
        match std::env::var("DEVICELINK_E2E_MQTT_BROKER").as_deref() {
            Err(_) | Ok("mosquitto") => Implementation::Mosquitto,
            Ok("hivemq") => Implementation::HiveMq,
            Ok(other) => panic!("DEVICELINK_E2E_MQTT_BROKER={other}: mosquitto or hivemq"),
        }
    }
}

/// A TLS listener: the broker's certificate and key, and the CA that
/// client certificates must chain to (PEM files).
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients without a certificate the CA signed are refused.
    pub require_client_cert: bool,
}

/// How a broker is set up, in words both brokers understand.
#[derive(Debug, Clone, Default)]
pub struct Settings<'a> {
    /// Users admitted (none: anyone).
    pub users: &'a [(&'a str, &'a str)],
    /// TLS on the listener instead of plain TCP.
    pub tls: Option<Tls>,
    /// The largest packet the broker takes (it tells MQTT 5 clients).
    pub max_packet_size: Option<usize>,
    /// Sessions and queued messages kept across restarts on the same port.
    pub persistent: bool,
}

/// A running broker; stopped when dropped.
pub struct Broker {
    pub port: u16,
    pub implementation: Implementation,
    process: Process,
}

impl Broker {
    /// A broker that lets anyone in.
    pub async fn start() -> Broker {
        Broker::start_on(free_port(), &[]).await
    }

    /// A broker on `port` that admits only the given users (none: anyone).
    pub async fn start_on(port: u16, users: &[(&str, &str)]) -> Broker {
        Broker::start_configured(
            port,
            &Settings {
                users,
                ..Default::default()
            },
        )
        .await
    }

    /// A broker that keeps sessions and queued messages across its
    /// restarts (started again on the same port with the same call).
    pub async fn start_persistent(port: u16) -> Broker {
        Broker::start_configured(
            port,
            &Settings {
                persistent: true,
                ..Default::default()
            },
        )
        .await
    }

    /// The broker the run asks for, set up as `settings` says.
    pub async fn start_configured(port: u16, settings: &Settings<'_>) -> Broker {
        match Implementation::chosen() {
            Implementation::Mosquitto => {
                let mut lines = String::new();
                if let Some(tls) = &settings.tls {
                    lines += &format!(
                        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                        tls.ca.display(),
                        tls.cert.display(),
                        tls.key.display(),
                        tls.require_client_cert
                    );
                }
                if let Some(max) = settings.max_packet_size {
                    lines += &format!("max_packet_size {max}\n");
                }
                if settings.persistent {
                    // mosquitto drops to its own user: /tmp is a place it may write.
                    lines += &format!(
                        "persistence true\npersistence_location /tmp/\npersistence_file devicelink-e2e-mosquitto-{port}.db\n"
                    );
                }
                Broker::mosquitto_with(port, settings.users, &lines).await
            }
            Implementation::HiveMq => hivemq(port, settings).await,
        }
    }

    /// mosquitto, whichever broker the run asks for, with more lines for
    /// its listener (TLS files, `sys_interval`, `acl_file`, a unix socket).
    pub async fn mosquitto_with(port: u16, users: &[(&str, &str)], listener: &str) -> Broker {
        let dir = crate::log_dir();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let mut config = format!("listener {port} 127.0.0.1\n{listener}\n");
        if users.is_empty() {
            // Unless the listener's lines decide it (the dynamic security
            // plugin's broker).
            if !listener.contains("allow_anonymous") {
                config.push_str("allow_anonymous true\n");
            }
        } else {
            let passwords = mosquitto_passwords(port, users);
            config.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                passwords.display()
            ));
        }
        std::fs::write(&conf, config).unwrap();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed: run `make test`, which installs it");
        let mut command = Command::new(binary);
        command.arg("-c").arg(&conf);
        let process = Process::spawn(&format!("mosquitto-{port}"), command);
        listening("mosquitto", port, Duration::from_secs(10)).await;
        Broker {
            port,
            implementation: Implementation::Mosquitto,
            process,
        }
    }

    /// mosquitto as the chart runs it: no anonymous clients, the dynamic
    /// security plugin with one admin (`admin`, `admin_password`), whom
    /// the operator's managed-broker mode drives.
    pub async fn mosquitto_dynsec(port: u16, admin_password: &str) -> Broker {
        // Not under the log directory: mosquitto started as root drops to
        // its own user, which must be able to replace the plugin's file.
        let dir = std::env::temp_dir().join(format!("devicelink-e2e-dynsec-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let file = dir.join("dynamic-security.json");
        let status = std::process::Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&file)
            .args(["admin", admin_password])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("mosquitto_ctrl (package mosquitto) is not installed: run `make test`");
        assert!(status.success(), "mosquitto_ctrl dynsec init failed");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
        assert!(
            Path::new(plugin).exists(),
            "{plugin} (package mosquitto) is missing: run `make test`"
        );
        Broker::mosquitto_with(
            port,
            &[],
            &format!(
                "allow_anonymous false\nplugin {plugin}\nplugin_opt_config_file {}",
                file.display()
            ),
        )
        .await
    }

    /// Forgets what a persistent broker on `port` saved.
    pub fn forget_persisted(port: u16) {
        let _ = std::fs::remove_file(format!("/tmp/devicelink-e2e-mosquitto-{port}.db"));
        let _ = std::fs::remove_dir_all(hivemq_home(port));
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Stops the broker; clients see their connection drop.
    pub async fn stop(self) {
        self.process.stop().await
    }
}

/// A password file for mosquitto, made by mosquitto_passwd. Not under the
/// log directory: mosquitto started as root drops to its own user, which
/// may not enter the (root's) cache.
fn mosquitto_passwords(port: u16, users: &[(&str, &str)]) -> PathBuf {
    let passwords = std::env::temp_dir().join(format!("devicelink-e2e-mosquitto-{port}.passwd"));
    let _ = std::fs::remove_file(&passwords);
    for (user, password) in users {
        let mut create = std::process::Command::new("mosquitto_passwd");
        if !passwords.exists() {
            create.arg("-c");
        }
        let status = create
            .arg("-b")
            .arg(&passwords)
            .arg(user)
            .arg(password)
            .status()
            .expect("mosquitto_passwd (package mosquitto) is not installed: run `make test`");
        assert!(status.success(), "mosquitto_passwd failed");
    }
    passwords
}

async fn listening(what: &str, port: u16, within: Duration) {
    crate::eventually(&format!("{what} to listen"), within, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// Where a HiveMQ broker on `port` keeps its configuration and, when
/// persistent, its data (about 1 GB of file stores, gone with the log
/// directory at the next `make test`).
fn hivemq_home(port: u16) -> PathBuf {
    crate::log_dir().join(format!("hivemq-{port}"))
}

/// HiveMQ CE (e2e/devices/hivemq/Broker.java, built by e2e/prereqs.sh into
/// the cache) with its configuration written from `settings`.
async fn hivemq(port: u16, settings: &Settings<'_>) -> Broker {
    let installed = crate::cache_dir().join("hivemq");
    assert!(
        installed.join("classes/Broker.class").exists(),
        "{} is missing: run `make test` (e2e/prereqs.sh builds the HiveMQ test broker there)",
        installed.display()
    );
    let home = hivemq_home(port);
    if !settings.persistent {
        let _ = std::fs::remove_dir_all(&home);
    }
    let conf = home.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let listener = match &settings.tls {
        None => format!(
            "<tcp-listener><port>{port}</port><bind-address>127.0.0.1</bind-address></tcp-listener>"
        ),
        Some(tls) => {
            let (keystore, truststore) = hivemq_key_stores(&conf, tls);
            format!(
                "<tls-tcp-listener><port>{port}</port><bind-address>127.0.0.1</bind-address><tls>\
                 <keystore><path>{}</path><password>{STORE_PASSWORD}</password>\
                 <private-key-password>{STORE_PASSWORD}</private-key-password></keystore>\
                 <truststore><path>{}</path><password>{STORE_PASSWORD}</password></truststore>\
                 <client-authentication-mode>{}</client-authentication-mode>\
                 </tls></tls-tcp-listener>",
                keystore.display(),
                truststore.display(),
                if tls.require_client_cert {
                    "REQUIRED"
                } else {
                    "NONE"
                }
            )
        }
    };
    let packets = settings.max_packet_size.map_or(String::new(), |max| {
        format!("<mqtt><packets><max-packet-size>{max}</max-packet-size></packets></mqtt>")
    });
    // Files only where they are kept across restarts: HiveMQ's file stores
    // take about 1 GB per broker.
    let persistence = if settings.persistent {
        "file"
    } else {
        "in-memory"
    };
    std::fs::write(
        conf.join("config.xml"),
        format!(
            "<?xml version=\"1.0\"?>\n<hivemq><listeners>{listener}</listeners>{packets}\
             <persistence><mode>{persistence}</mode></persistence>\
             <anonymous-usage-statistics><enabled>false</enabled></anonymous-usage-statistics></hivemq>\n"
        ),
    )
    .unwrap();
    let mut command = Command::new("java");
    command
        // Small and quick to start: one of these per test, two tests at once.
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg(format!(
            "{}/*:{}",
            installed.join("lib").display(),
            installed.join("classes").display()
        ))
        .arg("Broker")
        .arg(&home);
    if !settings.users.is_empty() {
        let passwords = home.join("users");
        let lines: String = settings
            .users
            .iter()
            .map(|(u, p)| format!("{u}:{p}\n"))
            .collect();
        std::fs::write(&passwords, lines).unwrap();
        command.arg(&passwords);
    }
    let process = Process::spawn(&format!("hivemq-{port}"), command);
    listening("HiveMQ", port, Duration::from_secs(60)).await;
    Broker {
        port,
        implementation: Implementation::HiveMq,
        process,
    }
}

const STORE_PASSWORD: &str = "devicelink-e2e";

/// HiveMQ takes Java key stores, not PEM files: the certificate and key as
/// PKCS#12 (openssl), the CA as a trust store (keytool).
fn hivemq_key_stores(dir: &Path, tls: &Tls) -> (PathBuf, PathBuf) {
    let keystore = dir.join("broker.p12");
    let truststore = dir.join("trust.p12");
    let _ = std::fs::remove_file(&truststore);
    crate::openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            &tls.cert.display().to_string(),
            "-inkey",
            &tls.key.display().to_string(),
            "-out",
            &keystore.display().to_string(),
            "-passout",
            &format!("pass:{STORE_PASSWORD}"),
        ],
    );
    let out = std::process::Command::new("keytool")
        .args([
            "-importcert",
            "-noprompt",
            "-storetype",
            "PKCS12",
            "-alias",
            "ca",
        ])
        .arg("-file")
        .arg(&tls.ca)
        .arg("-keystore")
        .arg(&truststore)
        .args(["-storepass", STORE_PASSWORD])
        .output()
        .expect("keytool (a JDK, installed by make test)");
    assert!(
        out.status.success(),
        "keytool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (keystore, truststore)
}
