//! KafkaBridge, `edge.cattle.io/v1alpha1` (devicelink's own): takes MQTT
//! messages from a broker and delivers them into Kafka, at least once, with
//! topics and headers mapped from the MQTT topic's levels (docs/bridge.md).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    devicelink::{DeviceLinkReference, ReferenceItem},
    duration::Duration,
    mqtt::MqttClientOptions,
};

/// Where in a KafkaBridge's spec a `*Ref` field can be; each must name an
/// entry of `spec.references` (the API server checks it).
pub const REFERENCE_PATHS: &[&str] = &[
    "source.client.basicAuth.usernameRef",
    "source.client.basicAuth.passwordRef",
    "source.client.tlsConfig.caFilePEMRef",
    "source.client.tlsConfig.certFilePEMRef",
    "source.client.tlsConfig.keyFilePEMRef",
    "sink.tls.caFilePEMRef",
    "sink.tls.certFilePEMRef",
    "sink.tls.keyFilePEMRef",
    "sink.sasl.usernameRef",
    "sink.sasl.passwordRef",
];

/// One CEL rule per [`REFERENCE_PATHS`] entry.
fn reference_rules() -> serde_json::Value {
    REFERENCE_PATHS
        .iter()
        .map(|path| {
            let optional = path
                .split('.')
                .fold("self".to_string(), |acc, seg| format!("{acc}.?{seg}"));
            serde_json::json!({
                "rule": format!(
                    "!{optional}.?name.hasValue() || (has(self.references) && self.references.exists(r, r.name == self.{path}.name))"
                ),
                "messageExpression": format!(
                    "'names \\'' + self.{path}.name + '\\', which is not an entry of spec.references'"
                ),
                "fieldPath": format!(".{path}.name"),
                "reason": "FieldValueInvalid",
            })
        })
        .collect()
}

/// Desired state of a KafkaBridge.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "KafkaBridge",
    namespaced,
    status = "KafkaBridgeStatus",
    shortname = "kb",
    doc = "KafkaBridge delivers the MQTT messages of some topics into Kafka, at least once, with Kafka topics and headers mapped from the MQTT topic's levels.",
    printcolumn(
        name = "KAFKA",
        type_ = "string",
        json_path = ".spec.sink.bootstrapServers[0]"
    ),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "DELIVERED",
        type_ = "string",
        description = "records each replica delivered",
        json_path = ".status.replicas[*].delivered"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = spec_rules()))]
pub struct KafkaBridgeSpec {
    /// Secrets and ConfigMaps the `*Ref` fields refer to with `{name,
    /// item}`, as a DeviceLink's do: whoever writes them must be allowed to
    /// read those objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub references: Vec<DeviceLinkReference>,
    /// Where the messages come from.
    pub source: BridgeSource,
    /// How MQTT topics become Kafka topics and headers. Without it every
    /// message goes to `sink.topic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<TopicMapping>,
    /// Where they go.
    pub sink: KafkaSink,
    /// Writes from Kafka to the DeviceLinks `source.deviceLinks` selects,
    /// and their answers back into Kafka. None without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<KafkaCommands>,
}

/// The spec's rules: its `*Ref` fields name entries of `references`, and
/// commands only go to DeviceLinks the source selects.
fn spec_rules() -> serde_json::Value {
    let mut rules = reference_rules();
    if let Some(rules) = rules.as_array_mut() {
        rules.push(serde_json::json!({
            "rule": "!has(self.commands) || has(self.source.deviceLinks)",
            "message": "commands are written to the DeviceLinks source.deviceLinks selects: set it",
            "fieldPath": ".commands",
            "reason": "FieldValueInvalid",
        }));
    }
    rules
}

/// An MQTT broker and what is taken from it: topic filters, the status
/// topics of some DeviceLinks, or both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.topics) && size(self.topics) > 0) || has(self.deviceLinks)",
    "message": "set topics, deviceLinks or both: the bridge needs something to take",
}]))]
pub struct BridgeSource {
    /// How to connect, as a DeviceLink's MQTT extension says it. The bridge
    /// keeps a session (cleanSession is ignored): what arrives while Kafka
    /// is away waits in it.
    pub client: MqttClientOptions,
    /// Topic filters (MQTT wildcards `+` and `#` allowed), taken at QoS 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub topics: Vec<TopicFilter>,
    /// The DeviceLinks of the bridge's namespace whose status topics are
    /// taken (those with an MQTT extension, on this source's broker).
    /// Their records carry the DeviceLink's namespace, name and UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_links: Option<DeviceLinkSelection>,
}

/// Which DeviceLinks of the bridge's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkSelection {
    /// A label selector, as a Deployment's (`matchLabels`,
    /// `matchExpressions`); empty or absent selects every DeviceLink of the
    /// namespace.
    #[serde(default)]
    pub selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
}

/// Writes read from a Kafka topic, made on the DeviceLinks' write topics,
/// and their answers written to another.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.topic != self.replyTopic",
    "message": "replyTopic must differ from topic: answers would be read as commands",
    "fieldPath": ".replyTopic",
    "reason": "FieldValueInvalid",
}]))]
pub struct KafkaCommands {
    /// The topic of commands: each record's key is a DeviceLink's
    /// `namespace/name` (of the bridge's namespace, selected by
    /// `source.deviceLinks`), its value a JSON write as the DeviceLink's
    /// write topic takes it (`{"on": true}`).
    #[schemars(schema_with = "crate::schema::kafka_topic")]
    pub topic: String,
    /// The topic of answers: the command's key, the adaptor's answer (or
    /// the bridge's refusal) as value, and a `devicelink.correlation`
    /// header.
    #[schemars(schema_with = "crate::schema::kafka_topic")]
    pub reply_topic: String,
    /// How long to wait for the adaptor's answer. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A command older than this when the bridge reads it (by its record's
    /// timestamp) is refused, not written: a device should not act on an
    /// order given long ago. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<Duration>,
}

impl KafkaCommands {
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    pub const DEFAULT_EXPIRY: std::time::Duration = std::time::Duration::from_secs(300);

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .as_ref()
            .and_then(Duration::to_std)
            .unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    pub fn expire_after(&self) -> std::time::Duration {
        self.expire_after
            .as_ref()
            .and_then(Duration::to_std)
            .unwrap_or(Self::DEFAULT_EXPIRY)
    }
}

/// An MQTT topic filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(transparent)]
pub struct TopicFilter(
    #[schemars(length(min = 1, max = 1024), extend("x-kubernetes-validations" = [
        {
            "rule": "!self.matches('(^|/)#.|[^/]#|[^/]\\\\+|\\\\+[^/]')",
            "message": "must be an MQTT topic filter: '#' only as the whole last level, '+' only as a whole level",
        },
        {
            "rule": "!self.startsWith('$share/')",
            "message": "must not be a shared subscription: the bridge shares its subscriptions among its replicas itself",
        },
    ]))]
    pub String,
);

/// A Kafka cluster and how records are made for it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSink {
    /// `host:port` of some of the cluster's brokers.
    #[schemars(length(min = 1, max = 16))]
    pub bootstrap_servers: Vec<BootstrapServer>,
    /// The topic of messages the mapping does not route (of every message
    /// without a mapping).
    #[schemars(schema_with = "crate::schema::kafka_topic")]
    pub topic: String,
    /// What each record's key is: the DeviceLink's UID where the message is
    /// a DeviceLink's status, otherwise the MQTT topic (the default: one
    /// device's messages keep their order in one partition); always the
    /// MQTT topic; or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RecordKey>,
    /// How batches are compressed. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// TLS to the brokers. Without it the connection is plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL authentication (over TLS when `tls` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
}

/// TLS to Kafka's brokers, named as a DeviceLink's MQTT `tlsConfig` is. The
/// brokers are verified against the system's CAs, or against `caFilePEM`
/// when given, unless `insecureSkipVerify` is true. A client certificate is
/// for brokers that require one (`ssl.client.auth=required`).
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
        "rule": "(has(self.certFilePEM) || has(self.certFilePEMRef)) == has(self.keyFilePEMRef)",
        "message": "a client certificate (certFilePEM or certFilePEMRef) and its key (keyFilePEMRef) go together",
    },
]))]
pub struct KafkaTls {
    /// PEM of the CAs that sign the brokers' certificates.
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
    /// PEM of the client certificate.
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
    /// The client certificate's private key (PEM), from an item of
    /// `spec.references` (a Secret's): never written in the spec.
    #[serde(
        default,
        rename = "keyFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem_ref: Option<ReferenceItem>,
    /// Accept any certificate and name: for trials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// SASL authentication to Kafka. The password comes from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.username) != has(self.usernameRef)",
    "message": "set username or usernameRef, one of them",
}]))]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// The username, from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<ReferenceItem>,
    /// The password, from an item of `spec.references`.
    pub password_ref: ReferenceItem,
}

/// The SASL mechanisms the bridge speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanism {
    /// The password in the clear (use it over TLS).
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name Kafka clients configure it by.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `host:port` of a Kafka broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(transparent)]
pub struct BootstrapServer(
    #[schemars(length(min = 3, max = 261), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[^:/ ]+:[0-9]{1,5}$') || self.matches('^\\\\[[0-9a-fA-F:.]+\\\\]:[0-9]{1,5}$')",
        "message": "must be host:port, e.g. kafka.plant.svc:9092",
    }]))]
    pub String,
);

/// What a record's key is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RecordKey {
    /// The UID of the DeviceLink whose status the message is; the MQTT
    /// topic for other messages.
    #[serde(rename = "DeviceLinkUID")]
    DeviceLinkUid,
    /// The MQTT topic the message came on.
    MqttTopic,
    /// No key: records spread over the partitions.
    None,
}

/// Kafka's batch compression codecs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The name Kafka clients configure it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How MQTT topics become Kafka topics and headers. Levels are counted
/// from the first non-empty one (`/a/b` and `a/b` both have `a` at 0). The
/// level at `matchIndex` picks a policy: the first route whose pattern
/// matches it. The policy's `topicIndex` level picks the Kafka topic: the
/// first of its `topics` whose pattern matches it. Patterns are regular
/// expressions found anywhere in the level (`gate` matches `gateway`):
/// anchor them with `^` and `$` to match whole levels. A message no route
/// or topic pattern takes goes to `sink.topic`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.routes.all(r, self.policies.exists(p, p.name == r.policy))",
    "message": "every route must name an entry of policies",
    "fieldPath": ".routes",
    "reason": "FieldValueInvalid",
}]))]
pub struct TopicMapping {
    /// The level whose value is matched against `routes`. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 64))]
    pub match_index: i32,
    /// Tried in order; the first whose pattern matches picks the policy.
    #[schemars(length(min = 1, max = 16))]
    pub routes: Vec<MappingRoute>,
    /// The policies the routes name.
    #[schemars(length(min = 1, max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub policies: Vec<MappingPolicy>,
}

/// A level pattern and the policy it picks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MappingRoute {
    /// A regular expression (RE2 syntax) looked for in the level.
    #[schemars(schema_with = "crate::schema::pattern")]
    pub pattern: String,
    /// The name of an entry of `policies`.
    #[schemars(length(min = 1, max = 63))]
    pub policy: String,
}

/// Which level picks the Kafka topic, and which levels become headers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingPolicy {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The level whose value is matched against `topics`.
    #[schemars(range(min = 0, max = 64))]
    pub topic_index: i32,
    /// Tried in order; the first whose pattern matches names the topic.
    #[schemars(length(min = 1, max = 16))]
    pub topics: Vec<TopicRoute>,
    /// Level index (`"0"`, `"1"`, ...) to the name of the header that
    /// carries that level's value. Levels a topic lacks are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::level_headers")]
    pub headers: BTreeMap<String, String>,
}

/// A level pattern and the Kafka topic it picks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TopicRoute {
    /// A regular expression (RE2 syntax) looked for in the level.
    #[schemars(schema_with = "crate::schema::pattern")]
    pub pattern: String,
    /// The Kafka topic.
    #[schemars(schema_with = "crate::schema::kafka_topic")]
    pub topic: String,
}

/// One replica's delivery.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeReplicaStatus {
    /// The replica (its pod's name).
    pub name: String,
    /// Records Kafka acknowledged since the replica started this spec.
    pub delivered: i64,
    /// Records Kafka refused for good (their messages were acknowledged).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: i64,
    /// Records delivered per second since its previous report, as a
    /// decimal (e.g. "12.5").
    pub records_per_second: String,
    /// Lag: messages taken from MQTT whose records Kafka has not yet
    /// acknowledged...
    pub in_flight: i64,
    /// ...and how long the oldest of them has waited, in seconds.
    pub lag_seconds: i64,
    /// Commands from Kafka this replica wrote and their adaptors answered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub commands_answered: i64,
    /// Commands this replica answered itself: not written (another
    /// namespace, not selected, expired) or not answered in time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub commands_refused: i64,
    /// The last record Kafka refused, or why Kafka is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the replica last wrote this entry (at least every 30 s).
    pub updated_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// What the bridge reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBridgeStatus {
    /// The generation of the spec the bridge runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What each replica of the bridge delivers, each written by that
    /// replica. An entry not renewed for two minutes (its replica is gone)
    /// is removed by the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub replicas: Vec<BridgeReplicaStatus>,
    /// `SourceConnected` (the MQTT broker), `SinkConnected` (Kafka) and
    /// `Ready` (both, and the spec is usable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kube::CustomResourceExt;

    use super::{KafkaBridge, REFERENCE_PATHS};

    #[test]
    fn reference_paths_are_every_reference_field_of_the_spec() {
        let mut found = BTreeSet::new();
        crate::devicelink::reference_paths::spec_references(&KafkaBridge::crd(), &mut found);
        let listed: BTreeSet<String> = REFERENCE_PATHS.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            listed, found,
            "REFERENCE_PATHS must list every *Ref field of a KafkaBridge's spec, and only those"
        );
    }
}
