//! The console's settings, from flags or the environment (the chart sets
//! the environment).

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "devicelink-console", version, about)]
pub struct Config {
    /// Where the HTTP API, the WebSocket stream and the page are served.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// Messages a WebSocket client may fall behind by; beyond that its
    /// oldest are dropped (and it is told how many).
    #[arg(long, env = "DEVICELINK_CONSOLE_CLIENT_QUEUE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub client_queue: u32,

    /// A WebSocket client that takes no message for this long is cut off.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_SEND_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub send_timeout_seconds: u64,

    /// How long an authentication and authorization decision of the API
    /// server is reused before it is asked again (also how often an open
    /// stream's right to watch is checked again).
    #[arg(long, env = "DEVICELINK_CONSOLE_REVIEW_SECONDS", default_value_t = 10)]
    pub review_seconds: u64,

    /// How long a write waits for the adaptor's answer.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_WRITE_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub write_timeout_seconds: u64,

    /// Client ID prefix of the console's broker connections; a digest of
    /// each connection's settings follows it. Two replicas need different
    /// ones (the chart uses the pod name).
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_CLIENT_ID",
        default_value = "devicelink-console"
    )]
    pub client_id: String,

    /// The audience a user's token must be minted for (`kubectl create
    /// token NAME --audience devicelink-console`): a token for the API
    /// server or another service is refused, so one stolen from elsewhere
    /// does not open the console, nor one of the console's elsewhere.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_TOKEN_AUDIENCE",
        default_value = "devicelink-console",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub token_audience: String,

    /// Token reviews one client address may cause a minute (answers the
    /// console remembers cost none); beyond that it is answered 429.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_REVIEWS_PER_MINUTE",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub reviews_per_minute: u32,

    /// Origins (`https://console.example.com`) whose pages may open the
    /// stream besides the console's own, comma separated.
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub allowed_origins: Vec<String>,

    /// Brokers the console may connect to, comma separated: `host:port`,
    /// `host` (any port) or `unix:///path`. A DeviceLink on another broker
    /// is listed with why its stream is unavailable, and takes no writes
    /// through the console. None by default (the chart allows its broker).
    #[arg(
        long,
        env = "DEVICELINK_CONSOLE_ALLOWED_BROKERS",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub allowed_brokers: Vec<String>,

    /// The servers (URLs, comma-separated) of the broker the operator
    /// manages: the console follows DeviceLinks there that give no
    /// basicAuth with --broker-identity.
    #[arg(long, env = "DEVICELINK_MANAGED_BROKER", value_delimiter = ',')]
    pub managed_broker: Vec<String>,

    /// The Secret (`namespace/name`, items username and password) holding
    /// the console's identity on the managed broker (the operator makes and
    /// rotates it).
    #[arg(long, env = "DEVICELINK_BROKER_IDENTITY")]
    pub broker_identity: Option<String>,
}

impl Config {
    /// The console's broker identity Secret: (namespace, name).
    pub fn identity(&self) -> anyhow::Result<Option<(String, String)>> {
        devicelink_mqtt::identity::set_managed_broker(&self.managed_broker)
            .map_err(|e| anyhow::anyhow!("--managed-broker: {e}"))?;
        match self.broker_identity.as_deref().map(|i| i.split_once('/')) {
            None if self.managed_broker.is_empty() => Ok(None),
            None => anyhow::bail!("--managed-broker needs --broker-identity"),
            Some(None) => anyhow::bail!("--broker-identity: write namespace/name"),
            Some(Some((namespace, name))) => Ok(Some((namespace.into(), name.into()))),
        }
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_seconds.max(1))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds.max(1))
    }

    pub fn review_for(&self) -> Duration {
        Duration::from_secs(self.review_seconds)
    }
}
