//! Operator settings, from flags or the environment.

use clap::Parser;

use crate::adaptor_settings::{AdaptorSettings, SettingsError};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "devicelink-operator",
    version,
    about = "Reconciles edge.cattle.io DeviceLinks"
)]
pub struct Config {
    /// Namespace the adaptor pods run in (with their service accounts).
    #[arg(
        long,
        env = "DEVICELINK_ADAPTOR_NAMESPACE",
        default_value = "devicelink-system"
    )]
    pub adaptor_namespace: String,

    /// Image of the adaptor pods; `{adaptor}` is replaced by the adaptor's
    /// short name. By default the image of this release (`make images`).
    #[arg(
        long,
        env = "DEVICELINK_ADAPTOR_IMAGE",
        default_value = concat!("ghcr.io/devicelink/adaptor-{adaptor}:", env!("CARGO_PKG_VERSION"))
    )]
    pub adaptor_image: String,

    /// Log filter passed to adaptor pods as RUST_LOG.
    #[arg(long, env = "DEVICELINK_ADAPTOR_LOG", default_value = "info")]
    pub adaptor_log: String,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "DEVICELINK_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Take part in leader election, so that several replicas can run and
    /// one reconciles. Turn off only when exactly one replica runs.
    #[arg(long, env = "DEVICELINK_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "devicelink-system")]
    pub lease_namespace: String,

    /// This replica's name in the leader Lease; defaults to host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// YAML file with per adaptor kind pod settings (image, pull secrets,
    /// resources, tolerations, env, serial devices, D-Bus); see adaptor_settings.rs.
    #[arg(long, env = "DEVICELINK_ADAPTOR_SETTINGS")]
    pub adaptor_settings_file: Option<std::path::PathBuf>,

    /// How long the adaptor has to stop a deleted device and clear its
    /// retained MQTT status before the operator lets the device go without it.
    #[arg(long, env = "DEVICELINK_DEVICE_RELEASE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub device_release_grace: std::time::Duration,

    /// How many DeviceLinks are reconciled at the same time at most.
    //
    // A new DeviceLink's reconcile is three writes in a row (finalizer,
    // device, status), so it runs about three API round trips. A client that
    // applies DeviceLinks a few at a time gets its requests answered as
    // often as each reconcile does: with too few reconciles at once, the
    // operator falls behind a fleet being applied, and DeviceLinks wait
    // minutes for their device (docs/benchmarks.md, the MQTT path).
    #[arg(long, env = "DEVICELINK_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,

    /// The live console is installed (as the ServiceAccount devicelink-console
    /// in this namespace): grant it, per namespace, read access to exactly the
    /// Secrets and ConfigMaps that MQTT extensions there reference, so that
    /// it can follow devices on brokers that need credentials.
    #[arg(long, env = "DEVICELINK_GRANT_CONSOLE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub grant_console: bool,

    /// The Kafka bridge is installed (as the ServiceAccount devicelink-bridge
    /// in this namespace): grant it, per namespace, read access to exactly the
    /// Secrets and ConfigMaps that KafkaBridges there reference.
    #[arg(long, env = "DEVICELINK_GRANT_BRIDGE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub grant_bridge: bool,

    /// The servers (URLs, comma-separated) of a mosquitto broker with the
    /// dynamic security plugin that the operator manages (the chart's own
    /// broker): it gives each adaptor pod and the console an identity there,
    /// rotated, with access to exactly their devices' topics. The first is
    /// the one the operator connects to; the others are other names of it
    /// that DeviceLinks may use. None: the operator manages no broker.
    #[arg(long, env = "DEVICELINK_MANAGED_BROKER", value_delimiter = ',')]
    pub managed_broker: Vec<String>,

    /// The Secret in the operator's namespace with the managed broker's
    /// admin identity (items username and password).
    #[arg(
        long,
        env = "DEVICELINK_MANAGED_BROKER_ADMIN_SECRET",
        default_value = "devicelink-mqtt-admin"
    )]
    pub managed_broker_admin_secret: String,

    /// How often each broker identity's password is replaced.
    #[arg(long, env = "DEVICELINK_BROKER_IDENTITY_ROTATION", default_value = "24h", value_parser = parse_duration)]
    pub broker_identity_rotation: std::time::Duration,

    /// How long the previous username of a broker identity keeps working
    /// after a rotation (its holder moves to the new one as soon as it sees
    /// the Secret change).
    #[arg(long, env = "DEVICELINK_BROKER_IDENTITY_OVERLAP", default_value = "60s", value_parser = parse_duration)]
    pub broker_identity_overlap: std::time::Duration,

    /// The loaded `adaptor_settings_file` (see [`Config::load_settings`]).
    #[arg(skip)]
    pub adaptor_settings: AdaptorSettings,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    devicelink_api::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration from 0 to 8760h, such as 30s"))
}

impl Config {
    /// Reads the adaptor settings file, if one is given.
    pub fn load_settings(mut self) -> Result<Config, SettingsError> {
        if let Some(path) = &self.adaptor_settings_file {
            self.adaptor_settings = AdaptorSettings::load(path)?;
        }
        Ok(self)
    }

    /// The identity this replica holds the leader lease under.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| "devicelink-operator".into());
            format!("{host}-{}", std::process::id())
        })
    }

    pub fn image_for(&self, adaptor_short_name: &str) -> String {
        let settings = self.adaptor_settings.for_kind(adaptor_short_name);
        settings
            .image
            .as_deref()
            .unwrap_or(&self.adaptor_image)
            .replace("{adaptor}", adaptor_short_name)
    }
}
