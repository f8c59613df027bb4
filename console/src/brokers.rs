//! The brokers the console may connect to. A DeviceLink names its broker,
//! and whoever may write one could otherwise make the console connect,
//! publish writes, or probe wherever they like from inside the cluster.

/// Brokers allowed, each `host:port`, `host` (any port) or
/// `unix:///path/to/socket`.
#[derive(Debug, Clone, Default)]
pub struct AllowedBrokers {
    entries: Vec<String>,
}

impl AllowedBrokers {
    pub fn new(entries: &[String]) -> AllowedBrokers {
        AllowedBrokers {
            entries: entries
                .iter()
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// Ok if the console may connect to `server` (a DeviceLink's
    /// `client.server`); why not otherwise.
    pub fn check(&self, server: &str) -> Result<(), String> {
        let allowed = match url::Url::parse(server) {
            Ok(url) if url.scheme() == "unix" => {
                let socket = format!("unix://{}", url.path());
                self.entries.contains(&socket)
            }
            Ok(url) => match (
                url.host_str(),
                url.port_or_known_default().or(default_port(&url)),
            ) {
                (Some(host), Some(port)) => {
                    let host = host.to_ascii_lowercase();
                    let with_port = format!("{host}:{port}");
                    self.entries.iter().any(|e| *e == host || *e == with_port)
                }
                _ => false,
            },
            Err(_) => false,
        };
        if allowed {
            return Ok(());
        }
        let listed = if self.entries.is_empty() {
            "none".to_string()
        } else {
            self.entries.join(", ")
        };
        Err(format!(
            "client.server {server:?}: the console connects only to the brokers it is allowed (--allowed-brokers, chart value console.allowedBrokers: {listed})"
        ))
    }
}

/// The MQTT schemes' default ports (the url crate knows only ws and wss).
fn default_port(url: &url::Url) -> Option<u16> {
    match url.scheme() {
        "tcp" => Some(1883),
        "ssl" | "tls" | "tcps" => Some(8883),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_brokers_are_allowed() {
        let allowed = AllowedBrokers::new(&[
            "devicelink-mqtt.devicelink-system:1883".into(),
            "127.0.0.1".into(),
            "unix:///run/mosquitto/mqtt.sock".into(),
        ]);
        for ok in [
            "tcp://devicelink-mqtt.devicelink-system:1883",
            "tcp://DeviceLink-MQTT.devicelink-system",
            "tcp://127.0.0.1:41883",
            "ws://127.0.0.1:9001/mqtt",
            "unix:///run/mosquitto/mqtt.sock",
        ] {
            assert_eq!(allowed.check(ok), Ok(()), "{ok}");
        }
        for refused in [
            "tcp://devicelink-mqtt.devicelink-system:1884",
            "ssl://devicelink-mqtt.devicelink-system",
            "tcp://10.0.0.7:1883",
            "tcp://127.0.0.1.example.com:1883",
            "unix:///tmp/other.sock",
            "not a url",
        ] {
            let why = allowed.check(refused).unwrap_err();
            assert!(why.contains("--allowed-brokers"), "{refused}: {why}");
        }
        let none = AllowedBrokers::default();
        let why = none.check("tcp://broker:1883").unwrap_err();
        assert!(why.ends_with("console.allowedBrokers: none)"), "{why}");
    }
}
