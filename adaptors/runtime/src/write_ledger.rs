//! What writes from MQTT left on a device: so that a `WriteOnce` property
//! takes one write, and so that the status says when a property holds a
//! value written from MQTT rather than its spec's (`mqttWrite` beside the
//! property's status).
//!
//! An entry lasts until the property's spec changes: the adaptor then
//! writes the spec's value, if there is one, and a `WriteOnce` property may
//! be written again. Entries are kept in the device's status, so they
//! outlive an adaptor restart, except for properties with a spec value,
//! which the adaptor writes again when it starts.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
};

use devicelink_mqtt::write::{Property, Refusal, Writes};
use serde_json::{Map, Value, json};

/// The status field of a property that holds a value written from MQTT.
pub const FIELD: &str = "mqttWrite";

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The value written, as the status shows values: a string as it is,
    /// anything else as JSON.
    value: String,
    /// When (RFC 3339).
    at: String,
    /// The property's spec when it was written.
    spec: u64,
}

/// The writes from MQTT that hold on one device, by property.
#[derive(Debug, Default)]
pub struct WriteLedger {
    entries: BTreeMap<String, Entry>,
}

/// Each property's spec (by name, from `spec.properties`): a digest of
/// it, and whether it gives a value.
fn specs(device: &Value) -> BTreeMap<String, (u64, bool)> {
    let Some(properties) = device.pointer("/spec/properties").and_then(Value::as_array) else {
        return BTreeMap::new();
    };
    properties
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let mut hasher = DefaultHasher::new();
            p.to_string().hash(&mut hasher);
            let has_value = p.get("value").is_some_and(|v| !v.is_null());
            Some((name.to_string(), (hasher.finish(), has_value)))
        })
        .collect()
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl WriteLedger {
    /// The writes the device's status records, for properties whose spec
    /// gives no value (the others are written from the spec at start).
    pub fn load(device: &Value) -> WriteLedger {
        let specs = specs(device);
        let mut entries = BTreeMap::new();
        let recorded = device
            .pointer("/status/properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for property in recorded {
            let (Some(name), Some(write)) = (
                property.get("name").and_then(Value::as_str),
                property.get(FIELD),
            ) else {
                continue;
            };
            let Some(&(spec, false)) = specs.get(name) else {
                continue;
            };
            let (Some(value), Some(at)) = (
                write.get("value").and_then(Value::as_str),
                write.get("at").and_then(Value::as_str),
            ) else {
                continue;
            };
            entries.insert(
                name.to_string(),
                Entry {
                    value: value.to_string(),
                    at: at.to_string(),
                    spec,
                },
            );
        }
        WriteLedger { entries }
    }

    /// Forgets the writes of properties whose spec changed or went.
    pub fn follow_spec(&mut self, device: &Value) {
        let specs = specs(device);
        self.entries
            .retain(|name, e| specs.get(name).is_some_and(|(spec, _)| *spec == e.spec));
    }

    /// Refusals for `WriteOnce` properties in `values` that were written
    /// already.
    pub fn refusals(&self, values: &Map<String, Value>, properties: &[Property]) -> Vec<Refusal> {
        values
            .keys()
            .filter(|name| {
                properties
                    .iter()
                    .any(|p| &p.name == *name && p.writes == Writes::Once)
            })
            .filter_map(|name| {
                let e = self.entries.get(name)?;
                Some(Refusal::of(
                    name,
                    format!(
                        "is WriteOnce and was written from MQTT at {} ({}); change its spec to write it again",
                        e.at,
                        shortened(&e.value)
                    ),
                ))
            })
            .collect()
    }

    /// Records `values`, applied to the device at `at`.
    pub fn record(&mut self, values: &Map<String, Value>, device: &Value, at: &str) {
        let specs = specs(device);
        for (name, value) in values {
            if let Some(&(spec, _)) = specs.get(name) {
                self.entries.insert(
                    name.clone(),
                    Entry {
                        value: as_text(value),
                        at: at.to_string(),
                        spec,
                    },
                );
            }
        }
    }

    /// Adds `mqttWrite` to the status of each property that holds a value
    /// written from MQTT.
    pub fn annotate(&self, status: &mut Value) {
        let Some(properties) = status.get_mut("properties").and_then(Value::as_array_mut) else {
            return;
        };
        for property in properties {
            let Some(name) = property.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(e) = self.entries.get(name)
                && let Some(fields) = property.as_object_mut()
            {
                fields.insert(FIELD.into(), json!({"value": e.value, "at": e.at}));
            }
        }
    }
}

/// A value as a refusal quotes it: at most 64 characters.
fn shortened(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_mqtt::write::Accepts;

    fn device(setpoint_spec: Value, status: Value) -> Value {
        json!({"spec": {"properties": [
            setpoint_spec,
            {"name": "mode", "value": "auto"},
        ]}, "status": status})
    }

    fn once(name: &str) -> Property {
        Property {
            name: name.into(),
            accepts: Accepts::Number,
            writes: Writes::Once,
        }
    }

    fn values(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_write_once_property_takes_one_write_until_its_spec_changes() {
        let d = device(json!({"name": "setpoint"}), json!({}));
        let mut ledger = WriteLedger::default();
        let write = values(json!({"setpoint": 21.5}));
        assert!(ledger.refusals(&write, &[once("setpoint")]).is_empty());
        ledger.record(&write, &d, "2026-11-27T10:00:00Z");
        let refused = ledger.refusals(&write, &[once("setpoint")]);
        assert_eq!(
            refused[0].to_string(),
            "setpoint is WriteOnce and was written from MQTT at 2026-11-27T10:00:00Z (21.5); change its spec to write it again"
        );
        // Another property's spec changing leaves it alone; its own re-arms it.
        ledger.follow_spec(&json!({"spec": {"properties": [{"name": "setpoint"}, {"name": "mode", "value": "manual"}]}}));
        assert!(!ledger.refusals(&write, &[once("setpoint")]).is_empty());
        ledger.follow_spec(&device(
            json!({"name": "setpoint", "description": "new"}),
            json!({}),
        ));
        assert!(ledger.refusals(&write, &[once("setpoint")]).is_empty());
    }

    #[test]
    fn the_status_shows_what_mqtt_wrote_and_a_restart_keeps_it() {
        let d = device(json!({"name": "setpoint"}), json!({}));
        let mut ledger = WriteLedger::default();
        ledger.record(
            &values(json!({"setpoint": 21.5, "mode": "manual"})),
            &d,
            "2026-11-27T10:00:00Z",
        );
        let mut status = json!({"properties": [{"name": "setpoint", "value": "21.5"}, {"name": "mode", "value": "manual"}]});
        ledger.annotate(&mut status);
        assert_eq!(
            status["properties"][0][FIELD],
            json!({"value": "21.5", "at": "2026-11-27T10:00:00Z"})
        );
        assert_eq!(status["properties"][1][FIELD]["value"], "manual");

        // After a restart: `mode` has a spec value, written again at start.
        let restarted = WriteLedger::load(&device(json!({"name": "setpoint"}), status));
        assert_eq!(restarted.entries.len(), 1);
        assert!(
            !restarted
                .refusals(&values(json!({"setpoint": 1})), &[once("setpoint")])
                .is_empty()
        );
    }

    #[test]
    fn a_long_value_is_quoted_short() {
        assert_eq!(shortened(&"x".repeat(100)).chars().count(), 65);
        assert_eq!(shortened("é"), "é");
    }
}
