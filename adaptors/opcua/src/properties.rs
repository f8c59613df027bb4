//! A device's properties: the items resolved from the spec, the status of
//! each, and what is wrong with single properties while the rest flow.

use std::collections::BTreeMap;

use devicelink_adaptor_runtime::{
    Outcome, Property, Reason, Refusal,
    access::{self, ReadMode},
    observed::Observed,
};
use devicelink_api::{
    opcua::OpcuaDeviceSpec,
    property::{AccessMode, DeviceStatus},
};
use opcua::types::{DataValue, Variant};
use serde_json::{Map, Value};
use tracing::warn;

use crate::{item::Item, session::ItemProblem};

/// The properties of one device.
#[derive(Default)]
pub struct Properties {
    pub items: Vec<Item>,
    /// Each item's last reading; the rest of its status comes from the item.
    observed: Vec<Observed>,
    /// Properties the spec gets wrong (they stop the device from connecting).
    invalid: Vec<String>,
    /// Property name -> (reason, message) of what the server made of it.
    problems: BTreeMap<String, (Reason, String)>,
}

impl Properties {
    pub fn new(spec: &OpcuaDeviceSpec) -> Properties {
        let mut p = Properties::default();
        p.apply(spec);
        p
    }

    /// Takes in a new spec; a property on the same node with the same type
    /// keeps its last value.
    pub fn apply(&mut self, spec: &OpcuaDeviceSpec) {
        let old_items = std::mem::take(&mut self.items);
        let old_observed = std::mem::take(&mut self.observed);
        self.invalid.clear();
        self.problems.clear();
        for property in &spec.properties {
            match Item::new(property) {
                Ok(item) => {
                    let kept = old_items
                        .iter()
                        .position(|o| {
                            o.name == item.name && o.node == item.node && o.type_ == item.type_
                        })
                        .map(|j| old_observed[j].clone());
                    self.items.push(item);
                    self.observed.push(kept.unwrap_or_default());
                }
                Err(e) => self
                    .invalid
                    .push(format!("property {}: {e}", property.name)),
            }
        }
    }

    /// What keeps the device from connecting, if anything.
    pub fn invalid(&self) -> Option<String> {
        (!self.invalid.is_empty()).then(|| self.invalid.join("; "))
    }

    /// Whether `other` differs from these only in the values to write.
    pub fn same_watch(&self, other: &Properties) -> bool {
        self.invalid == other.invalid
            && self.items.len() == other.items.len()
            && self.items.iter().zip(&other.items).all(|(a, b)| {
                let mut b = b.clone();
                b.desired = a.desired.clone();
                *a == b
            })
    }

    /// Takes the values to write from `other`, which watches the same
    /// (see `same_watch`); what the server made of each property stays.
    pub fn take_desired(&mut self, other: &Properties) {
        for (item, new) in self.items.iter_mut().zip(&other.items) {
            item.desired = new.desired.clone();
        }
    }

    /// Problems found when subscribing (a bad node ID, say).
    pub fn set_problems(&mut self, problems: Vec<ItemProblem>) {
        self.problems = problems
            .into_iter()
            .map(|p| (p.property, (Reason::BadNodeId, p.message)))
            .collect();
    }

    /// Takes in a value from the server for item `index`; whether the
    /// status or the property's problem changed.
    pub fn take(&mut self, index: usize, value: &DataValue) -> bool {
        let Some(item) = self.items.get(index) else {
            return false;
        };
        let status = value.status();
        let reading = if status.is_bad() {
            let name = status.sub_code().name();
            Err((
                Reason::BadValue,
                format!("the server reports {name} for node {}", item.node_spelled),
            ))
        } else {
            let variant = value.value.as_ref().unwrap_or(&Variant::Empty);
            item.encoding
                .decode(variant)
                .map_err(|e| (Reason::TypeMismatch, e))
        };
        match reading {
            Ok(reading) => {
                let recorded = reading.is_some_and(|r| {
                    let seen = &mut self.observed[index];
                    seen.record(
                        &item.name,
                        r.text,
                        r.number,
                        &item.operations,
                        item.precision,
                    )
                });
                let cleared = self.problems.remove(&item.name).is_some();
                recorded || cleared
            }
            Err((reason, message)) => self.problem(index, reason, message),
        }
    }

    /// Records what is wrong with a property; whether that changed.
    fn problem(&mut self, index: usize, reason: Reason, message: String) -> bool {
        let name = &self.items[index].name;
        if self.problems.get(name) == Some(&(reason, message.clone())) {
            return false;
        }
        warn!(property = %name, %reason, %message, "property has a problem");
        self.problems.insert(name.clone(), (reason, message));
        true
    }

    /// The status the API server and MQTT see.
    pub fn status(&self) -> DeviceStatus {
        let modes = |item: &Item| access::effective(item.read, item.write, AccessMode::Notify);
        DeviceStatus {
            properties: (self.items.iter().zip(&self.observed))
                .map(|(item, seen)| seen.status(&item.name, Some(item.type_), modes(item)))
                .collect(),
            extension: None,
        }
    }

    /// DeviceConnected while the session is open.
    pub fn outcome(&self) -> Outcome {
        match self.problems.values().next() {
            None => Reason::Healthy.outcome(""),
            Some((reason, _)) => reason.outcome(
                self.problems
                    .iter()
                    .map(|(name, (_, m))| format!("property {name}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    /// The properties as writes from MQTT see them.
    pub fn as_properties(&self) -> Vec<Property> {
        self.items.iter().map(Item::as_property).collect()
    }

    /// Item indexes by read mode.
    pub fn read_by(&self, mode: ReadMode) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| self.items[i].read == mode)
            .collect()
    }

    /// The values of a checked write (or of the spec) encoded for their
    /// items, and the values that cannot be, refused.
    pub fn encode(&self, values: &Map<String, Value>) -> (Vec<(usize, Variant)>, Vec<Refusal>) {
        let mut encoded = Vec::new();
        let mut refused = Vec::new();
        for (name, value) in values {
            let Some(i) = self.items.iter().position(|it| &it.name == name) else {
                refused.push(Refusal::of(name, "is not a property of the device"));
                continue;
            };
            match self.items[i].encoding.encode(value) {
                Ok(v) => encoded.push((i, v)),
                Err(e) => refused.push(Refusal::of(name, e)),
            }
        }
        (encoded, refused)
    }

    /// The spec's values to write: of every writable item with one
    /// (`all`), or of those written every sync interval.
    pub fn desired(&self, all: bool) -> Map<String, Value> {
        self.items
            .iter()
            .filter(|it| all || it.write == access::WriteMode::Every)
            .filter_map(|it| Some((it.name.clone(), it.desired.clone()?)))
            .collect()
    }

    /// The spec's values that differ from those of `before`.
    pub fn desired_changes(&self, before: &Properties) -> Map<String, Value> {
        let before = before.desired(true);
        self.desired(true)
            .into_iter()
            .filter(|(name, v)| before.get(name) != Some(v))
            .collect()
    }

    pub fn item_name(&self, index: usize) -> &str {
        &self.items[index].name
    }

    /// The outcome of writing a property's spec value: a refusal is shown
    /// on DeviceConnected until a write of it succeeds.
    pub fn written(&mut self, name: &str, result: Result<(), String>) {
        let Some(index) = self.items.iter().position(|it| it.name == name) else {
            return;
        };
        match result {
            Err(why) => {
                self.problem(index, Reason::WriteRefused, format!("writing value: {why}"));
            }
            Ok(())
                if self
                    .problems
                    .get(name)
                    .is_some_and(|p| p.0 == Reason::WriteRefused) =>
            {
                self.problems.remove(name);
            }
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(answer: &str) -> OpcuaDeviceSpec {
        serde_json::from_value(json!({
            "protocol": {"endpoint": "opc.tcp://plc:4840"},
            "properties": [
                {"name": "answer", "type": "int32", "value": answer, "visitor": {"nodeID": "ns=2;s=a"}},
                {"name": "gone", "type": "double", "visitor": {"nodeID": "ns=2;s=gone"}},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn a_new_value_to_write_keeps_what_the_server_said() {
        let mut p = Properties::new(&spec("1"));
        p.set_problems(vec![ItemProblem {
            property: "gone".into(),
            message: "node ns=2;s=gone does not exist".into(),
        }]);
        assert!(p.take(0, &DataValue::value_only(Variant::Int32(1))));
        let updated = Properties::new(&spec("2"));
        assert!(p.same_watch(&updated));
        assert_eq!(
            updated.desired_changes(&p),
            Map::from_iter([("answer".into(), json!("2"))])
        );
        p.take_desired(&updated);
        assert_eq!(p.outcome().reason, "BadNodeId");
        assert_eq!(p.status().properties[0].value.as_deref(), Some("1"));
        assert_eq!(p.desired(true)["answer"], json!("2"));
    }

    #[test]
    fn a_refused_spec_value_is_shown_until_a_write_of_it_succeeds() {
        let mut p = Properties::new(&spec("1"));
        let (encoded, refused) = p.encode(&Map::from_iter([
            ("answer".into(), json!("not a number")),
            ("gone".into(), json!(2.5)),
        ]));
        assert_eq!(encoded.len(), 1, "what encodes is still written");
        assert_eq!(refused[0].property.as_deref(), Some("answer"));
        p.written("answer", Err(refused[0].reason.clone()));
        assert_eq!(p.outcome().reason, "WriteRefused");
        p.written("answer", Ok(()));
        assert!(p.outcome().is_true());
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_named_and_a_good_one_clears_it() {
        let mut p = Properties::new(&spec("1"));
        assert!(p.take(0, &DataValue::value_only(Variant::from("forty-two"))));
        let outcome = p.outcome();
        assert_eq!(outcome.reason, "TypeMismatch");
        assert!(
            outcome
                .message
                .starts_with("property answer: the node holds a String"),
            "{}",
            outcome.message
        );
        assert!(p.take(0, &DataValue::value_only(Variant::Int32(42))));
        assert!(p.outcome().is_true());
        assert!(
            !p.take(0, &DataValue::value_only(Variant::Int32(42))),
            "no change, nothing to report"
        );
    }
}
