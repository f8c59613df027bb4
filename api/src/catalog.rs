//! DeviceTemplate, `edge.cattle.io/v1alpha1` (devicelink's own): the
//! catalog that says what a found device is. A template matches finds by
//! what they say of themselves and supplies the device object their
//! DeviceLink gets: properties with types, units and arithmetic, and
//! extensions (docs/discovery.md).

use std::collections::BTreeMap;

use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    ble::full_uuid,
    devicelink::{self, DeviceTemplate as DeviceObject},
    discovery::{DiscoveredDevice, DiscoveredProtocol},
};

/// Label of a DeviceLink made from a template: which one.
pub const TEMPLATE_LABEL: &str = "edge.cattle.io/device-template";

/// A kind of device: which finds are one, and the device object each
/// gets when adopted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "DeviceTemplate",
    namespaced,
    doc = "DeviceTemplate is a catalog entry: the DiscoveredDevices whose identity it matches become DeviceLinks with its properties and extensions when adopted.",
    printcolumn(name = "PROTOCOL", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(
        name = "VENDOR",
        type_ = "string",
        json_path = ".spec.identity.vendorName"
    ),
    printcolumn(
        name = "PRODUCT",
        type_ = "string",
        json_path = ".spec.identity.productCode"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = no_reference_rules()))]
pub struct DeviceTemplateSpec {
    /// The protocol of the finds it matches: `modbus`, `opcua`, `mqtt`
    /// or `ble`.
    pub protocol: DiscoveredProtocol,
    /// What a find must say of itself, entry by entry: each must equal
    /// the find's `status.identity` entry of the same name (Modbus:
    /// `vendorName`, `productCode`, `revision`, `productName`,
    /// `modelName`, ...; OPC-UA: `applicationUri`, `productUri`,
    /// `applicationName`; BLE: `localName`, `manufacturerId`). MQTT's
    /// `topic` is a topic filter the find's topic must match
    /// (`plant/+/meter`); BLE's `services` lists service UUIDs (any form,
    /// comma-separated) the find must all advertise. When several
    /// templates match a find, the one with the most entries wins, then
    /// the first by name.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 16))]
    pub identity: BTreeMap<String, String>,
    /// The device object of each match's DeviceLink, as a DeviceLink's
    /// `spec.template`: labels, and the model's spec without the address
    /// (adoption sets the find's). Strings may hold placeholders filled
    /// from the find: `${name}`, `${discovery}`, `${node}`, `${address}`,
    /// `${host}`, `${port}`, `${unitId}` and `${identity.<entry>}`.
    /// Protocol credentials are `*Ref` fields naming an entry of the
    /// discovery's `references`, which says which Secret; the
    /// extension has none (the discovery's `deviceLinks.extension` does).
    pub template: DeviceObject,
}

/// One CEL rule per `*Ref` path of the extension: a template may name
/// credentials for its protocol settings, which go to where the find is,
/// but not for an extension, whose server the template would choose.
fn no_reference_rules() -> Value {
    let rules: Vec<Value> = devicelink::REFERENCE_PATHS
        .iter()
        .filter(|path| path.starts_with("extension."))
        .map(|path| {
            serde_json::json!({
                "rule": format!("!{}.hasValue()", devicelink::optional_template_path(path)),
                "message": "a template's extension cannot name credentials: a template chooses the extension's server, so a discovery's deviceLinks.extension gives both",
                "fieldPath": format!(".template.spec.{path}"),
                "reason": "FieldValueForbidden",
            })
        })
        .collect();
    Value::Array(rules)
}

impl DeviceTemplate {
    /// Whether `found` is of this kind: a find of the same namespace and
    /// protocol whose identity holds every entry of the template's.
    pub fn matches(&self, found: &DiscoveredDevice) -> bool {
        let identity = found.status.as_ref().map(|s| &s.identity);
        self.namespace() == found.namespace()
            && self.spec.protocol == found.spec.protocol
            && self.spec.identity.iter().all(|(key, want)| {
                let got = identity.and_then(|i| i.get(key));
                match (self.spec.protocol, key.as_str(), got) {
                    (DiscoveredProtocol::Mqtt, "topic", Some(topic)) => topic_matches(want, topic),
                    (DiscoveredProtocol::Ble, "services", Some(advertised)) => {
                        services_advertised(want, advertised)
                    }
                    (_, _, got) => got == Some(want),
                }
            })
    }

    /// The device object for `found`, its placeholders filled.
    pub fn device_for(&self, found: &DiscoveredDevice) -> Result<DeviceObject, String> {
        let values = placeholders(found);
        let filled = fill(
            &serde_json::to_value(&self.spec.template).map_err(|e| e.to_string())?,
            &values,
            "template",
        )
        .map_err(|e| format!("DeviceTemplate {}: {e}", self.name_any()))?;
        serde_json::from_value(filled)
            .map_err(|e| format!("DeviceTemplate {}: {e}", self.name_any()))
    }
}

/// Whether every UUID of `wanted` (comma-separated, in any of the forms
/// GATT UUIDs are written) is among the `advertised` ones (a BLE find's
/// `services`).
fn services_advertised(wanted: &str, advertised: &str) -> bool {
    let advertised: Vec<Option<String>> = advertised.split(',').map(full_uuid).collect();
    wanted
        .split(',')
        .map(full_uuid)
        .all(|want| want.is_some() && advertised.contains(&want))
}

/// Whether `topic` matches the MQTT topic filter `filter`: `+` stands for
/// one level, a last `#` for any number.
fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for wanted in filter.split('/') {
        match (wanted, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (wanted, Some(level)) if wanted == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// The template that says what `found` is, of those given: of those that
/// match, the one with the most identity entries, then the first by name.
pub fn best_match<'a>(
    templates: impl IntoIterator<Item = &'a DeviceTemplate>,
    found: &DiscoveredDevice,
) -> Option<&'a DeviceTemplate> {
    templates
        .into_iter()
        .filter(|t| t.matches(found))
        .min_by(|a, b| {
            (b.spec.identity.len(), a.name_any()).cmp(&(a.spec.identity.len(), b.name_any()))
        })
}

/// What a template's placeholders stand for, for `found`.
fn placeholders(found: &DiscoveredDevice) -> BTreeMap<String, String> {
    // Host and port of a network address: a Modbus `address:port`, an
    // OPC-UA endpoint URL; a topic or a MAC address has none.
    let socket = match found.spec.protocol {
        DiscoveredProtocol::Modbus => Some(found.spec.address.as_str()),
        DiscoveredProtocol::Opcua => found
            .spec
            .address
            .strip_prefix("opc.tcp://")
            .and_then(|rest| rest.split('/').next()),
        DiscoveredProtocol::Mqtt | DiscoveredProtocol::Ble => None,
    };
    let (host, port) = match socket.and_then(|s| s.rsplit_once(':')) {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => ("", ""),
    };
    let mut values = BTreeMap::from([
        ("name".to_string(), found.name_any()),
        ("discovery".to_string(), found.spec.discovery.clone()),
        ("node".to_string(), found.spec.node.clone()),
        ("address".to_string(), found.spec.address.clone()),
        ("host".to_string(), host.to_string()),
        ("port".to_string(), port.to_string()),
        (
            "unitId".to_string(),
            found
                .spec
                .unit_id
                .map(|u| u.to_string())
                .unwrap_or_default(),
        ),
    ]);
    for (key, value) in found.status.iter().flat_map(|s| &s.identity) {
        values.insert(format!("identity.{key}"), value.clone());
    }
    values
}

/// `value` with every `${key}` in its strings replaced by `values[key]`;
/// an unknown key is an error naming where it is (`at`, a field path).
fn fill(value: &Value, values: &BTreeMap<String, String>, at: &str) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => {
            Value::String(fill_text(text, values).map_err(|e| format!("{at}: {e}"))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| fill(item, values, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| Ok((key.clone(), fill(item, values, &format!("{at}.{key}"))?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn fill_text(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("'${{' without its '}}' in {text:?}"))?;
        let key = &after[..end];
        let value = values.get(key).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            format!(
                "unknown placeholder ${{{key}}} (this find has {})",
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(identity: Value) -> DiscoveredDevice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plant-10-0-0-7-502-1", "namespace": "ns"},
            "spec": {"discovery": "plant", "node": "edge-1", "protocol": "modbus",
                     "address": "10.0.0.7:502", "unitId": 1},
            "status": {"identity": identity},
        }))
        .unwrap()
    }

    fn template(name: &str, identity: Value, spec: Value) -> DeviceTemplate {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"protocol": "modbus", "identity": identity, "template": {"spec": spec}},
        }))
        .unwrap()
    }

    #[test]
    fn the_most_specific_matching_template_wins() {
        let meter = find(
            serde_json::json!({"vendorName": "Acme", "productCode": "PM-200", "revision": "1.4"}),
        );
        let any_acme = template(
            "any-acme",
            serde_json::json!({"vendorName": "Acme"}),
            Value::Null,
        );
        let pm200 = template(
            "pm-200",
            serde_json::json!({"vendorName": "Acme", "productCode": "PM-200"}),
            Value::Null,
        );
        let pm300 = template(
            "pm-300",
            serde_json::json!({"vendorName": "Acme", "productCode": "PM-300"}),
            Value::Null,
        );
        let all = [any_acme.clone(), pm300.clone(), pm200.clone()];
        assert_eq!(
            best_match(&all, &meter).map(|t| t.name_any()),
            Some("pm-200".into())
        );
        assert_eq!(
            best_match([&any_acme, &pm300], &meter).map(|t| t.name_any()),
            Some("any-acme".into())
        );
        let plain = find(serde_json::json!({}));
        assert!(best_match(&all, &plain).is_none());
        let mut elsewhere = pm200.clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(
            !elsewhere.matches(&meter),
            "a template serves its own namespace"
        );
    }

    #[test]
    fn an_mqtt_topic_matches_a_filter() {
        assert!(topic_matches("plant/+/meter", "plant/hall-1/meter"));
        assert!(topic_matches("plant/#", "plant/hall-1/meter"));
        assert!(topic_matches("plant/hall-1/meter", "plant/hall-1/meter"));
        assert!(!topic_matches("plant/+/meter", "plant/hall-1/drive"));
        assert!(!topic_matches("plant/+", "plant/hall-1/meter"));
        assert!(!topic_matches("plant/+/meter/x", "plant/hall-1/meter"));
    }

    #[test]
    fn ble_services_match_in_any_form_and_all_must_be_advertised() {
        let advertised =
            "0000180f-0000-1000-8000-00805f9b34fb,226c0000-6476-4566-7562-66734470666d";
        assert!(services_advertised("180F", advertised));
        assert!(services_advertised(
            "226C000064764566756266734470666D",
            advertised
        ));
        assert!(services_advertised(
            "180f,226c0000-6476-4566-7562-66734470666d",
            advertised
        ));
        assert!(!services_advertised("180f,181a", advertised));
        assert!(!services_advertised("battery", advertised));
    }

    #[test]
    fn placeholders_are_filled_from_the_find() {
        let meter = find(serde_json::json!({"vendorName": "Acme", "productCode": "PM-200"}));
        let t = template(
            "pm-200",
            serde_json::json!({"vendorName": "Acme"}),
            serde_json::json!({"properties": [{"name": "voltage",
                "description": "${identity.productCode} at ${host} port ${port}, unit ${unitId} (${name})"}]}),
        );
        let device = t.device_for(&meter).unwrap();
        assert_eq!(
            device.spec.unwrap()["properties"][0]["description"],
            "PM-200 at 10.0.0.7 port 502, unit 1 (plant-10-0-0-7-502-1)"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named_with_where_it_is() {
        let meter = find(serde_json::json!({"vendorName": "Acme"}));
        let t = template(
            "pm-200",
            serde_json::json!({"vendorName": "Acme"}),
            serde_json::json!({"properties": [{"name": "${identity.serial}"}]}),
        );
        let err = t.device_for(&meter).unwrap_err();
        assert!(
            err.starts_with("DeviceTemplate pm-200: template.spec.properties[0].name: unknown placeholder ${identity.serial}"),
            "{err}"
        );
    }
}
