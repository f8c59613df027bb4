//! DeviceLink, `edge.cattle.io/v1alpha1`: links a device model instance to the
//! adaptor that drives it on a node.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::preserve_unknown_object;

/// Desired state of a DeviceLink.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "DeviceLink",
    namespaced,
    status = "DeviceLinkStatus",
    shortname = "dl",
    doc = "DeviceLink connects one device, described by a device model template, to the adaptor that drives it on a node.",
    printcolumn(name = "KIND", type_ = "string", json_path = ".spec.model.kind"),
    printcolumn(name = "NODE", type_ = "string", json_path = ".spec.adaptor.node"),
    printcolumn(name = "ADAPTOR", type_ = "string", json_path = ".spec.adaptor.name"),
    printcolumn(
        name = "PHASE",
        type_ = "string",
        json_path = ".status.conditions[-1].type"
    ),
    printcolumn(
        name = "STATUS",
        type_ = "string",
        json_path = ".status.conditions[-1].reason"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.adaptor.node",
    selectable = ".spec.adaptor.name",
    selectable = ".spec.model.kind"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = reference_rules()))]
pub struct DeviceLinkSpec {
    /// The adaptor that drives the device, and the node it runs on.
    pub adaptor: DeviceAdaptor,

    /// The device model (a CRD in devices.edge.cattle.io) the device is an
    /// instance of. Cannot change after creation.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "cannot change: delete the DeviceLink and create it again to use another model",
    }]))]
    pub model: DeviceModel,

    /// Secrets, ConfigMaps and DeviceLink fields that the device's settings
    /// refer to with `{name, item}` (the `*Ref` fields), so that credentials
    /// stay in Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub references: Vec<DeviceLinkReference>,

    /// The device to create: labels and the spec of the model instance.
    pub template: DeviceTemplate,
}

/// Where in a device spec a `*Ref` field can be, for every model: the MQTT
/// extension, MQTTDevice's own client options and OPC-UA's credentials and
/// certificates (a test checks this list against the models' types). The
/// DeviceLink schema types these paths (and only these) inside the otherwise
/// free-form `template.spec`, so that the API server can check that each
/// names an entry of `spec.references`.
pub const REFERENCE_PATHS: &[&str] = &[
    "extension.mqtt.client.basicAuth.usernameRef",
    "extension.mqtt.client.basicAuth.passwordRef",
    "extension.mqtt.client.tlsConfig.caFilePEMRef",
    "extension.mqtt.client.tlsConfig.certFilePEMRef",
    "extension.mqtt.client.tlsConfig.keyFilePEMRef",
    "protocol.client.basicAuth.usernameRef",
    "protocol.client.basicAuth.passwordRef",
    "protocol.client.tlsConfig.caFilePEMRef",
    "protocol.client.tlsConfig.certFilePEMRef",
    "protocol.client.tlsConfig.keyFilePEMRef",
    "protocol.basicAuth.usernameRef",
    "protocol.basicAuth.passwordRef",
    "protocol.certificateAuth.certFilePEMRef",
    "protocol.certificateAuth.keyFilePEMRef",
    "protocol.issuedTokenAuth.tokenRef",
    "protocol.tlsConfig.caFilePEMRef",
    "protocol.tlsConfig.certFilePEMRef",
    "protocol.tlsConfig.keyFilePEMRef",
];

/// `path` of the template's spec as a CEL optional chain from the object
/// holding `template` (`self.template.?spec.?extension...`): it has a
/// value only when every step is set.
pub(crate) fn optional_template_path(path: &str) -> String {
    path.split('.')
        .fold("self.template.?spec".to_string(), |acc, seg| {
            format!("{acc}.?{seg}")
        })
}

/// One CEL rule per [`REFERENCE_PATHS`] entry: if the template sets it, its
/// `name` must be an entry of `spec.references`.
fn reference_rules() -> serde_json::Value {
    let rules: Vec<serde_json::Value> = REFERENCE_PATHS
        .iter()
        .map(|path| {
            let optional = optional_template_path(path);
            serde_json::json!({
                "rule": format!(
                    "!{optional}.?name.hasValue() || (has(self.references) && self.references.exists(r, r.name == self.template.spec.{path}.name))"
                ),
                "messageExpression": format!(
                    "'names \\'' + self.template.spec.{path}.name + '\\', which is not an entry of spec.references'"
                ),
                "fieldPath": format!(".template.spec.{path}.name"),
                "reason": "FieldValueInvalid",
            })
        })
        .collect();
    serde_json::Value::Array(rules)
}

/// Which adaptor drives the device, and where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.name == oldSelf.name",
    "message": "name cannot change: delete the DeviceLink and create it again to use another adaptor",
    "fieldPath": ".name",
}]))]
pub struct DeviceAdaptor {
    /// Name of the node whose adaptor reaches the device. May change: the
    /// device then moves to the adaptor on the new node.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [crate::schema::node_name_rule()]))]
    pub node: String,

    /// Name of the adaptor, for example `adaptors.edge.cattle.io/modbus`.
    /// Cannot change after creation.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",
        "message": "must be <domain>/<adaptor>, e.g. adaptors.edge.cattle.io/modbus",
    }]))]
    pub name: String,

    /// Deprecated in Octopus: adaptor parameters now belong to the device model. Kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub parameters: Option<serde_json::Value>,
}

/// The model a device is an instance of, named like a Kubernetes type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceModel {
    /// API version of the model, for example `devices.edge.cattle.io/v1alpha1`.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/v[0-9]+((alpha|beta)[0-9]+)?$')",
        "message": "must be <group>/<version>, e.g. devices.edge.cattle.io/v1alpha1",
    }]))]
    pub api_version: String,
    /// Kind of the model, for example `ModbusDevice`.
    #[schemars(length(min = 1, max = 63), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[A-Z][A-Za-z0-9]*$')",
        "message": "must be a Kind in UpperCamelCase, e.g. ModbusDevice",
    }]))]
    pub kind: String,
}

/// Labels for the device object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceMeta {
    /// Labels to put on the device object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::labels")]
    pub labels: BTreeMap<String, String>,
}

/// The device object to create.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceTemplate {
    /// Metadata of the device object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<DeviceMeta>,

    /// Spec of the device object; its schema is the model's, and the API
    /// server checks it when the device object is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::template_spec")]
    pub spec: Option<serde_json::Value>,
}

/// A named source of values that device settings refer to with `{name, item}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.secret), has(self.configMap), has(self.downwardAPI)].filter(x, x).size() == 1",
    "message": "set exactly one of secret, configMap or downwardAPI",
}]))]
pub struct DeviceLinkReference {
    /// Name the device settings use to refer to this source.
    #[schemars(length(min = 1, max = 63), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",
        "message": "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    }]))]
    pub name: String,

    /// A Secret in the DeviceLink's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectItemsSource>,

    /// A ConfigMap in the DeviceLink's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ObjectItemsSource>,

    /// Fields of the DeviceLink itself.
    #[serde(
        default,
        rename = "downwardAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub downward_api: Option<DownwardApiSource>,
}

/// A Secret or ConfigMap, optionally narrowed to some of its keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ObjectItemsSource {
    /// Name of the object in the DeviceLink's namespace.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "message": "must be an object name: lower-case letters, digits, '-' and '.'",
    }]))]
    pub name: String,
    /// Keys to use; all keys when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "set"))]
    pub items: Vec<String>,
}

/// DeviceLink fields exposed as reference items.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DownwardApiSource {
    /// The items, each a name and the field it takes its value from.
    #[schemars(length(min = 1, max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub items: Vec<DownwardApiItem>,
}

/// One DeviceLink field exposed under a name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiItem {
    /// Item name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The DeviceLink field: metadata.name, metadata.namespace, metadata.labels['x'], metadata.annotations['x'] or status fields.
    pub field_ref: ObjectFieldSelector,
}

/// Selects a field of an object, as in core/v1 ObjectFieldSelector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// Version of the schema the field path is written in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Path of the field: metadata.name, metadata.namespace, metadata.uid,
    /// metadata.labels['KEY'], metadata.annotations['KEY'], or a status field.
    #[schemars(length(min = 1, max = 512), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^(metadata[.](name|namespace|uid|labels|annotations)|metadata[.](labels|annotations)[[]\\'[^\\']+\\'[]]|status([.][A-Za-z0-9]+)*)$')",
        "message": "must be metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'] or status.FIELD",
    }]))]
    pub field_path: String,
}

/// Refers to one item of one entry of `spec.references`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ReferenceItem {
    /// Name of the entry in `spec.references`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Key within that entry: a Secret or ConfigMap key, or a downwardAPI item name.
    #[schemars(length(min = 1, max = 253))]
    pub item: String,
}

/// Observed state of a DeviceLink.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkStatus {
    /// The condition pipeline: NodeExisted, ModelExisted, AdaptorExisted, DeviceCreated, DeviceConnected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<DeviceLinkCondition>,

    /// The generation of the spec these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Node the device is reached from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Hostname address of that node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_host_name: String,
    /// Internal IP of that node.
    #[serde(
        default,
        rename = "nodeInternalIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_internal_ip: String,
    /// Internal DNS name of that node.
    #[serde(
        default,
        rename = "nodeInternalDNS",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_internal_dns: String,
    /// External IP of that node.
    #[serde(
        default,
        rename = "nodeExternalIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_external_ip: String,
    /// External DNS name of that node.
    #[serde(
        default,
        rename = "nodeExternalDNS",
        skip_serializing_if = "String::is_empty"
    )]
    pub node_external_dns: String,

    /// The model that was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<DeviceModel>,

    /// The adaptor that was found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adaptor_name: String,

    /// Kept for Octopus compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_template_generation: Option<i64>,

    /// Writes from MQTT the adaptor refused (written by the adaptor, at
    /// most every ten seconds; the operator records each rise as a
    /// WriteRefused Event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_writes: Option<RefusedWrites>,
}

/// The writes from MQTT an adaptor refused for a device, all told.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedWrites {
    /// How many, since the DeviceLink was created.
    #[schemars(range(min = 0))]
    pub count: i64,
    /// Why the last one was refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_message: String,
    /// When the last one was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<Time>,
}

/// One stage of the DeviceLink pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLinkCondition {
    /// Stage: NodeExisted, ModelExisted, AdaptorExisted, DeviceCreated or DeviceConnected.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// When status, reason or message last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened and what to do about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl DeviceLink {
    /// The conditions, or none yet.
    pub fn conditions(&self) -> &[DeviceLinkCondition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }

    /// The writes from MQTT its adaptor refused, if any were.
    pub fn refused_writes(&self) -> Option<&RefusedWrites> {
        self.status.as_ref()?.refused_writes.as_ref()
    }
}

/// Where the MQTT extension's `*Ref` fields are: the settings of the broker
/// connection that carries a device's status (the console reads these).
pub const MQTT_EXTENSION_REFERENCE_PATHS: &str = "extension.mqtt.";

impl DeviceLinkSpec {
    /// The template's MQTT extension (`spec.template.spec.extension.mqtt`),
    /// if it has one; an error names what does not parse.
    pub fn mqtt_extension(&self) -> Option<Result<crate::mqtt::MqttOptions, String>> {
        let mqtt = self.template.spec.as_ref()?.get("extension")?.get("mqtt")?;
        Some(
            serde_json::from_value(mqtt.clone())
                .map_err(|e| format!("spec.template.spec.extension.mqtt: {e}")),
        )
    }

    /// The entries of `references` that the template uses at a `*Ref` field
    /// whose path starts with `prefix` (one of [`REFERENCE_PATHS`]'s).
    pub fn references_used_under(&self, prefix: &str) -> Vec<&DeviceLinkReference> {
        let Some(template) = &self.template.spec else {
            return Vec::new();
        };
        let used: std::collections::BTreeSet<&str> = REFERENCE_PATHS
            .iter()
            .filter(|path| path.starts_with(prefix))
            .filter_map(|path| template.pointer(&format!("/{}", path.replace('.', "/"))))
            .filter_map(|by_ref| by_ref.get("name")?.as_str())
            .collect();
        self.references
            .iter()
            .filter(|r| used.contains(r.name.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_used_under_a_prefix_are_those_its_ref_fields_name() {
        let spec: DeviceLinkSpec = serde_json::from_value(serde_json::json!({
            "adaptor": {"node": "edge-1", "name": "adaptors.edge.cattle.io/opcua"},
            "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "OPCUADevice"},
            "references": [
                {"name": "broker", "secret": {"name": "mqtt-auth"}},
                {"name": "ca", "configMap": {"name": "broker-ca"}},
                {"name": "server", "secret": {"name": "opcua-auth"}},
            ],
            "template": {"spec": {
                "protocol": {"basicAuth": {"passwordRef": {"name": "server", "item": "password"}}},
                "extension": {"mqtt": {"client": {
                    "basicAuth": {"passwordRef": {"name": "broker", "item": "password"}},
                    "tlsConfig": {"caFilePEMRef": {"name": "ca", "item": "ca.pem"}},
                }}},
            }},
        }))
        .unwrap();
        let names = |prefix| {
            spec.references_used_under(prefix)
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(MQTT_EXTENSION_REFERENCE_PATHS), ["broker", "ca"]);
        assert_eq!(names("protocol."), ["server"]);
        assert_eq!(names(""), ["broker", "ca", "server"]);
    }
}

#[cfg(test)]
pub(crate) mod reference_paths {
    use std::collections::BTreeSet;

    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaProps, JSONSchemaPropsOrArray,
    };

    use super::REFERENCE_PATHS;

    /// The paths, under `path`, of every field typed as a [`super::ReferenceItem`]
    /// (arrays marked `[]`).
    fn references(schema: &JSONSchemaProps, path: &str, found: &mut BTreeSet<String>) {
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
            references(items, &format!("{path}[]"), found);
        }
        for (name, field) in schema.properties.iter().flatten() {
            let here = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let is_reference = field
                .properties
                .as_ref()
                .is_some_and(|p| p.len() == 2 && p.contains_key("name") && p.contains_key("item"));
            if is_reference {
                found.insert(here);
            } else {
                references(field, &here, found);
            }
        }
    }

    /// The paths of the reference fields of `crd`'s spec, in every version.
    pub(crate) fn spec_references(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        found: &mut BTreeSet<String>,
    ) {
        for version in &crd.spec.versions {
            let spec = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| s.properties.as_ref())
                .and_then(|p| p.get("spec"))
                .expect("the resource has a spec");
            references(spec, "", found);
        }
    }

    #[test]
    fn reference_paths_are_every_reference_field_of_every_model() {
        let mut found = BTreeSet::new();
        for crd in crate::all_crds()
            .iter()
            .filter(|c| c.spec.group == "devices.edge.cattle.io")
        {
            spec_references(crd, &mut found);
        }
        let listed: BTreeSet<String> = REFERENCE_PATHS.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            listed, found,
            "REFERENCE_PATHS must list every *Ref field of the models' specs, and only those"
        );
    }
}
