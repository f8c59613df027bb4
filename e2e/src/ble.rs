//! Bluetooth Low Energy for the tests, the benchmark and the demo, without
//! radios: a private D-Bus daemon stands in for the system bus, BlueZoo
//! (BlueZ's D-Bus API, emulated, with virtual adapters) runs on it, and
//! peripherals (`e2e/devices/ble_peripheral.py`) advertise and serve GATT
//! on its adapters. The adaptor is pointed at the bus with
//! DBUS_SYSTEM_BUS_ADDRESS and uses adapter hci0; peripheral n sits on
//! adapter hci{n} (BlueZoo gives each adapter one address).
//!
//! BlueZoo runs through `e2e/devices/bluezoo_reconnects.py`, so that a
//! peripheral can be connected to again after a disconnect (a find's
//! browse, then its device). A link drop is made by restarting BlueZoo and
//! the peripherals.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use tokio::{io::AsyncWriteExt, process::ChildStdin, process::Command};

use crate::{
    LocalKubelet, Process, delete_links_and_wait, eventually, log_dir, modbus::python,
    process::Operator, repo_root,
};
use devicelink_api::DeviceLink;
use kube::Api;

/// The bus, BlueZoo with adapters for peripherals besides the central's,
/// an operator whose BLE adaptor pods use them, and the kubelet running
/// those.
pub struct Ble {
    pub bus: Bus,
    pub zoo: Bluezoo,
    _operator: Operator,
    _kubelet: LocalKubelet,
}

impl Ble {
    /// Starts them all, `peripherals` adapters besides the central's, and
    /// deletes the BLE DeviceLinks earlier tests left.
    pub async fn start(name: &str, client: &kube::Client, peripherals: usize) -> Ble {
        let bus = Bus::start(name).await;
        let zoo = Bluezoo::start(&bus, name, peripherals).await;
        let settings = log_dir().join(format!("ble-settings-{name}.yaml"));
        std::fs::write(&settings, bus.adaptor_settings()).unwrap();
        let operator = Operator::start_with(
            &format!("operator-{name}"),
            &["--adaptor-settings-file", settings.to_str().unwrap()],
        );
        let ble = Ble {
            bus,
            zoo,
            _operator: operator,
            _kubelet: LocalKubelet::start(client.clone()),
        };
        // One BLE adaptor serves the node's devices of every namespace:
        // what a failed test left behind would connect to this test's
        // peripherals.
        let all: Api<DeviceLink> = Api::all(client.clone());
        for left in all
            .list(&Default::default())
            .await
            .expect("list DeviceLinks")
        {
            if left.spec.adaptor.name == "adaptors.edge.cattle.io/ble" {
                let namespace = left.metadata.namespace.clone().unwrap_or_default();
                let links: Api<DeviceLink> = Api::namespaced(client.clone(), &namespace);
                delete_links_and_wait(&links, &[&left.metadata.name.clone().unwrap_or_default()])
                    .await;
            }
        }
        ble
    }
}

/// A peripheral program's config from `e2e/devices/`.
pub fn peripheral_config(file: &str) -> Value {
    let path = repo_root().join("e2e/devices").join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("a peripheral config")
}

/// The adapter the adaptor uses.
pub const CENTRAL_ADAPTER: &str = "hci0";

/// A private bus standing in for the system bus.
pub struct Bus {
    pub address: String,
    socket: PathBuf,
    _daemon: Process,
}

impl Bus {
    pub async fn start(name: &str) -> Bus {
        let socket = log_dir().join(format!("ble-bus-{name}.sock"));
        let _ = std::fs::remove_file(&socket);
        let address = format!("unix:path={}", socket.display());
        let mut command = Command::new("dbus-daemon");
        command
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"));
        let daemon = Process::spawn(&format!("ble-bus-{name}"), command);
        let path = socket.clone();
        eventually(
            "the private D-Bus daemon to listen",
            Duration::from_secs(20),
            || {
                let path = path.clone();
                async move { path.exists().then_some(()) }
            },
        )
        .await;
        Bus {
            address,
            socket,
            _daemon: daemon,
        }
    }

    /// The adaptor settings that point BLE adaptor pods at this bus and
    /// the central adapter.
    pub fn adaptor_settings(&self) -> String {
        format!(
            "adaptors:\n  ble:\n    env:\n      - {{name: DBUS_SYSTEM_BUS_ADDRESS, value: '{}'}}\n      - {{name: DEVICELINK_BLE_ADAPTER, value: {CENTRAL_ADAPTER}}}\n",
            self.address
        )
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// BlueZoo with the central adapter and `peripherals` more.
pub struct Bluezoo {
    name: String,
    bus_address: String,
    peripherals: usize,
    process: Option<Process>,
}

impl Bluezoo {
    pub async fn start(bus: &Bus, name: &str, peripherals: usize) -> Bluezoo {
        let mut zoo = Bluezoo {
            name: format!("bluezoo-{name}"),
            bus_address: bus.address.clone(),
            peripherals,
            process: None,
        };
        zoo.launch();
        zoo
    }

    /// The address of adapter `n` (0: the central's).
    pub fn address(n: usize) -> String {
        format!("10:00:00:00:{:02X}:{:02X}", n / 256, n % 256)
    }

    fn launch(&mut self) {
        // BlueZoo with a disconnect that clears what the connection made,
        // so that a peripheral can be connected to again.
        let mut command = Command::new(python());
        command
            .arg(crate::devices_dir().join("bluezoo_reconnects.py"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            // Adapters powered at once; a peripheral registered after a
            // scan started is seen within a second.
            .args(["--auto-enable", "--scan-interval", "1"]);
        for n in 0..=self.peripherals {
            command.arg("-a").arg(Self::address(n));
        }
        self.process = Some(Process::spawn(&self.name, command));
    }

    /// Kills BlueZoo (every connection and advertisement with it), for a
    /// link that drops.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill().await;
        }
    }

    /// Starts it again after `kill`.
    pub fn restart(&mut self) {
        if self.process.is_none() {
            self.launch();
        }
    }
}

/// A running peripheral program: `count` peripherals from one config,
/// on adapters hci{adapter}, hci{adapter+1}, ...
pub struct Peripheral {
    name: String,
    log: PathBuf,
    since: u64,
    stdin: ChildStdin,
    _process: Process,
}

impl Peripheral {
    /// Starts the program and waits until its peripherals advertise.
    /// `config` is the program's JSON config (see its help).
    pub async fn start(
        bus: &Bus,
        name: &str,
        adapter: usize,
        count: usize,
        config: &Value,
    ) -> Peripheral {
        let name = format!("ble-peripheral-{name}");
        let dir = log_dir();
        let config_file = dir.join(format!("{name}.json"));
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let since = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(python());
        command
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .arg(crate::devices_dir().join("ble_peripheral.py"))
            .arg("--adapter")
            .arg(format!("hci{adapter}"))
            .arg("--count")
            .arg(count.to_string())
            .arg("--config")
            .arg(&config_file);
        let (process, stdin) = Process::spawn_with_input(&name, command);
        let peripheral = Peripheral {
            name,
            log,
            since,
            stdin,
            _process: process,
        };
        eventually(
            &format!("{} to advertise", peripheral.name),
            Duration::from_secs(40),
            || async {
                peripheral
                    .output()
                    .iter()
                    .any(|l| l == "ready")
                    .then_some(())
            },
        )
        .await;
        peripheral
    }

    /// What it printed since it started, line by line.
    fn output(&self) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(text.get(self.since as usize..).unwrap_or_default())
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("control {}: {e}", self.name));
        self.stdin.flush().await.unwrap();
    }

    /// Sets a characteristic's value (hex), notified if subscribed.
    pub async fn set(&mut self, characteristic: &str, hex: &str) {
        self.send(serde_json::json!({"set": characteristic, "value": hex}))
            .await;
    }

    /// Makes reads of a characteristic answer an error (or not).
    pub async fn fail_reads(&mut self, characteristic: &str, on: bool) {
        self.send(serde_json::json!({"fail_reads": characteristic, "on": on}))
            .await;
    }

    /// The values (hex) centrals wrote to a characteristic, in order.
    pub fn written(&self, characteristic: &str) -> Vec<String> {
        self.output()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["written"]
                    .as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case(characteristic))
            })
            .filter_map(|v| v["value"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits until `hex` was written to the characteristic.
    pub async fn wait_written(&self, characteristic: &str, hex: &str) {
        crate::eventually_showing(
            &format!("{} to be written to {characteristic} of {}", hex, self.name),
            Duration::from_secs(60),
            || async {
                let written = self.written(characteristic);
                written
                    .iter()
                    .any(|w| w == hex)
                    .then_some(())
                    .ok_or(format!("{written:?}"))
            },
        )
        .await
    }
}
