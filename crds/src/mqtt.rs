//! The MQTT extension (`spec.extension.mqtt` on every device model): how an
//! adaptor reaches the broker and what it publishes where. Field names and
//! defaults follow Octopus `pkg/mqtt/api`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::devicelink::ReferenceItem;

/// `spec.extension` of a device model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceExtension {
    /// Publish the device's status to an MQTT broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttOptions>,
}

/// Client and message options.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttOptions {
    /// How to connect to the broker.
    pub client: MqttClientOptions,
    /// What to publish, and where.
    pub message: MqttMessageOptions,
}

/// How the adaptor connects to the broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttClientOptions {
    /// Broker address, `scheme://host:port`; scheme one of tcp, ssl, tls, tcps, ws, wss, unix.
    #[schemars(regex(pattern = r"^(tcp|ssl|tls|tcps|ws|wss|unix)://\S+$"))]
    pub server: String,

    /// MQTT protocol version: 3 (3.1) or 4 (3.1.1); 0 means the default, 3.1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<i32>,

    /// Client identifier; by default derived from the DeviceLink's UID, so it is stable across restarts.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// Username and password, inline or from `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<MqttBasicAuth>,

    /// TLS settings for ssl, tls, tcps and wss servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<MqttTlsConfig>,

    /// Start a clean session on connect. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_session: Option<bool>,

    /// Where unacknowledged messages are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<MqttStore>,

    /// Resume stored subscriptions on connect (only with cleanSession false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_subs: Option<bool>,

    /// How long to wait for a connection, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,

    /// Keep-alive interval, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<String>,

    /// How long to wait for a ping response, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_timeout: Option<String>,

    /// Deliver messages in order within a QoS level. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<bool>,

    /// How long a publish may take, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<String>,

    /// How long to wait for a publish or subscribe to complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<String>,

    /// How long to wait for in-flight work when disconnecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_quiesce: Option<String>,

    /// Reconnect after a lost connection. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reconnect: Option<bool>,

    /// Upper bound of the reconnect backoff, e.g. `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconnect_interval: Option<String>,

    /// Messages kept while the broker is unreachable. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub message_channel_depth: Option<i32>,

    /// HTTP headers for the websocket handshake (ws and wss).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, Vec<String>>,
}

/// Username and password.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttBasicAuth {
    /// Username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Username from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<ReferenceItem>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_ref: Option<ReferenceItem>,
}

/// TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttTlsConfig {
    /// PEM of the CA that signs the server's certificate.
    #[serde(default, rename = "caFilePEM", skip_serializing_if = "Option::is_none")]
    pub ca_file_pem: Option<String>,
    /// CA PEM from an item of `spec.references`.
    #[serde(
        default,
        rename = "caFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca_file_pem_ref: Option<ReferenceItem>,
    /// PEM of the client certificate.
    #[serde(
        default,
        rename = "certFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_file_pem: Option<String>,
    /// Client certificate PEM from an item of `spec.references`.
    #[serde(
        default,
        rename = "certFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_file_pem_ref: Option<ReferenceItem>,
    /// PEM of the client key.
    #[serde(
        default,
        rename = "keyFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem: Option<String>,
    /// Client key PEM from an item of `spec.references`.
    #[serde(
        default,
        rename = "keyFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem_ref: Option<ReferenceItem>,
    /// Name to verify the server certificate against, if not the host of `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any server certificate. Only for testing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Where messages not yet acknowledged by the broker are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttStore {
    /// Memory or File.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<MqttStoreType>,
    /// Directory for the File store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_prefix: Option<String>,
}

/// Store kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MqttStoreType {
    Memory,
    File,
}

/// What is published and where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttMessageOptions {
    /// Topic template; `:namespace`, `:name`, `:uid` (of the DeviceLink), `:path` and `:operator` are replaced.
    #[schemars(regex(pattern = r".*[^/]$"))]
    pub topic: String,

    /// Quality of service: 0, 1 (default) or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: Option<i32>,

    /// Whether the broker keeps the last message for new subscribers. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<bool>,

    /// Value of the `:path` keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// Values of the `:operator` keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<MqttTopicOperator>,

    /// Message the broker publishes when the adaptor goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<MqttWill>,
}

/// `:operator` values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttTopicOperator {
    /// Used when subscribing (the write topic the adaptor listens on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// Used when publishing status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<String>,
}

/// Last will.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttWill {
    /// Topic; by default the message topic followed by `/$will`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Content, base64-encoded.
    pub content: String,
}

impl MqttMessageOptions {
    /// QoS with the default applied.
    pub fn qos_or_default(&self) -> i32 {
        self.qos.unwrap_or(1)
    }
    /// Retained with the default applied.
    pub fn retained_or_default(&self) -> bool {
        self.retained.unwrap_or(true)
    }
}

/// A device model that carries the MQTT extension (every model does, at
/// `spec.extension.mqtt`; MQTTDevice at `spec.protocol`).
pub trait WithMqttExtension {
    /// The MQTT options, if the device publishes to MQTT.
    fn mqtt(&self) -> Option<&MqttOptions>;
}
