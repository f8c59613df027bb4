//! What is known of an MQTT device's properties: the values it last
//! published, and what was wrong with its messages.
//!
//! A message that leaves out a property's path means "unchanged" (many
//! devices send only what changed); it is a problem only for a property
//! that has never had a value. A value of the wrong type, a payload that
//! is not JSON where JSON is needed: the property keeps its last value and
//! says what went wrong until a good one comes.

use std::collections::BTreeMap;

use devicelink_adaptor_runtime::{Reason, access::ReadMode, arithmetic};
use devicelink_api::{
    condition,
    mqtt_device::{MqttDevicePattern, MqttDeviceStatus, MqttPropertyStatus},
};
use devicelink_mqtt::publisher::Received;
use serde_json::Value;

use crate::{
    codec,
    plan::{Plan, Point},
};

#[derive(Debug, Default)]
pub struct State {
    statuses: Vec<MqttPropertyStatus>,
    /// Property name -> what is wrong with it now.
    problems: BTreeMap<String, (Reason, String)>,
    /// A message came from the device since the state was made.
    heard: bool,
}

impl State {
    pub fn new(plan: &Plan) -> State {
        let mut state = State::default();
        state.apply(plan);
        state
    }

    /// Takes a new plan: properties that stay (same name and type) keep
    /// their values.
    pub fn apply(&mut self, plan: &Plan) {
        let before = std::mem::take(&mut self.statuses);
        self.statuses = plan
            .points
            .iter()
            .map(|p| {
                let kept = before
                    .iter()
                    .find(|s| s.name == p.name && s.type_ == Some(p.type_))
                    .cloned();
                let mut status = kept.unwrap_or_else(|| MqttPropertyStatus {
                    name: p.name.clone(),
                    type_: Some(p.type_),
                    ..Default::default()
                });
                status.path = Some(p.path.clone());
                status.access_modes = p.access_modes();
                status
            })
            .collect();
        self.problems
            .retain(|name, _| plan.points.iter().any(|p| &p.name == name));
    }

    /// Takes in a message from the device; whether the status changed.
    pub fn take(&mut self, plan: &Plan, message: &Received) -> bool {
        self.heard = true;
        let mut changed = false;
        match plan.pattern {
            MqttDevicePattern::AttributedMessage => {
                let parsed = serde_json::from_slice::<Value>(&message.payload)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(|v| match v {
                        Value::Object(_) => Ok(v),
                        other => Err(format!(
                            "a JSON {} where an object was expected",
                            kind(&other)
                        )),
                    });
                for (i, p) in plan.points.iter().enumerate() {
                    if !self.wants(i, p) {
                        continue;
                    }
                    let outcome = match &parsed {
                        Err(why) => Some(Err((
                            Reason::BadValue,
                            format!("the device's message on {} is {why}", message.topic),
                        ))),
                        Ok(json) => match p.json_path.as_ref().and_then(|path| path.get(json)) {
                            Some(v) => Some(codec::decode(p.type_, v).map_err(|e| {
                                (Reason::TypeMismatch, format!("{e} (path {})", p.path))
                            })),
                            None if self.statuses[i].value.is_none() => Some(Err((
                                Reason::BadValue,
                                format!("the device's messages have no value at path {}", p.path),
                            ))),
                            // Left out: unchanged.
                            None => None,
                        },
                    };
                    changed |= match outcome {
                        Some(Ok(value)) => self.record(i, p, &value),
                        Some(Err((reason, why))) => self.problem(i, reason, why),
                        None => false,
                    };
                }
            }
            MqttDevicePattern::AttributedTopic => {
                for (i, p) in plan.points.iter().enumerate() {
                    if p.state_topic.as_deref() != Some(message.topic.as_str()) || !self.wants(i, p)
                    {
                        continue;
                    }
                    changed |= match codec::from_payload(p.type_, &message.payload) {
                        Ok(value) => self.record(i, p, &value),
                        Err(e) => {
                            let reason = if std::str::from_utf8(&message.payload).is_err() {
                                Reason::BadValue
                            } else {
                                Reason::TypeMismatch
                            };
                            self.problem(i, reason, format!("{e} (topic {})", message.topic))
                        }
                    };
                }
            }
        }
        changed
    }

    /// Whether the property takes values from the device now: it is read,
    /// and a ReadOnce one has none yet.
    fn wants(&self, index: usize, p: &Point) -> bool {
        match p.read {
            ReadMode::Every => true,
            ReadMode::Once => self.statuses[index].value.is_none(),
            ReadMode::Never => false,
        }
    }

    fn record(&mut self, index: usize, p: &Point, value: &Value) -> bool {
        let cleared = self.problems.remove(&p.name).is_some();
        let status = &mut self.statuses[index];
        let had_error = status.last_error.take().is_some();
        let text = codec::text(value);
        if status.value.as_deref() == Some(text.as_str()) {
            return cleared || had_error;
        }
        status.operated_value = match value.as_f64() {
            Some(n) if !p.operations.is_empty() => arithmetic::apply(n, &p.operations, p.precision)
                .ok()
                .map(arithmetic::render),
            _ => None,
        };
        status.value = Some(text);
        status.updated_at = Some(condition::now());
        true
    }

    fn problem(&mut self, index: usize, reason: Reason, why: String) -> bool {
        let name = &self.statuses[index].name;
        if self.problems.get(name) == Some(&(reason, why.clone())) {
            return false;
        }
        tracing::warn!(property = %name, %reason, message = %why, "the device's value is not usable");
        self.problems.insert(name.clone(), (reason, why.clone()));
        self.statuses[index].last_error = Some(why);
        true
    }

    pub fn heard(&self) -> bool {
        self.heard
    }

    /// What is wrong with the device's values: the first reason, and every
    /// property's problem.
    pub fn problems(&self) -> Option<(Reason, String)> {
        let (reason, _) = self.problems.values().next()?;
        let all = self
            .problems
            .iter()
            .map(|(name, (_, why))| format!("property {name}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        Some((*reason, all))
    }

    pub fn status(&self) -> MqttDeviceStatus {
        MqttDeviceStatus {
            properties: self.statuses.clone(),
            extension: None,
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_mqtt::TopicContext;
    use serde_json::json;

    fn plan(pattern: &str, properties: Value) -> Plan {
        let spec = serde_json::from_value(json!({"protocol": {
            "pattern": pattern,
            "client": {"server": "tcp://b:1883"},
            "message": {"topic": if pattern == "AttributedTopic" { "home/light/:path" } else { "home/light" }},
        }, "properties": properties}))
        .unwrap();
        let link = TopicContext {
            namespace: "n".into(),
            name: "light".into(),
            uid: "u".into(),
        };
        Plan::new(&spec, &link).unwrap()
    }

    fn message(topic: &str, payload: &str) -> Received {
        Received {
            topic: topic.into(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn value<'a>(state: &'a State, name: &str) -> Option<&'a str> {
        state
            .statuses
            .iter()
            .find(|s| s.name == name)?
            .value
            .as_deref()
    }

    #[test]
    fn a_message_fills_properties_by_path_with_arithmetic() {
        let plan = plan(
            "AttributedMessage",
            json!([
                {"name": "switch", "type": "boolean"},
                {"name": "power", "path": "parameter.power", "type": "float",
                 "arithmeticOperations": [{"type": "Multiply", "value": "1000"}]},
                {"name": "colour", "type": "object"},
            ]),
        );
        let mut state = State::new(&plan);
        assert!(state.take(
            &plan,
            &message(
                "home/light",
                r#"{"switch": true, "parameter": {"power": 0.0035}, "colour": {"r": 1}}"#
            )
        ));
        assert_eq!(value(&state, "switch"), Some("true"));
        assert_eq!(value(&state, "colour"), Some(r#"{"r":1}"#));
        assert_eq!(state.statuses[1].operated_value.as_deref(), Some("3.5"));
        assert_eq!(state.problems(), None);
        // A message with only what changed leaves the rest as it was.
        assert!(state.take(&plan, &message("home/light", r#"{"switch": false}"#)));
        assert_eq!(value(&state, "colour"), Some(r#"{"r":1}"#));
        // The same again changes nothing.
        assert!(!state.take(&plan, &message("home/light", r#"{"switch": false}"#)));
    }

    #[test]
    fn bad_messages_and_values_are_named_per_property_and_cleared_by_good_ones() {
        let plan = plan(
            "AttributedMessage",
            json!([
                {"name": "switch", "type": "boolean"},
                {"name": "gear", "path": "action.gear", "type": "string"},
            ]),
        );
        let mut state = State::new(&plan);
        state.take(&plan, &message("home/light", r#"{"switch": "on"}"#));
        let (reason, why) = state.problems().unwrap();
        assert_eq!(reason, Reason::BadValue);
        assert!(
            why.contains("property gear: the device's messages have no value at path action.gear"),
            "{why}"
        );
        assert!(
            why.contains("property switch: \"on\" is not true or false (path switch)"),
            "{why}"
        );
        assert_eq!(
            state.statuses[0].last_error.as_deref(),
            Some("\"on\" is not true or false (path switch)")
        );
        state.take(&plan, &message("home/light", "{not json"));
        assert!(state.problems().unwrap().1.contains("is not JSON"));
        state.take(
            &plan,
            &message(
                "home/light",
                r#"{"switch": true, "action": {"gear": "mid"}}"#,
            ),
        );
        assert_eq!(state.problems(), None);
        assert_eq!(state.statuses[0].last_error, None);
        assert_eq!(value(&state, "gear"), Some("mid"));
    }

    #[test]
    fn each_topic_carries_its_property() {
        let plan = plan(
            "AttributedTopic",
            json!([
                {"name": "door", "path": "door/state", "type": "string"},
                {"name": "width", "type": "float"},
                {"name": "serial", "type": "string", "accessModes": ["ReadOnce"]},
            ]),
        );
        let mut state = State::new(&plan);
        state.take(&plan, &message("home/light/door/state", "open"));
        state.take(&plan, &message("home/light/width", "0.9"));
        state.take(&plan, &message("home/light/serial", "A1"));
        state.take(&plan, &message("home/light/serial", "B2"));
        assert_eq!(value(&state, "door"), Some("open"));
        assert_eq!(value(&state, "width"), Some("0.9"));
        assert_eq!(value(&state, "serial"), Some("A1"), "read once");
        state.take(&plan, &message("home/light/width", "wide"));
        assert_eq!(state.problems().unwrap().0, Reason::TypeMismatch);
        assert_eq!(
            value(&state, "width"),
            Some("0.9"),
            "the last good value stays"
        );
    }
}
