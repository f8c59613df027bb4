//! OPCUADevice: variables on an OPC-UA server, watched through a subscription.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    credentials::BasicAuth,
    devicelink::ReferenceItem,
    duration::Duration,
    mqtt::DeviceExtension,
    property::{
        AccessMode, ArithmeticOperation, DeviceStatus, PropertyValue, ValueType, arithmetic_rule,
        writability_rules,
    },
};

/// An OPC-UA device.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "devices.edge.cattle.io",
    version = "v1alpha1",
    kind = "OPCUADevice",
    plural = "opcuadevices",
    namespaced,
    status = "DeviceStatus",
    shortname = "opcua",
    doc = "OPCUADevice is a set of variables on an OPC-UA server, watched through one subscription.",
    printcolumn(
        name = "ENDPOINT",
        type_ = "string",
        json_path = ".spec.protocol.endpoint"
    ),
    printcolumn(
        name = "POLICY",
        type_ = "string",
        json_path = ".spec.protocol.securityPolicy"
    ),
    printcolumn(
        name = "MODE",
        type_ = "string",
        json_path = ".spec.protocol.securityMode"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OpcuaDeviceSpec {
    /// Extensions, such as publishing to MQTT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,

    /// Sampling interval and request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<OpcuaParameters>,

    /// How to reach and authenticate to the server.
    pub protocol: OpcuaProtocol,

    /// The variables to watch, each an OPC-UA node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub properties: Vec<OpcuaProperty>,
}

/// Sampling interval and request timeout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpcuaParameters {
    /// How often the server samples the variables. Default 15s; zero
    /// means the default, less than 100ms is taken as 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "15s"))]
    pub sync_interval: Option<Duration>,
    /// How long one request may take. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub timeout: Option<Duration>,
}

impl OpcuaParameters {
    /// The sync interval when none is given (or zero): see
    /// [`crate::duration::sync_interval`].
    pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
}

/// How to reach and authenticate to an OPC-UA server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.?securityPolicy.orValue('None') == 'None') == (self.?securityMode.orValue('None') == 'None')",
        "message": "securityPolicy None goes with securityMode None, and any other policy needs securityMode Sign or SignAndEncrypt",
        "fieldPath": ".securityMode",
    },
    {
        "rule": "[has(self.basicAuth), has(self.certificateAuth), has(self.issuedTokenAuth)].filter(x, x).size() <= 1",
        "message": "choose one user identity: basicAuth, certificateAuth or issuedTokenAuth (none is anonymous)",
    },
    {
        "rule": "!(has(self.basicAuth) || has(self.issuedTokenAuth)) || self.?securityPolicy.orValue('None') != 'None' || self.?allowInsecureCredentials.orValue(false)",
        "message": "basicAuth and issuedTokenAuth over securityPolicy None send the credentials to a server whose certificate is not checked, unencrypted unless the server asks otherwise: use a securityPolicy such as Basic256Sha256 with Sign or SignAndEncrypt, or set allowInsecureCredentials: true to accept that",
        "fieldPath": ".securityPolicy",
    },
]))]
pub struct OpcuaProtocol {
    /// Endpoint URL of the server, `opc.tcp://host:port[/path]`.
    #[schemars(length(min = 11, max = 2048), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^opc[.]tcp://[^ ]+$')",
        "message": "must start with opc.tcp://, e.g. opc.tcp://plc:4840",
    }]))]
    pub endpoint: String,

    /// Security policy of the endpoint to use. Default None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "None"))]
    pub security_policy: Option<SecurityPolicy>,

    /// Security mode of the endpoint to use. Default None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "None"))]
    pub security_mode: Option<SecurityMode>,

    /// User identity by username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,

    /// User identity by X.509 certificate and its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_auth: Option<CertificateAndKey>,

    /// User identity by an issued token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_auth: Option<IssuedToken>,

    /// Send basicAuth or issuedTokenAuth credentials over securityPolicy
    /// None, to a server whose certificate is not checked (and unencrypted
    /// unless the server's token policy asks otherwise). Refused unless
    /// set. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_credentials: Option<bool>,

    /// The client's application instance certificate and key (generated by
    /// the adaptor when not given), and which server certificates to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<OpcuaTlsConfig>,

    /// Sampling interval; when set (and not zero), it is used instead of
    /// parameters.syncInterval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<Duration>,

    /// How long to wait for a connection. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,

    /// How long one request may take; when set, it is used instead of parameters.timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,

    /// How long a session lives before it is renewed. Default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_interval: Option<Duration>,

    /// How often the server publishes changes, in seconds, 1 to 60. Default: the sync interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub publishing_interval_in_seconds: Option<i32>,
}

/// OPC-UA security policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SecurityPolicy {
    None,
    Basic128Rsa15,
    Basic256,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
}

/// OPC-UA message security modes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SecurityMode {
    None,
    Sign,
    SignAndEncrypt,
}

/// A certificate and its private key, each as PEM inline or from `spec.references`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.certFilePEM) != has(self.certFilePEMRef)",
        "message": "needs the certificate: set certFilePEM or certFilePEMRef, not both",
    },
    {
        "rule": "has(self.keyFilePEM) != has(self.keyFilePEMRef)",
        "message": "needs the private key: set keyFilePEM or keyFilePEMRef, not both",
    },
]))]
pub struct CertificateAndKey {
    /// The certificate, PEM.
    #[serde(
        default,
        rename = "certFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub cert_file_pem: Option<String>,
    /// The certificate PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "certFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_file_pem_ref: Option<ReferenceItem>,
    /// The private key, PEM. Prefer keyFilePEMRef, so that the key stays in a Secret.
    #[serde(
        default,
        rename = "keyFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub key_file_pem: Option<String>,
    /// The private key PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "keyFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem_ref: Option<ReferenceItem>,
}

/// The client's instance certificate and the server certificates it trusts.
///
/// A secured endpoint (securityPolicy other than None) is used only when the
/// server's certificate is in `caFilePEM`/`caFilePEMRef`, or when
/// `trustOnFirstUse` is set: then the first certificate seen is pinned and
/// any other is refused until the adaptor restarts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
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
        "message": "the client certificate and its private key go together: set both or neither",
    },
    {
        "rule": "!(has(self.caFilePEM) && has(self.caFilePEMRef))",
        "message": "set caFilePEM or caFilePEMRef, not both",
    },
]))]
pub struct OpcuaTlsConfig {
    /// The client's application instance certificate, PEM.
    #[serde(
        default,
        rename = "certFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub cert_file_pem: Option<String>,
    /// The client's certificate PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "certFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_file_pem_ref: Option<ReferenceItem>,
    /// The client's private key, PEM. Prefer keyFilePEMRef, so that the key stays in a Secret.
    #[serde(
        default,
        rename = "keyFilePEM",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 65536))]
    pub key_file_pem: Option<String>,
    /// The client's private key PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "keyFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_file_pem_ref: Option<ReferenceItem>,
    /// The trusted server certificates, or the CAs that signed them, PEM,
    /// one or more.
    #[serde(default, rename = "caFilePEM", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub ca_file_pem: Option<String>,
    /// The trusted server certificates PEM, from an item of `spec.references`.
    #[serde(
        default,
        rename = "caFilePEMRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca_file_pem_ref: Option<ReferenceItem>,
    /// Trust the first server certificate seen and pin it. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_on_first_use: Option<bool>,
}

/// An issued identity token, inline or from `spec.references`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.token) != has(self.tokenRef)",
    "message": "set token or tokenRef, exactly one",
}]))]
pub struct IssuedToken {
    /// The token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub token: Option<String>,
    /// The token, from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<ReferenceItem>,
}

/// One variable of an OPC-UA device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = property_rules()))]
pub struct OpcuaProperty {
    /// Name of the property, unique within the device.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the property means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Type of the variable's value.
    #[serde(rename = "type")]
    pub type_: ValueType,
    /// Which node holds the value.
    pub visitor: OpcuaVisitor,
    /// Whether the property is only read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Access modes, instead of readOnly: Notify (subscribe), ReadOnce, ReadMany, WriteOnce, WriteMany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), extend("x-kubernetes-list-type" = "set"))]
    pub access_modes: Vec<AccessMode>,
    /// Value to write to the node, for writable properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<PropertyValue>,
}

/// Which OPC-UA node holds a value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpcuaVisitor {
    /// Node ID, e.g. `ns=1;i=1005` or `ns=1;s=the.answer`.
    #[serde(rename = "nodeID")]
    #[schemars(length(min = 3, max = 512), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^((ns=[0-9]+|nsu=[^;]+);)?(i=[0-9]+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/=]+)$')",
        "message": "must be an OPC-UA node ID such as ns=1;i=1005, ns=1;s=the.answer, ns=2;g=<GUID> or ns=2;b=<base64>",
    }]))]
    pub node_id: String,
    /// Browse name of the node, for people reading the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub browse_name: Option<String>,
    /// Arithmetic applied in order to numeric values read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub arithmetic_operations: Vec<ArithmeticOperation>,
    /// Decimal places kept after the arithmetic. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 24))]
    pub arithmetic_operation_precision: Option<i32>,
}

impl crate::mqtt::WithMqttExtension for OPCUADevice {
    fn mqtt(&self) -> Option<&crate::mqtt::MqttOptions> {
        self.spec.extension.as_ref()?.mqtt.as_ref()
    }
}

fn property_rules() -> serde_json::Value {
    let mut rules = writability_rules("server");
    rules.push(arithmetic_rule(&["arithmeticOperations"], false));
    serde_json::Value::Array(rules)
}
