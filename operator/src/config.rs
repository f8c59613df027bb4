//! Operator settings, from flags or the environment.

use clap::Parser;

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

    /// Image of the adaptor pods; `{adaptor}` is replaced by the adaptor's short name.
    #[arg(
        long,
        env = "DEVICELINK_ADAPTOR_IMAGE",
        default_value = "ghcr.io/devicelink/adaptor-{adaptor}:latest"
    )]
    pub adaptor_image: String,

    /// Log filter passed to adaptor pods as RUST_LOG.
    #[arg(long, env = "DEVICELINK_ADAPTOR_LOG", default_value = "info")]
    pub adaptor_log: String,
}

impl Config {
    pub fn image_for(&self, adaptor_short_name: &str) -> String {
        self.adaptor_image.replace("{adaptor}", adaptor_short_name)
    }
}
