//! Devices that speak MQTT themselves, for the tests: the paho-mqtt program
//! `e2e/devices/mqtt_device.py` (see its help for what it does), stopped
//! when dropped.

use std::{path::PathBuf, time::Duration};

use tokio::process::Command;

use crate::{Process, modbus::python};

/// A DeviceLink for an MQTTDevice with `spec` on the test node
/// (`edge-worker`), driven by the MQTT adaptor.
pub fn link(namespace: &str, name: &str, spec: serde_json::Value) -> devicelink_api::DeviceLink {
    crate::device_link(
        namespace,
        name,
        "edge-worker",
        "mqtt",
        "MQTTDevice",
        serde_json::json!({ "spec": spec }),
    )
}

/// How the device lays out its state.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One JSON object on one topic (Octopus's AttributedMessage).
    Message,
    /// Each entry on its own topic, `{path}` in the topic (AttributedTopic).
    Topic,
}

/// What to start.
pub struct Options<'a> {
    pub name: &'a str,
    pub port: u16,
    pub layout: Layout,
    pub topic: &'a str,
    pub command_topic: &'a str,
    pub state: serde_json::Value,
    /// Seconds between publications of its whole state (0: only when
    /// connecting and after commands).
    pub interval: f64,
    /// More arguments (`--tick`, `--username`, `--ca`, `--count` ...).
    pub more: Vec<String>,
}

pub struct MqttDevice {
    options_file: PathBuf,
    _process: Process,
}

impl MqttDevice {
    /// Starts the device and waits until it is connected and subscribed.
    pub async fn start(options: Options<'_>) -> MqttDevice {
        let name = format!("mqtt-device-{}", options.name);
        let dir = crate::log_dir();
        let state = dir.join(format!("{name}.json"));
        std::fs::write(&state, options.state.to_string()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(python());
        command
            .arg(crate::devices_dir().join("mqtt_device.py"))
            .arg("--port")
            .arg(options.port.to_string())
            .arg("--pattern")
            .arg(match options.layout {
                Layout::Message => "message",
                Layout::Topic => "topic",
            })
            .arg("--topic")
            .arg(options.topic)
            .arg("--command-topic")
            .arg(options.command_topic)
            .arg("--state")
            .arg(&state)
            .arg("--interval")
            .arg(options.interval.to_string())
            .args(&options.more);
        let process = Process::spawn(&name, command);
        crate::eventually(
            &format!("the MQTT device {} to be connected", options.name),
            Duration::from_secs(30),
            || {
                let log = log.clone();
                async move {
                    let text = std::fs::read(&log).ok()?;
                    let new = String::from_utf8_lossy(text.get(before as usize..)?).into_owned();
                    new.lines().any(|l| l == "ready").then_some(())
                }
            },
        )
        .await;
        MqttDevice {
            options_file: state,
            _process: process,
        }
    }
}

impl Drop for MqttDevice {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.options_file);
    }
}
