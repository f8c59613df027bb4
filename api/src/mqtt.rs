//! The MQTT extension (`spec.extension.mqtt` on every device model): how an
//! adaptor reaches the broker and what it publishes where. Field names and
//! defaults follow Octopus `pkg/mqtt/api`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{credentials::BasicAuth, devicelink::ReferenceItem, duration::Duration};

/// `spec.extension` of a device model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceExtension {
    /// Publish the device's status to an MQTT broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttOptions>,
}

/// Client IDs of the connections devicelink makes itself start with this:
/// `devicelink-<uid>` for a device's own, `devicelink-<adaptor>-<node>-...`
/// for shared ones, `devicelink-console` for the console.
pub const RESERVED_CLIENT_ID_PREFIX: &str = "devicelink-";

/// Why a clientID with [`RESERVED_CLIENT_ID_PREFIX`] is refused.
pub const RESERVED_CLIENT_ID_MESSAGE: &str = "must not start with devicelink-: client IDs with that prefix are the ones devicelink's adaptors and console connect with, and a broker disconnects a client when another connects with its ID (a shared connection carries the devices of other DeviceLinks)";

/// The entry of a device's resolved references that holds the broker
/// identity the operator made for its adaptor (or for the console), with
/// items `username` and `password`. `$` cannot start the name of an entry
/// of `spec.references`, so it never hides a user's reference.
pub const BROKER_IDENTITY_REFERENCE: &str = "$broker-identity";

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
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.tlsConfig) || self.server.matches('^(ssl|tls|tcps|wss)://')",
        "message": "tlsConfig is only used with ssl://, tls://, tcps:// or wss:// servers",
        "fieldPath": ".tlsConfig",
    },
    {
        "rule": "!has(self.httpHeaders) || self.server.matches('^wss?://')",
        "message": "httpHeaders are only sent with ws:// or wss:// servers",
        "fieldPath": ".httpHeaders",
    },
    {
        "rule": "!has(self.protocolVersion) || self.protocolVersion != 3",
        "message": "MQTT 3.1 (protocolVersion 3) is not supported: use 4 (MQTT 3.1.1, which brokers that speak 3.1 also speak) or 5",
        "fieldPath": ".protocolVersion",
    },
    {
        "rule": "!(has(self.resumeSubs) && self.resumeSubs) || (has(self.cleanSession) && !self.cleanSession)",
        "message": "resumeSubs needs cleanSession: false (a clean session has no subscriptions to resume)",
        "fieldPath": ".resumeSubs",
    },
]))]
pub struct MqttClientOptions {
    /// Broker address, `scheme://host:port` (`unix:///path` for a unix socket);
    /// scheme one of tcp, ssl, tls, tcps, ws, wss, unix.
    #[schemars(length(max = 2048), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^(tcp|ssl|tls|tcps|ws|wss|unix)://[^ ]+$')",
        "message": "must be scheme://address with scheme tcp, ssl, tls, tcps, ws, wss or unix, e.g. tcp://broker:1883",
    }]))]
    pub server: String,

    /// MQTT protocol version: 4 (MQTT 3.1.1, the default) or 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 5))]
    pub protocol_version: Option<i32>,

    /// Client identifier; by default derived from the DeviceLink's UID, so it
    /// is stable across restarts and unique per device. IDs starting with
    /// `devicelink-` are the adaptors' and the console's own and refused:
    /// a broker drops a client when another connects with its ID, and a
    /// shared connection carries many devices.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-validations" = [{
        "rule": "!self.startsWith('devicelink-')",
        "message": RESERVED_CLIENT_ID_MESSAGE,
    }]))]
    pub client_id: Option<String>,

    /// Username and password, inline or from `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<Box<BasicAuth>>,

    /// TLS settings for ssl, tls, tcps and wss servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<Box<MqttTlsConfig>>,

    /// Start a clean session on connect. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_session: Option<bool>,

    /// Where messages not yet acknowledged by the broker are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Box<MqttStore>>,

    /// Resume stored subscriptions on reconnect; needs cleanSession false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_subs: Option<bool>,

    /// How long to wait for the broker to accept a connection. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,

    /// Keep-alive interval, at most 65535s (MQTT carries it in 16 bits of
    /// seconds). Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::keep_alive_schema")]
    pub keep_alive: Option<Duration>,

    /// How long to wait for a ping response before the connection counts as lost. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_timeout: Option<Duration>,

    /// Deliver messages in order. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<bool>,

    /// How long a single publish may take. Default 0s, no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<Duration>,

    /// How long to wait for a publish or subscribe to be acknowledged. Default 0s, no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<Duration>,

    /// How long to let in-flight work finish when disconnecting. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_quiesce: Option<Duration>,

    /// Reconnect after a lost connection, backing off from 1s. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reconnect: Option<bool>,

    /// Upper bound of the reconnect backoff. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconnect_interval: Option<Duration>,

    /// Messages kept while the broker is unreachable; when full, the oldest is
    /// dropped and counted. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub message_channel_depth: Option<i32>,

    /// Bytes of messages (topics and payloads) kept while the broker is
    /// unreachable, in memory and in the File store alike; when over, the
    /// oldest are dropped and counted, and the status says so
    /// (`extension.mqtt.buffer`). Default 8 MiB; at most 1 GiB. Ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1073741824))]
    pub message_channel_bytes: Option<i64>,

    /// HTTP headers for the websocket handshake (ws and wss only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, Vec<String>>,

    /// Let the adaptor carry this device's messages on a connection it
    /// shares with its other devices whose connection settings are equal
    /// (server, protocol, credentials, TLS, headers, timings). Only devices
    /// with no clientID, no will and a clean session share; each keeps its
    /// own topics, QoS, buffer and store. False: a connection of its own.
    /// Default true (unless the adaptor runs with sharing off). Ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_connection: Option<bool>,
}

/// TLS settings. The server is verified against the system roots, or
/// against `caFilePEM` when given, unless `insecureSkipVerify` is true.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.caFilePEM) && has(self.caFilePEMRef))",
        "message": "set caFilePEM or caFilePEMRef, not both",
    },
    {
        "rule": "!(has(self.certFilePEM) && has(self.certFilePEMRef))",
        "message": "set certFilePEM or certFilePEMRef, not both",
    },
    {
        "rule": "!(has(self.keyFilePEM) && has(self.keyFilePEMRef))",
        "message": "set keyFilePEM or keyFilePEMRef, not both",
    },
    {
        "rule": "(has(self.certFilePEM) || has(self.certFilePEMRef)) == (has(self.keyFilePEM) || has(self.keyFilePEMRef))",
        "message": "a client certificate (certFilePEM or certFilePEMRef) and its key (keyFilePEM or keyFilePEMRef) go together",
    },
]))]
pub struct MqttTlsConfig {
    /// PEM of the CA that signs the server's certificate.
    #[serde(default, rename = "caFilePEM", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_file_pem: Option<String>,
    /// The CA PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "caFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca_file_pem_ref: Option<ReferenceItem>,
    /// PEM of the client certificate, for mutual TLS.
    #[serde(
        default,
        rename = "certFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub cert_file_pem: Option<String>,
    /// The client certificate PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "certFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_file_pem_ref: Option<ReferenceItem>,
    /// PEM of the client key. Prefer keyFilePEMRef, so that the key stays in a Secret.
    #[serde(
        default,
        rename = "keyFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub key_file_pem: Option<String>,
    /// The client key PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "keyFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem_ref: Option<ReferenceItem>,
    /// Name to verify the server certificate against, if not the host of `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
    /// Accept any server certificate. Only for testing: it allows anyone in
    /// the path to read and change the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Where messages not yet acknowledged by the broker are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.directoryPrefix) || (has(self.type) && self.type == 'File')",
    "message": "directoryPrefix is only used with type File",
    "fieldPath": ".directoryPrefix",
}]))]
pub struct MqttStore {
    /// Memory (the default) keeps messages in the adaptor's memory; File keeps
    /// them on disk, so that they survive an adaptor restart.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<MqttStoreType>,
    /// Directory for the File store, below the adaptor's data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub directory_prefix: Option<String>,
}

/// Store kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MqttStoreType {
    Memory,
    File,
}

/// How the payload is encoded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncode {
    /// The JSON as it is.
    #[default]
    Raw,
    /// The JSON, base64-encoded.
    Base64,
}

/// What is published, and where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttMessageOptions {
    /// Topic template. `:namespace`, `:name` and `:uid` (of the DeviceLink),
    /// `:path` and `:operator` are replaced; empty segments collapse.
    #[schemars(length(min = 1, max = 1024), extend("x-kubernetes-validations" = [
        {
            "rule": "!self.endsWith('/')",
            "message": "must not end with /",
        },
        {
            "rule": "!self.contains('+') && !self.contains('#')",
            "message": "is published to, so it must not contain the wildcards + or #",
        },
    ]))]
    pub topic: String,

    /// Quality of service: 0, 1 or 2. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2), extend("default" = 1))]
    pub qos: Option<i32>,

    /// Whether the broker keeps the last message for new subscribers. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub retained: Option<bool>,

    /// How the payload is encoded: raw (the default) or base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_encode: Option<PayloadEncode>,

    /// Value of the `:path` keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,

    /// Values of the `:operator` keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<MqttTopicOperator>,

    /// Message the broker publishes when the adaptor goes away unannounced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<Box<MqttWill>>,
}

/// `:operator` values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttTopicOperator {
    /// Used when subscribing: the write topic the adaptor listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub read: Option<String>,
    /// Used when publishing status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub write: Option<String>,
}

/// Last will.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MqttWill {
    /// Topic; by default the message topic followed by `/$will`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), extend("x-kubernetes-validations" = [
        {
            "rule": "!self.endsWith('/')",
            "message": "must not end with /",
        },
        {
            "rule": "!self.contains('+') && !self.contains('#')",
            "message": "is published to, so it must not contain the wildcards + or #",
        },
    ]))]
    pub topic: Option<String>,
    /// Content, base64-encoded.
    #[schemars(extend("format" = "byte"))]
    pub content: String,
    /// Quality of service of the will: 0, 1 or 2. Default: the message's qos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: Option<i32>,
    /// Whether the broker retains the will. Default: the message's retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<bool>,
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
