//! DeviceDiscovery and DiscoveredDevice, `edge.cattle.io/v1alpha1`
//! (devicelink's own): what to look for on a node's network, and each
//! device found there, with the DeviceLink it would become
//! (docs/discovery.md).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{duration::Duration, modbus::RegisterKind, mqtt::DeviceExtension};

/// Annotation a person sets on a DiscoveredDevice to adopt it: the
/// operator then creates its DeviceLink.
pub const ADOPT: &str = "edge.cattle.io/adopt";
/// Label of a DiscoveredDevice, and of a DeviceLink made from one: the
/// discovery that found it.
pub const DISCOVERY_LABEL: &str = "edge.cattle.io/discovery";
/// Label of a DeviceLink made from a DiscoveredDevice: which one.
pub const DISCOVERED_LABEL: &str = "edge.cattle.io/discovered-device";

/// What to look for, where, how often and how gently.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "DeviceDiscovery",
    namespaced,
    status = "DeviceDiscoveryStatus",
    shortname = "discovery",
    doc = "DeviceDiscovery scans a node's network for devices of one protocol; each device found becomes a DiscoveredDevice, which a person (or a template match) turns into a DeviceLink.",
    printcolumn(name = "NODE", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "ADOPTION", type_ = "string", json_path = ".spec.adoption"),
    printcolumn(
        name = "FOUND",
        type_ = "integer",
        json_path = ".status.lastScan.found"
    ),
    printcolumn(
        name = "SCANNED",
        type_ = "date",
        json_path = ".status.lastScan.finished"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.node"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.modbus), has(self.opcua), has(self.mqtt), has(self.ble)].filter(x, x).size() == 1",
    "message": "set one of modbus, opcua, mqtt or ble: the protocol to look for",
}, {
    "rule": "!has(self.mqtt) || !has(self.mqtt.basicAuth) || (has(self.references) && self.references.exists(r, r.name == self.mqtt.basicAuth.passwordRef.name))",
    "messageExpression": "'spec.mqtt.basicAuth.passwordRef names \\'' + self.mqtt.basicAuth.passwordRef.name + '\\', which is not an entry of spec.references'",
    "reason": "FieldValueInvalid",
}, {
    "rule": "!has(self.mqtt) || !has(self.mqtt.basicAuth) || !has(self.mqtt.basicAuth.usernameRef) || (has(self.references) && self.references.exists(r, r.name == self.mqtt.basicAuth.usernameRef.name))",
    "messageExpression": "'spec.mqtt.basicAuth.usernameRef names \\'' + self.mqtt.basicAuth.usernameRef.name + '\\', which is not an entry of spec.references'",
    "reason": "FieldValueInvalid",
}]))]
pub struct DeviceDiscoverySpec {
    /// The node whose adaptor scans: its network is the one searched, and
    /// DeviceLinks made from finds run there.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [crate::schema::node_name_rule()]))]
    pub node: String,
    /// How finds become DeviceLinks: `Manual` (a person adopts each, with
    /// the `edge.cattle.io/adopt` annotation), `Matched` (a find a
    /// DeviceTemplate matches is adopted when found; others wait for a
    /// person) or `Automatic` (every find is adopted when found, from its
    /// template if one matches). Default Manual.
    #[serde(default)]
    pub adoption: Adoption,
    /// Time between the start of one scan and the next. Default 10m, at
    /// least 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        crate::duration::rule(crate::duration::MAX_TEXT),
        {"rule": format!("!self.matches('{}') || duration(self) >= duration('10s')", crate::duration::PATTERN),
         "message": "must be at least 10s: a scan is not a poll"},
    ]))]
    pub interval: Option<Duration>,
    /// Modbus TCP devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus: Option<ModbusDiscovery>,
    /// OPC-UA servers, found through discovery servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcua: Option<OpcuaDiscovery>,
    /// Devices that speak MQTT, heard on a broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttDiscovery>,
    /// Bluetooth Low Energy peripherals in reach of the node's adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ble: Option<BleDiscovery>,
    /// The Secrets and ConfigMaps this discovery names, as a DeviceLink's
    /// `spec.references` entries: the credentials its scan uses
    /// (`mqtt.basicAuth`), and those of the DeviceLinks adopted from its
    /// finds (a template's protocol `*Ref` fields name an entry; this says
    /// which Secret it is). Each adopted DeviceLink gets the entries its
    /// device uses. Whoever writes the discovery must be allowed to read
    /// every one (the devicelink-references policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub references: Vec<crate::devicelink::DeviceLinkReference>,
    /// What every DeviceLink adopted from this discovery gets beside what
    /// its find says: its device's extensions (publishing to MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_links: Option<AdoptedDefaults>,
}

impl DeviceDiscoverySpec {
    pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

    /// The protocol it looks for: the one section it has (the schema
    /// allows exactly one).
    pub fn protocol(&self) -> Option<DiscoveredProtocol> {
        [
            (self.modbus.is_some(), DiscoveredProtocol::Modbus),
            (self.opcua.is_some(), DiscoveredProtocol::Opcua),
            (self.mqtt.is_some(), DiscoveredProtocol::Mqtt),
            (self.ble.is_some(), DiscoveredProtocol::Ble),
        ]
        .into_iter()
        .find_map(|(set, protocol)| set.then_some(protocol))
    }

    /// The entries of `references` its scan uses (its sign-in).
    pub fn scan_references(&self) -> Vec<&crate::devicelink::DeviceLinkReference> {
        let login = self.mqtt.as_ref().and_then(|m| m.basic_auth.as_ref());
        let names: Vec<&str> = login
            .into_iter()
            .flat_map(|l| [Some(&l.password_ref), l.username_ref.as_ref()])
            .flatten()
            .map(|r| r.name.as_str())
            .collect();
        self.references
            .iter()
            .filter(|r| names.contains(&r.name.as_str()))
            .collect()
    }

    pub fn interval(&self) -> std::time::Duration {
        duration_or(&self.interval, Self::DEFAULT_INTERVAL)
    }
}

/// A count the schema bounds, or `default` when it is unset (or not
/// positive: stored before the schema said so).
fn positive_or<T: TryFrom<i32>>(value: Option<i32>, default: T) -> T {
    value
        .filter(|&v| v > 0)
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or(default)
}

/// A duration, or `default` when it is unset, zero or unreadable.
fn duration_or(value: &Option<Duration>, default: std::time::Duration) -> std::time::Duration {
    value
        .as_ref()
        .and_then(Duration::to_std)
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

/// How finds become DeviceLinks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Adoption {
    #[default]
    Manual,
    Matched,
    Automatic,
}

impl Adoption {
    /// Whether a find is adopted without a person asking, given whether a
    /// template matches it.
    pub fn adopts_unasked(self, matched: bool) -> bool {
        match self {
            Adoption::Manual => false,
            Adoption::Matched => matched,
            Adoption::Automatic => true,
        }
    }
}

/// Where and how to look for Modbus TCP devices.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModbusDiscovery {
    /// Address ranges, each within what the cluster's administrator lets
    /// discovery scan (the API server refuses others).
    #[schemars(length(min = 1, max = 16))]
    pub targets: Vec<ModbusTarget>,
    /// Unit ids asked at each address that takes a connection. Default [1].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [{
        "rule": "self.all(u, u >= 1 && u <= 247)",
        "message": "unit ids are 1 to 247",
    }]))]
    pub unit_ids: Vec<i32>,
    /// Requests a second, the whole scan together, connects included.
    /// Default 10, at most 100: a scan must not load a plant network or
    /// its devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub requests_per_second: Option<i32>,
    /// How long a connect or a request may take. Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule("1m")]))]
    pub timeout: Option<Duration>,
    /// Register addresses at which each table is tried. Default [0].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-validations" = [{
        "rule": "self.all(a, a >= 0 && a <= 65535)",
        "message": "register addresses are 0 to 65535",
    }]))]
    pub start_addresses: Vec<i32>,
}

impl ModbusDiscovery {
    pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 10;
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

    pub fn unit_ids(&self) -> Vec<u8> {
        let ids: Vec<u8> = self
            .unit_ids
            .iter()
            .filter_map(|&u| u8::try_from(u).ok())
            .collect();
        if ids.is_empty() { vec![1] } else { ids }
    }

    pub fn requests_per_second(&self) -> u32 {
        positive_or(self.requests_per_second, Self::DEFAULT_REQUESTS_PER_SECOND)
    }

    pub fn timeout(&self) -> std::time::Duration {
        duration_or(&self.timeout, Self::DEFAULT_TIMEOUT)
    }

    pub fn start_addresses(&self) -> Vec<u16> {
        let at: Vec<u16> = self
            .start_addresses
            .iter()
            .filter_map(|&a| u16::try_from(a).ok())
            .collect();
        if at.is_empty() { vec![0] } else { at }
    }
}

/// A range of addresses and the ports tried on each.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModbusTarget {
    /// Addresses in CIDR notation (`192.168.10.0/24`; one address is
    /// `/32`), at most 4,096 of them (an IPv4 prefix of at least /20, an
    /// IPv6 one of at least /116).
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-validations" = [
        {"rule": "isCIDR(self)", "message": "must be an address range in CIDR notation, such as 192.168.10.0/24"},
        {"rule": "!isCIDR(self) || cidr(self).prefixLength() >= (cidr(self).ip().family() == 4 ? 20 : 116)",
         "message": "is more than 4096 addresses: split it, or scan a smaller range"},
    ]))]
    pub cidr: String,
    /// TCP ports tried on each address. Default [502].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), extend("x-kubernetes-validations" = [{
        "rule": "self.all(p, p >= 1 && p <= 65535)",
        "message": "ports are 1 to 65535",
    }]))]
    pub ports: Vec<i32>,
}

impl ModbusTarget {
    pub const DEFAULT_PORT: u16 = 502;

    pub fn ports(&self) -> Vec<u16> {
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter_map(|&p| u16::try_from(p).ok())
            .collect();
        if ports.is_empty() {
            vec![Self::DEFAULT_PORT]
        } else {
            ports
        }
    }
}

/// Where and how to look for OPC-UA servers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpcuaDiscovery {
    /// Discovery URLs, `opc.tcp://<IP address>:<port>[/path]`, each within
    /// what the cluster's administrator lets discovery scan: a local
    /// discovery server, or a server itself. Each is asked FindServers;
    /// every server it lists is reached at the same address (a local
    /// discovery server lists the servers of its own host), asked for its
    /// endpoints and browsed.
    #[schemars(schema_with = "discovery_urls_schema")]
    pub discovery_urls: Vec<String>,
    /// How deep to browse from the Objects folder, hierarchical references
    /// followed. Default 4, at most 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub depth: Option<i32>,
    /// Variables recorded per server, the first found breadth first.
    /// Default 100, at most 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub max_variables: Option<i32>,
    /// Requests a second, the whole scan together, connects included.
    /// Default 20, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub requests_per_second: Option<i32>,
    /// How long a connect or a request may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule("1m")]))]
    pub timeout: Option<Duration>,
}

/// 1 to 16 discovery URLs, each an `opc.tcp://` URL whose host is an
/// address (a name could resolve anywhere).
fn discovery_urls_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 16,
        "items": {
            "type": "string",
            "minLength": 12,
            "maxLength": 512,
            "x-kubernetes-validations": [{
                // The host by string functions: url() costs the API
                // server's estimate far more than a CRD may spend.
                "rule": "self.matches('^opc[.]tcp://([0-9.]+|[[][0-9A-Fa-f:.]+[]]):[0-9]{1,5}(/[^ ]*)?$') && isIP(self.substring(10).split('/')[0].substring(0, self.substring(10).split('/')[0].lastIndexOf(':')).replace('[', '').replace(']', ''))",
                "message": "must be opc.tcp://<IP address>:<port>[/path]: discovery reaches only addresses, which the administrator's ranges can bound",
            }],
        },
    })
}

impl OpcuaDiscovery {
    pub const DEFAULT_DEPTH: u32 = 4;
    pub const DEFAULT_MAX_VARIABLES: usize = 100;
    pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 20;
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn depth(&self) -> u32 {
        positive_or(self.depth, Self::DEFAULT_DEPTH)
    }

    pub fn max_variables(&self) -> usize {
        positive_or(self.max_variables, Self::DEFAULT_MAX_VARIABLES)
    }

    pub fn requests_per_second(&self) -> u32 {
        positive_or(self.requests_per_second, Self::DEFAULT_REQUESTS_PER_SECOND)
    }

    pub fn timeout(&self) -> std::time::Duration {
        duration_or(&self.timeout, Self::DEFAULT_TIMEOUT)
    }
}

/// Which broker to listen on, to what, and for how long.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttDiscovery {
    /// The broker, `tcp://<IP address>:<port>`, within what the cluster's
    /// administrator lets discovery scan. Listened to anonymously.
    #[schemars(length(min = 9, max = 64), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^tcp://([0-9.]+|[[][0-9A-Fa-f:.]+[]]):[0-9]{1,5}$') && isIP(self.substring(6).substring(0, self.substring(6).lastIndexOf(':')).replace('[', '').replace(']', ''))",
        "message": "must be tcp://<IP address>:<port>: discovery reaches only addresses, which the administrator's ranges can bound",
    }]))]
    pub server: String,
    /// Topic filters subscribed to (`plant/+/status`, `sensors/#`). Each
    /// topic heard whose message is a JSON object is a find.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 256)))]
    pub topics: Vec<String>,
    /// How long each scan listens. Default 30s, at most 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule("10m")]))]
    pub listen: Option<Duration>,
    /// Topics recorded at most, the first heard. Default 100, at most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_topics: Option<i32>,
    /// The user the scan signs in as, for a broker that refuses anonymous
    /// clients: the password always from an entry of the discovery's
    /// `references` (a Secret), never written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<ScanLogin>,
}

/// A user name and password a scan signs in with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.username) != has(self.usernameRef)",
    "message": "give the user name once: username, or usernameRef",
}]))]
pub struct ScanLogin {
    /// The user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// The user name, from an entry of the discovery's `references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<crate::devicelink::ReferenceItem>,
    /// The password, from an entry of the discovery's `references`.
    pub password_ref: crate::devicelink::ReferenceItem,
}

impl MqttDiscovery {
    pub const DEFAULT_LISTEN: std::time::Duration = std::time::Duration::from_secs(30);
    pub const DEFAULT_MAX_TOPICS: usize = 100;

    pub fn listen(&self) -> std::time::Duration {
        duration_or(&self.listen, Self::DEFAULT_LISTEN)
    }

    pub fn max_topics(&self) -> usize {
        positive_or(self.max_topics, Self::DEFAULT_MAX_TOPICS)
    }
}

/// Which BLE peripherals to look for, and how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "size(self.names) + size(self.services) > 0",
    "message": "give names or services: a scan connects only to the peripherals it is asked for, never to whatever is in reach",
}]))]
pub struct BleDiscovery {
    /// Local names, each the start of an advertised name (`MJ_HT` finds
    /// `MJ_HT_V1`), in any case. A peripheral is a find if it matches a
    /// name or advertises a service of `services`.
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(min = 1, max = 248)))]
    pub names: Vec<String>,
    /// Service UUIDs (16-bit such as `180F`, or 128-bit) a peripheral
    /// advertises.
    #[serde(default)]
    #[schemars(
        length(max = 16),
        inner(
            length(max = 36),
            regex(
                pattern = r"^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$"
            )
        )
    )]
    pub services: Vec<String>,
    /// How long each scan listens to advertisements. Default 10s, at most
    /// 2m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule("2m")]))]
    pub listen: Option<Duration>,
    /// Whether each find is connected to, one at a time, for its GATT
    /// services and characteristics. Default true; without it a find holds
    /// what it advertised only, and nothing is proposed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browse: Option<bool>,
    /// Peripherals recorded at most, the first heard. Default 20, at most
    /// 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_devices: Option<i32>,
    /// How long a connect and its service discovery may take. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule("1m")]))]
    pub timeout: Option<Duration>,
}

impl BleDiscovery {
    pub const DEFAULT_LISTEN: std::time::Duration = std::time::Duration::from_secs(10);
    pub const DEFAULT_MAX_DEVICES: usize = 20;
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn listen(&self) -> std::time::Duration {
        duration_or(&self.listen, Self::DEFAULT_LISTEN)
    }

    pub fn browse(&self) -> bool {
        self.browse.unwrap_or(true)
    }

    pub fn max_devices(&self) -> usize {
        positive_or(self.max_devices, Self::DEFAULT_MAX_DEVICES)
    }

    pub fn timeout(&self) -> std::time::Duration {
        duration_or(&self.timeout, Self::DEFAULT_TIMEOUT)
    }

    /// Whether a peripheral advertising `name` and `services` (full UUIDs,
    /// as BlueZ reports them) is one to look into.
    pub fn wants(&self, name: Option<&str>, services: &[String]) -> bool {
        let named = name.is_some_and(|name| {
            let name = name.to_lowercase();
            self.names
                .iter()
                .any(|want| name.starts_with(&want.to_lowercase()))
        });
        named
            || self.services.iter().any(|want| {
                crate::ble::full_uuid(want).is_some_and(|want| services.contains(&want))
            })
    }
}

/// What adopted DeviceLinks get beside what their find says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedDefaults {
    /// The device's extensions, as a device model's `extension`: e.g. an
    /// MQTT broker and topic for every adopted device. Its `*Ref` fields
    /// name entries of the discovery's `references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DeviceExtension>,
    /// How often adopted devices are read. Default as the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [crate::duration::rule(crate::duration::MAX_TEXT)]))]
    pub sync_interval: Option<Duration>,
}

/// What the latest scans did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDiscoveryStatus {
    /// `AdaptorExisted` (the operator's): whether the adaptor pod that
    /// scans runs on the node. `Scanned` (the adaptor's): whether the
    /// latest scan's finds were all written, and if not why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The latest scan that ran to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<ScanSummary>,
    /// The spec's generation the latest scan ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One scan, in numbers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanSummary {
    pub started: Time,
    pub finished: Time,
    /// Socket addresses (address and port) tried.
    pub addresses: i64,
    /// Requests made, connects included.
    pub requests: i64,
    /// Devices that answered.
    pub found: i64,
}

/// A device a discovery found: where, what it says it is, and what
/// answered.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "DiscoveredDevice",
    namespaced,
    status = "DiscoveredDeviceStatus",
    shortname = "found",
    doc = "DiscoveredDevice is one device a DeviceDiscovery found, written by the adaptor that scanned; annotate it edge.cattle.io/adopt=true to have its DeviceLink created.",
    printcolumn(name = "ADDRESS", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "UNIT", type_ = "integer", json_path = ".spec.unitId"),
    printcolumn(
        name = "VENDOR",
        type_ = "string",
        json_path = ".status.identity.vendorName"
    ),
    printcolumn(
        name = "PRODUCT",
        type_ = "string",
        json_path = ".status.identity.productCode"
    ),
    printcolumn(name = "TEMPLATE", type_ = "string", json_path = ".status.template"),
    printcolumn(name = "GONE", type_ = "boolean", json_path = ".status.gone"),
    printcolumn(name = "DEVICELINK", type_ = "string", json_path = ".status.adoptedAs"),
    selectable = ".spec.discovery"
)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredDeviceSpec {
    /// The discovery that found it (its owner).
    pub discovery: String,
    /// The node it was found from.
    pub node: String,
    /// `modbus`, `opcua`, `mqtt` or `ble`.
    pub protocol: DiscoveredProtocol,
    /// Where it answered: `address:port` (Modbus), the endpoint URL of
    /// the server (OPC-UA), the topic it published on (MQTT; the broker
    /// is the discovery's), its MAC address (BLE).
    pub address: String,
    /// The unit id it answered as (Modbus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<i32>,
}

/// The protocol a device was found by.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveredProtocol {
    #[default]
    Modbus,
    Opcua,
    Mqtt,
    Ble,
}

/// What the scans learned of a device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredDeviceStatus {
    /// What it says it is. Modbus: the objects of Read Device
    /// Identification (43/14) it answers, by name (`vendorName`,
    /// `productCode`, `revision`, `vendorUrl`, `productName`, `modelName`,
    /// `userApplicationName`); empty for a device without the function.
    /// OPC-UA: its application description (`applicationUri`,
    /// `productUri`, `applicationName`). MQTT: its `topic`. BLE: what it
    /// advertised (`localName`, `services`: its service UUIDs in order,
    /// comma-separated, `manufacturerId`: `0x` and four hex digits).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identity: BTreeMap<String, String>,
    /// Where its tables answered (Modbus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<AnsweredRange>,
    /// The endpoints it offers (OPC-UA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<OfferedEndpoint>,
    /// Variables its browse found (OPC-UA), breadth first from the Objects
    /// folder, as deep and as many as the discovery says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<BrowsedVariable>,
    /// The fields of its latest JSON message (MQTT), nested objects by
    /// dotted path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<MessageField>,
    /// The GATT characteristics of its services (BLE), when the
    /// discovery browses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub characteristics: Vec<GattCharacteristic>,
    /// Why the latest scan did not look into it, if it did not (OPC-UA:
    /// no endpoint without security, or the session was refused; BLE:
    /// the connection failed, or the discovery does not browse). What an
    /// earlier scan listed is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_browsed: Option<String>,
    /// When a scan first found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
    /// When a scan last found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    /// True when the latest scan did not find it (the discovery keeps it,
    /// and its DeviceLink if adopted, until someone deletes them).
    #[serde(default)]
    pub gone: bool,
    /// The DeviceTemplate of its namespace that says what it is, if one
    /// matches (written by the operator; kept as adopted once adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The DeviceLink made from it, once adopted (of the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_as: Option<String>,
    /// `Adopted`: whether its DeviceLink was created, and if not why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Entries of one table that answered a read: `count` from `offset`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredRange {
    /// The table, named as a ModbusDevice property's `visitor.register`.
    pub register: RegisterKind,
    pub offset: i32,
    pub count: i32,
}

/// An endpoint an OPC-UA server offers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedEndpoint {
    /// As an OPCUADevice's `protocol.securityPolicy` names it (or the
    /// policy's URI when it has no such name).
    pub security_policy: String,
    /// `None`, `Sign` or `SignAndEncrypt`.
    pub security_mode: String,
}

/// A variable an OPC-UA browse found.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrowsedVariable {
    /// As an OPCUADevice property's `visitor.nodeID` takes it.
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// Browse names from the Objects folder down, joined by `/`.
    pub browse_path: String,
    /// The built-in type of its value (`Double`, `Int32`, `Boolean`,
    /// `String`, ...), or its DataType's node ID for other types.
    pub data_type: String,
    /// Whether the server lets it be written (its AccessLevel).
    pub writable: bool,
    /// Its EngineeringUnits property's display name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineering_units: Option<String>,
}

/// A field of a device's JSON message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageField {
    /// As an MQTTDevice property's `path` takes it (`temperature`,
    /// `power.watts`).
    pub path: String,
    /// As an MQTTDevice property's `type`: `int`, `float`, `string`,
    /// `boolean` or `array`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The value heard, as JSON text (shortened past 64 characters).
    pub example: String,
}

/// A characteristic of a BLE peripheral's GATT services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GattCharacteristic {
    /// Its service's UUID, as a BluetoothDevice property's
    /// `visitor.service` takes it.
    pub service: String,
    /// Its UUID, as `visitor.characteristic` takes it.
    pub uuid: String,
    /// What it allows, as GATT names it: `read`, `write`,
    /// `write-without-response`, `notify`, `indicate`, ...
    pub properties: Vec<String>,
}

/// The names identity objects are shown by, by Read Device Identification
/// object id.
pub const MODBUS_IDENTITY_NAMES: [(u8, &str); 7] = [
    (0x00, "vendorName"),
    (0x01, "productCode"),
    (0x02, "revision"),
    (0x03, "vendorUrl"),
    (0x04, "productName"),
    (0x05, "modelName"),
    (0x06, "userApplicationName"),
];

/// The name of a DiscoveredDevice: its discovery, address and unit, as
/// one DNS label (so that its DeviceLink, named alike, fits everywhere a
/// DeviceLink's name goes). The same find always gets the same name: a
/// rescan updates it instead of adding another.
pub fn found_name(discovery: &str, address: &str, unit: Option<i32>) -> String {
    // An OPC-UA server's name is its endpoint's address and path.
    let address = address.strip_prefix("opc.tcp://").unwrap_or(address);
    let mut name = format!("{discovery}-{address}");
    if let Some(unit) = unit {
        name = format!("{name}-{unit}");
    }
    let name: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    crate::labels::node_label_value(name.trim_matches('-'))
}

/// Entries of each answered range a proposal without a template reads:
/// enough to see the device live, few enough that a person reading it
/// sees what it is. Its properties are read-only: a device found on the
/// network is not written until someone says what its registers mean.
pub const PROPOSED_PER_RANGE: i32 = 4;

impl DiscoveredProtocol {
    /// The short name of the adaptor that drives its devices.
    pub fn adaptor(self) -> &'static str {
        match self {
            DiscoveredProtocol::Modbus => "modbus",
            DiscoveredProtocol::Opcua => "opcua",
            DiscoveredProtocol::Mqtt => "mqtt",
            DiscoveredProtocol::Ble => "ble",
        }
    }

    /// The device model its DeviceLinks are of.
    pub fn model(self) -> &'static str {
        match self {
            DiscoveredProtocol::Modbus => "ModbusDevice",
            DiscoveredProtocol::Opcua => "OPCUADevice",
            DiscoveredProtocol::Mqtt => "MQTTDevice",
            DiscoveredProtocol::Ble => "BluetoothDevice",
        }
    }
}

/// The DeviceLink a find becomes when adopted, named as the find: on the
/// discovery's node, at the find's address, with the device object of
/// `template` (the find's match, if any) or else a read-only proposal of
/// what the scan saw; the discovery's defaults fill what that leaves
/// unset.
pub fn proposed_link(
    found: &DiscoveredDevice,
    discovery: &DeviceDiscovery,
    template: Option<&crate::catalog::DeviceTemplate>,
) -> Result<crate::DeviceLink, String> {
    use kube::ResourceExt;
    let protocol = found.spec.protocol;
    let name = found.name_any();
    let mut labels = serde_json::json!({
        DISCOVERY_LABEL: crate::labels::node_label_value(&discovery.name_any()),
        DISCOVERED_LABEL: name,
    });
    let device = match template {
        Some(template) => {
            labels[crate::catalog::TEMPLATE_LABEL] =
                serde_json::json!(crate::labels::node_label_value(&template.name_any()));
            template.device_for(found)?
        }
        None => crate::devicelink::DeviceTemplate {
            metadata: None,
            spec: Some(serde_json::json!({"properties": match protocol {
                DiscoveredProtocol::Modbus => first_entries(found)?,
                DiscoveredProtocol::Opcua => browsed_variables(found)?,
                DiscoveredProtocol::Mqtt => heard_fields(found)?,
                DiscoveredProtocol::Ble => gatt_characteristics(found)?,
            }})),
        },
    };
    let mut spec = match device.spec {
        Some(serde_json::Value::Object(spec)) => serde_json::Value::Object(spec),
        _ => serde_json::json!({}),
    };
    place(&mut spec, found, discovery);
    let defaults = discovery.spec.device_links.clone().unwrap_or_default();
    // Where the model keeps it: MQTTDevice has no `parameters`, and a
    // BluetoothDevice's `protocol` wins over its `parameters`.
    let sync_in = match protocol {
        DiscoveredProtocol::Modbus | DiscoveredProtocol::Opcua => "parameters",
        DiscoveredProtocol::Mqtt | DiscoveredProtocol::Ble => "protocol",
    };
    if let Some(every) = &defaults.sync_interval
        && spec.pointer(&format!("/{sync_in}/syncInterval")).is_none()
    {
        match spec.get_mut(sync_in).and_then(|p| p.as_object_mut()) {
            Some(section) => {
                section.insert("syncInterval".into(), serde_json::json!(every));
            }
            None => spec[sync_in] = serde_json::json!({"syncInterval": every}),
        }
    }
    if let Some(extension) = &defaults.extension
        && spec.get("extension").is_none()
    {
        spec["extension"] = serde_json::to_value(extension).map_err(|e| e.to_string())?;
    }
    let mut link: crate::DeviceLink = serde_json::from_value(serde_json::json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DeviceLink",
        "metadata": {"name": name, "namespace": found.namespace(), "labels": labels},
        "spec": {
            "adaptor": {"node": discovery.spec.node,
                        "name": format!("adaptors.edge.cattle.io/{}", protocol.adaptor())},
            "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": protocol.model()},
            "template": {"metadata": device.metadata, "spec": spec},
        },
    }))
    .map_err(|e| e.to_string())?;
    link.spec.references = referenced(&link.spec, &discovery.spec.references)?;
    Ok(link)
}

/// The entries of the discovery's `references` that the device of `spec`
/// names at its `*Ref` fields, or which field names one it lacks.
fn referenced(
    spec: &crate::devicelink::DeviceLinkSpec,
    references: &[crate::devicelink::DeviceLinkReference],
) -> Result<Vec<crate::devicelink::DeviceLinkReference>, String> {
    let device = spec.template.spec.clone().unwrap_or_default();
    let mut used = Vec::new();
    for path in crate::devicelink::REFERENCE_PATHS {
        let Some(name) = device
            .pointer(&format!("/{}/name", path.replace('.', "/")))
            .and_then(|n| n.as_str())
        else {
            continue;
        };
        match references.iter().find(|r| r.name == name) {
            Some(entry) if !used.contains(entry) => used.push(entry.clone()),
            Some(_) => {}
            None => {
                return Err(format!(
                    "template.spec.{path} names '{name}', which the discovery's spec.references lacks"
                ));
            }
        }
    }
    Ok(used)
}

/// Sets where the device is, from the find (and for MQTT the
/// discovery's broker): a template's other protocol settings stay (an
/// OPC-UA security policy, a Modbus timeout, an MQTT pattern).
fn place(spec: &mut serde_json::Value, found: &DiscoveredDevice, discovery: &DeviceDiscovery) {
    let at = match found.spec.protocol {
        DiscoveredProtocol::Modbus => "/protocol/tcp",
        DiscoveredProtocol::Opcua | DiscoveredProtocol::Mqtt | DiscoveredProtocol::Ble => {
            "/protocol"
        }
    };
    let mut settings = match spec.pointer(at).filter(|v| v.is_object()) {
        Some(given) => given.clone(),
        None => serde_json::json!({}),
    };
    match found.spec.protocol {
        DiscoveredProtocol::Modbus => {
            settings["endpoint"] = serde_json::json!(found.spec.address);
            settings["workerID"] = serde_json::json!(found.spec.unit_id.unwrap_or(1));
            spec["protocol"] = serde_json::json!({"tcp": settings});
        }
        DiscoveredProtocol::Opcua => {
            settings["endpoint"] = serde_json::json!(found.spec.address);
            spec["protocol"] = settings;
        }
        DiscoveredProtocol::Mqtt => {
            let server = discovery.spec.mqtt.as_ref().map(|m| m.server.clone());
            if settings.get("client").is_none_or(|c| !c.is_object()) {
                settings["client"] = serde_json::json!({});
            }
            if settings.get("message").is_none_or(|m| !m.is_object()) {
                settings["message"] = serde_json::json!({});
            }
            settings["client"]["server"] = serde_json::json!(server);
            settings["message"]["topic"] = serde_json::json!(found.spec.address);
            if settings.get("pattern").is_none() {
                settings["pattern"] = serde_json::json!("AttributedMessage");
            }
            spec["protocol"] = settings;
        }
        DiscoveredProtocol::Ble => {
            // The address found, not a name (another peripheral may
            // advertise the same) nor Octopus's older fields beside it.
            settings["endpoint"] = serde_json::json!(found.spec.address);
            if let Some(settings) = settings.as_object_mut() {
                settings.remove("name");
                settings.remove("macAddress");
            }
            spec["protocol"] = settings;
        }
    }
}

/// What a scan learned of `found` (one of its status's lists), or why
/// there is nothing to propose from it.
fn learned<'a, T>(
    found: &'a DiscoveredDevice,
    list: impl Fn(&'a DiscoveredDeviceStatus) -> &'a Vec<T>,
    empty: &str,
) -> Result<&'a [T], String> {
    match found.status.as_ref().map(list) {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("{empty}: there is nothing to propose")),
    }
}

/// Fields of an MQTT find's message as read-only properties at their
/// paths, named for them.
fn heard_fields(found: &DiscoveredDevice) -> Result<Vec<serde_json::Value>, String> {
    let fields = learned(found, |s| &s.fields, "its message had no field")?;
    Ok(fields
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": property_name(&f.path.replace("\\.", "_")),
                "type": f.type_,
                "path": f.path,
                "readOnly": true,
            })
        })
        .collect())
}

/// Characteristics of a BLE find that can be read or notify, as
/// properties named for what GATT calls them (or their UUID): subscribed
/// to when they notify, else read. Values are the bytes in hex until a
/// person says how to decode them (`visitor.dataConverter`, a `type`).
fn gatt_characteristics(found: &DiscoveredDevice) -> Result<Vec<serde_json::Value>, String> {
    let characteristics = learned(
        found,
        |s| &s.characteristics,
        "no characteristic of it was listed",
    )?;
    let mut taken = std::collections::BTreeSet::new();
    let properties: Vec<serde_json::Value> = characteristics
        .iter()
        .filter_map(|c| {
            let can = |p: &str| c.properties.iter().any(|q| q == p);
            let mode = if can("notify") || can("indicate") {
                "Notify"
            } else if can("read") {
                "ReadMany"
            } else {
                return None;
            };
            let name = unique(&mut taken, &property_name(&gatt_name(&c.uuid)));
            Some(serde_json::json!({
                "name": name,
                "accessModes": [mode],
                "visitor": {"service": c.service, "characteristic": c.uuid},
            }))
        })
        .collect();
    if properties.is_empty() {
        return Err(
            "none of its characteristics can be read or notify: there is nothing to propose".into(),
        );
    }
    Ok(properties)
}

/// What GATT calls a characteristic of the Bluetooth SIG's (the common
/// ones of sensors), else its UUID's first eight hex digits.
fn gatt_name(uuid: &str) -> String {
    let value = crate::ble::uuid_value(uuid).unwrap_or_default();
    let short = (value >> 96) as u32;
    let sig = value & ((1u128 << 96) - 1) == crate::ble::uuid_value("0000").unwrap_or_default();
    let known = match short {
        0x2a00 => "device-name",
        0x2a19 => "battery-level",
        0x2a24 => "model-number",
        0x2a25 => "serial-number",
        0x2a26 => "firmware-revision",
        0x2a27 => "hardware-revision",
        0x2a28 => "software-revision",
        0x2a29 => "manufacturer-name",
        0x2a1c | 0x2a6e => "temperature",
        0x2a6f => "humidity",
        0x2a6d => "pressure",
        _ => "",
    };
    if sig && !known.is_empty() {
        known.to_string()
    } else {
        format!("{:08x}", short)
    }
}

/// `base`, or `base-2`, `base-3`, ...: the first not yet in `taken`.
fn unique(taken: &mut std::collections::BTreeSet<String>, base: &str) -> String {
    (1..)
        .map(|n| {
            if n == 1 {
                base.to_string()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|n| taken.insert(n.clone()))
        .expect("some number is free")
}

/// Variables a proposal without a template reads, of those a browse
/// found: enough to see the server live.
pub const PROPOSED_VARIABLES: usize = 16;

/// The first variables of an OPC-UA find whose type an OPCUADevice
/// property can hold, as read-only properties named for their browse
/// names.
fn browsed_variables(found: &DiscoveredDevice) -> Result<Vec<serde_json::Value>, String> {
    let variables = found
        .status
        .as_ref()
        .map(|s| s.variables.as_slice())
        .unwrap_or_default();
    let mut taken = std::collections::BTreeSet::new();
    let properties: Vec<serde_json::Value> = variables
        .iter()
        .filter_map(|v| Some((v, value_type_of(&v.data_type)?)))
        .take(PROPOSED_VARIABLES)
        .map(|(v, type_)| {
            let leaf = v.browse_path.rsplit('/').next().unwrap_or(&v.browse_path);
            // Names are unique within a device; alike leaves of different
            // folders get a number.
            let name = unique(&mut taken, &property_name(leaf));
            let mut property = serde_json::json!({
                "name": name,
                "type": type_,
                "readOnly": true,
                "visitor": {"nodeID": v.node_id, "browseName": v.browse_path},
            });
            if let Some(units) = &v.engineering_units {
                property["description"] = serde_json::json!(format!("In {units}."));
            }
            property
        })
        .collect();
    if properties.is_empty() {
        return Err("its browse found no variable of a type a property can hold: there is nothing to propose".into());
    }
    Ok(properties)
}

/// The property type of an OPC-UA built-in type, if a property can hold it.
fn value_type_of(data_type: &str) -> Option<&'static str> {
    Some(match data_type {
        "Boolean" => "boolean",
        "SByte" => "int8",
        "Byte" => "uint8",
        "Int16" => "int16",
        "UInt16" => "uint16",
        "Int32" => "int32",
        "UInt32" => "uint32",
        "Int64" => "int64",
        "UInt64" => "uint64",
        "Float" => "float",
        "Double" => "double",
        "String" => "string",
        "DateTime" => "datetime",
        "ByteString" => "byteString",
        _ => return None,
    })
}

/// A browse name as a property name: letters, digits, `-`, `_` and `.`.
fn property_name(browse_name: &str) -> String {
    let name: String = browse_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if name.is_empty() {
        "value".into()
    } else {
        name
    }
}

/// The first entries of each range of `found` that answered, as read-only
/// properties named for their table and address (`holding-0`).
fn first_entries(found: &DiscoveredDevice) -> Result<Vec<serde_json::Value>, String> {
    let registers = learned(found, |s| &s.registers, "nothing of it answered a read")?;
    Ok(registers
        .iter()
        .flat_map(|range| {
            let (prefix, type_) = match range.register {
                RegisterKind::HoldingRegister => ("holding", "uint16"),
                RegisterKind::InputRegister => ("input", "uint16"),
                RegisterKind::CoilRegister => ("coil", "boolean"),
                RegisterKind::DiscreteInputRegister => ("discrete", "boolean"),
            };
            (range.offset..range.offset + range.count.min(PROPOSED_PER_RANGE)).map(move |at| {
                serde_json::json!({
                    "name": format!("{prefix}-{at}"),
                    "type": type_,
                    "readOnly": true,
                    "visitor": {"register": range.register, "offset": at},
                })
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_find_is_named_for_its_discovery_address_and_unit() {
        assert_eq!(
            found_name("plant-a", "192.168.10.7:502", Some(1)),
            "plant-a-192-168-10-7-502-1"
        );
        assert_eq!(
            found_name("plant-a", "[fd00::7]:502", Some(3)),
            "plant-a--fd00--7--502-3"
        );
    }

    #[test]
    fn a_find_proposes_its_first_entries_read_only_on_the_discoverys_node() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-a-10-0-0-7-502-1", "namespace": "ns"},
            "spec": {"discovery": "plant-a", "node": "edge-1", "protocol": "modbus",
                     "address": "10.0.0.7:502", "unitId": 1},
            "status": {"registers": [
                {"register": "HoldingRegister", "offset": 0, "count": 125},
                {"register": "CoilRegister", "offset": 10, "count": 2},
            ]},
        }))
        .unwrap();
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-a", "namespace": "ns"},
            "spec": {"node": "edge-1", "modbus": {"targets": [{"cidr": "10.0.0.0/24"}]},
                     "deviceLinks": {"syncInterval": "5s"}},
        }))
        .unwrap();
        let link = proposed_link(&found, &discovery, None).unwrap();
        assert_eq!(link.spec.adaptor.node, "edge-1");
        assert_eq!(link.spec.model.kind, "ModbusDevice");
        let spec = link.spec.template.spec.unwrap();
        assert_eq!(spec["protocol"]["tcp"]["endpoint"], "10.0.0.7:502");
        assert_eq!(spec["parameters"]["syncInterval"], "5s");
        let names: Vec<&str> = spec["properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "holding-0",
                "holding-1",
                "holding-2",
                "holding-3",
                "coil-10",
                "coil-11"
            ]
        );
        assert!(
            spec["properties"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["readOnly"] == true)
        );
    }

    #[test]
    fn a_template_supplies_the_device_and_the_find_its_address() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-a-10-0-0-7-502-3", "namespace": "ns"},
            "spec": {"discovery": "plant-a", "node": "edge-1", "protocol": "modbus",
                     "address": "10.0.0.7:502", "unitId": 3},
            "status": {"identity": {"vendorName": "Acme"}},
        }))
        .unwrap();
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-a", "namespace": "ns"},
            "spec": {"node": "edge-1", "modbus": {"targets": [{"cidr": "10.0.0.0/24"}]},
                     "deviceLinks": {"syncInterval": "5s",
                                     "extension": {"mqtt": {"client": {"server": "tcp://site:1883"},
                                                            "message": {"topic": "site/:name"}}}}},
        }))
        .unwrap();
        let template: crate::catalog::DeviceTemplate = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "acme-meter", "namespace": "ns"},
            "spec": {"protocol": "modbus", "identity": {"vendorName": "Acme"}, "template": {
                "metadata": {"labels": {"kind": "meter"}},
                "spec": {
                    "protocol": {"tcp": {"endpoint": "ignored:1", "workerID": 9}},
                    "parameters": {"timeout": "2s"},
                    "properties": [{"name": "voltage", "type": "float",
                                    "visitor": {"register": "HoldingRegister", "offset": 0}}],
                    "extension": {"mqtt": {"client": {"server": "tcp://own:1883"}}},
                },
            }},
        }))
        .unwrap();
        let link = proposed_link(&found, &discovery, Some(&template)).unwrap();
        assert_eq!(
            link.metadata.labels.unwrap()[crate::catalog::TEMPLATE_LABEL],
            "acme-meter"
        );
        assert_eq!(link.spec.template.metadata.unwrap().labels["kind"], "meter");
        let spec = link.spec.template.spec.unwrap();
        assert_eq!(
            spec["protocol"],
            serde_json::json!({"tcp": {"endpoint": "10.0.0.7:502", "workerID": 3}})
        );
        assert_eq!(spec["properties"][0]["name"], "voltage");
        assert_eq!(
            spec["parameters"],
            serde_json::json!({"timeout": "2s", "syncInterval": "5s"})
        );
        assert_eq!(
            spec["extension"]["mqtt"]["client"]["server"], "tcp://own:1883",
            "the template's own extension is kept"
        );
    }

    #[test]
    fn a_template_names_credentials_and_the_discovery_says_which_secret() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hall-127-0-0-6-4840", "namespace": "ns"},
            "spec": {"discovery": "hall", "node": "edge-1", "protocol": "opcua",
                     "address": "opc.tcp://127.0.0.6:4840"},
            "status": {"identity": {"applicationUri": "urn:acme:press-line"}},
        }))
        .unwrap();
        let template = |protocol: serde_json::Value| -> crate::catalog::DeviceTemplate {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "press", "namespace": "ns"},
                "spec": {"protocol": "opcua", "identity": {"applicationUri": "urn:acme:press-line"},
                         "template": {"spec": {"protocol": protocol}}},
            }))
            .unwrap()
        };
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hall", "namespace": "ns"},
            "spec": {"node": "edge-1", "opcua": {"discoveryUrls": ["opc.tcp://127.0.0.6:4840"]},
                     "references": [
                         {"name": "plant-opcua", "secret": {"name": "opcua-operator"}},
                         {"name": "unused", "secret": {"name": "another"}},
                     ]},
        }))
        .unwrap();
        let by_password = template(serde_json::json!({"basicAuth": {
            "usernameRef": {"name": "plant-opcua", "item": "username"},
            "passwordRef": {"name": "plant-opcua", "item": "password"}}}));
        let link = proposed_link(&found, &discovery, Some(&by_password)).unwrap();
        let names: Vec<&str> = link
            .spec
            .references
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["plant-opcua"], "only what the device uses");
        assert_eq!(
            link.spec.references[0].secret.as_ref().unwrap().name,
            "opcua-operator"
        );

        let unknown = template(serde_json::json!({"basicAuth": {
            "usernameRef": {"name": "elsewhere", "item": "username"}}}));
        let err = proposed_link(&found, &discovery, Some(&unknown)).unwrap_err();
        assert_eq!(
            err,
            "template.spec.protocol.basicAuth.usernameRef names 'elsewhere', which the discovery's spec.references lacks"
        );
    }

    #[test]
    fn an_opcua_find_proposes_its_variables_read_only_at_its_endpoint() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-127-0-0-6-4841-line", "namespace": "ns"},
            "spec": {"discovery": "plant", "node": "edge-1", "protocol": "opcua",
                     "address": "opc.tcp://127.0.0.6:4841/line"},
            "status": {"variables": [
                {"nodeID": "ns=2;s=oven.temperature", "browsePath": "oven/temperature",
                 "dataType": "Double", "writable": false, "engineeringUnits": "°C"},
                {"nodeID": "ns=2;i=7", "browsePath": "oven/recipe", "dataType": "ns=2;i=3002",
                 "writable": true},
                {"nodeID": "ns=2;s=press.temperature", "browsePath": "press/temperature",
                 "dataType": "Float", "writable": true},
            ]},
        }))
        .unwrap();
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant", "namespace": "ns"},
            "spec": {"node": "edge-1", "opcua": {"discoveryUrls": ["opc.tcp://127.0.0.6:4840"]}},
        }))
        .unwrap();
        let link = proposed_link(&found, &discovery, None).unwrap();
        assert_eq!(link.spec.adaptor.name, "adaptors.edge.cattle.io/opcua");
        assert_eq!(link.spec.model.kind, "OPCUADevice");
        let spec = link.spec.template.spec.unwrap();
        assert_eq!(
            spec["protocol"],
            serde_json::json!({"endpoint": "opc.tcp://127.0.0.6:4841/line"})
        );
        assert_eq!(
            spec["properties"],
            serde_json::json!([
                {"name": "temperature", "type": "double", "readOnly": true, "description": "In °C.",
                 "visitor": {"nodeID": "ns=2;s=oven.temperature", "browseName": "oven/temperature"}},
                {"name": "temperature-2", "type": "float", "readOnly": true,
                 "visitor": {"nodeID": "ns=2;s=press.temperature", "browseName": "press/temperature"}},
            ]),
            "a structure's variable is left out; alike names are told apart"
        );
    }

    #[test]
    fn an_mqtt_find_proposes_its_fields_on_its_topic_at_the_discoverys_broker() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hall-plant-hall-1-door", "namespace": "ns"},
            "spec": {"discovery": "hall", "node": "edge-1", "protocol": "mqtt",
                     "address": "plant/hall-1/door"},
            "status": {"fields": [
                {"path": "open", "type": "boolean", "example": "false"},
                {"path": "power.watts", "type": "int", "example": "12"},
            ]},
        }))
        .unwrap();
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hall", "namespace": "ns"},
            "spec": {"node": "edge-1", "mqtt": {"server": "tcp://10.0.0.5:1883", "topics": ["plant/#"]},
                     "deviceLinks": {"syncInterval": "2s"}},
        }))
        .unwrap();
        let link = proposed_link(&found, &discovery, None).unwrap();
        assert_eq!(link.spec.model.kind, "MQTTDevice");
        let spec = link.spec.template.spec.unwrap();
        assert_eq!(
            spec["protocol"],
            serde_json::json!({"client": {"server": "tcp://10.0.0.5:1883"},
                               "message": {"topic": "plant/hall-1/door"},
                               "pattern": "AttributedMessage", "syncInterval": "2s"}),
            "an MQTTDevice keeps its sync interval in protocol: it has no parameters"
        );
        assert!(spec.get("parameters").is_none());
        assert_eq!(
            spec["properties"][1],
            serde_json::json!({"name": "power.watts", "type": "int", "path": "power.watts", "readOnly": true})
        );
    }

    #[test]
    fn a_ble_find_proposes_what_its_characteristics_allow_at_its_address() {
        let found: DiscoveredDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "room-10-00-00-00-00-01", "namespace": "ns"},
            "spec": {"discovery": "room", "node": "edge-1", "protocol": "ble",
                     "address": "10:00:00:00:00:01"},
            "status": {"characteristics": [
                {"service": "0000180f-0000-1000-8000-00805f9b34fb",
                 "uuid": "00002a19-0000-1000-8000-00805f9b34fb", "properties": ["read", "notify"]},
                {"service": "f000aa00-0451-4000-b000-000000000001",
                 "uuid": "f000aa01-0451-4000-b000-000000000001", "properties": ["read", "write"]},
                {"service": "f000aa00-0451-4000-b000-000000000002",
                 "uuid": "f000aa01-0451-4000-b000-000000000002", "properties": ["read"]},
                {"service": "f000aa00-0451-4000-b000-000000000001",
                 "uuid": "f000aa09-0451-4000-b000-000000000001", "properties": ["write"]},
            ]},
        }))
        .unwrap();
        let discovery: DeviceDiscovery = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "room", "namespace": "ns"},
            "spec": {"node": "edge-1", "ble": {"names": ["MJ_HT"]},
                     "deviceLinks": {"syncInterval": "5s"}},
        }))
        .unwrap();
        let link = proposed_link(&found, &discovery, None).unwrap();
        assert_eq!(link.spec.model.kind, "BluetoothDevice");
        let spec = link.spec.template.spec.unwrap();
        assert_eq!(
            spec["protocol"],
            serde_json::json!({"endpoint": "10:00:00:00:00:01", "syncInterval": "5s"})
        );
        let properties = spec["properties"].as_array().unwrap();
        let names: Vec<&str> = properties
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["battery-level", "f000aa01", "f000aa01-2"],
            "named by GATT or their UUID, none twice; a write-only one is not read"
        );
        assert_eq!(properties[0]["accessModes"], serde_json::json!(["Notify"]));
        assert_eq!(
            properties[1]["accessModes"],
            serde_json::json!(["ReadMany"])
        );
        assert_eq!(
            properties[1]["visitor"],
            serde_json::json!({"service": "f000aa00-0451-4000-b000-000000000001",
                               "characteristic": "f000aa01-0451-4000-b000-000000000001"})
        );
    }

    #[test]
    fn a_ble_discovery_wants_its_names_and_services_only() {
        let ble = BleDiscovery {
            names: vec!["mj_ht".into()],
            services: vec!["180F".into()],
            ..BleDiscovery::default()
        };
        let battery = "0000180f-0000-1000-8000-00805f9b34fb".to_string();
        assert!(ble.wants(Some("MJ_HT_V1"), &[]));
        assert!(ble.wants(None, std::slice::from_ref(&battery)));
        assert!(!ble.wants(Some("LAMP"), &[]));
        assert!(
            !ble.wants(Some("X-MJ_HT"), &[]),
            "a name is matched from its start"
        );
    }

    #[test]
    fn a_long_name_fits_a_dns_label_and_stays_apart() {
        let long = "d".repeat(60);
        let a = found_name(&long, "10.0.0.1:502", Some(1));
        let b = found_name(&long, "10.0.0.2:502", Some(1));
        assert!(a.len() <= 63, "{a}");
        assert_ne!(a, b);
    }
}
