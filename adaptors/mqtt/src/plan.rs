//! An MQTT device's spec resolved: which topics to subscribe to, where
//! each property's value is, when it is read and written, and where writes
//! go. A spec that cannot be used is refused here, each problem named by
//! its field.

use std::time::Duration;

use devicelink_adaptor_runtime::{
    Property,
    access::{self, ReadMode, WriteMode},
    arithmetic,
};
use devicelink_api::{
    duration::sync_interval,
    mqtt::MqttTopicOperator,
    mqtt_device::{
        MqttDevicePattern, MqttDeviceProperty, MqttDeviceProtocol, MqttDeviceSpec, MqttValueType,
    },
    property::{AccessMode, ArithmeticOperation},
};
use devicelink_mqtt::{Topic, TopicContext, topic::is_publishable};

use crate::{codec, path::JsonPath};

/// One property, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub type_: MqttValueType,
    /// The path in effect (the spec's, or the name).
    pub path: String,
    /// Where the value is in a device's JSON message (AttributedMessage).
    pub json_path: Option<JsonPath>,
    /// The topic the property's value arrives on (AttributedTopic).
    pub state_topic: Option<String>,
    /// Where a value written to the property goes (AttributedTopic).
    pub command_topic: Option<String>,
    pub read: ReadMode,
    pub write: WriteMode,
    pub qos: i32,
    pub retain: bool,
    pub operations: Vec<ArithmeticOperation>,
    pub precision: u32,
    /// The spec's value to publish, if the property is writable and has one.
    pub value: Option<serde_json::Value>,
}

impl Point {
    /// The access modes in effect, as the status shows them.
    pub fn access_modes(&self) -> Vec<AccessMode> {
        access::effective(self.read, self.write, AccessMode::Notify)
    }
}

/// The device's spec, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub pattern: MqttDevicePattern,
    pub points: Vec<Point>,
    /// AttributedMessage: the topic the device's messages arrive on, and
    /// where writes to it go.
    pub state_topic: Option<String>,
    pub command_topic: Option<String>,
    pub qos: i32,
    pub retain: bool,
    pub sync: Duration,
}

impl Plan {
    /// Resolves the spec for the DeviceLink `link`; every problem, named.
    pub fn new(spec: &MqttDeviceSpec, link: &TopicContext) -> Result<Plan, Vec<String>> {
        let protocol = &spec.protocol;
        let message = &protocol.options.message;
        let mut problems = Vec::new();
        let render = |path: Option<&str>, operator: Option<&MqttTopicOperator>, field: &str| {
            let operator = operator.or(message.operator.as_ref());
            let topic = Topic::new(
                &message.topic,
                link,
                path,
                operator.and_then(|o| o.read.as_deref()),
                operator.and_then(|o| o.write.as_deref()),
            );
            let (state, command) = (topic.for_subscribe(), topic.for_publish());
            if is_publishable(&state) && is_publishable(&command) {
                Ok((state, command))
            } else {
                Err(format!(
                    "{field} renders to {state:?} and {command:?}, which cannot be used (empty, or has + or #)"
                ))
            }
        };
        let (state_topic, command_topic) = match protocol.pattern {
            MqttDevicePattern::AttributedMessage => {
                match render(message.path.as_deref(), None, "spec.protocol.message.topic") {
                    Ok((s, c)) => (Some(s), Some(c)),
                    Err(e) => {
                        problems.push(e);
                        (None, None)
                    }
                }
            }
            MqttDevicePattern::AttributedTopic => (None, None),
        };
        let mut points = Vec::new();
        for (i, p) in spec.properties.iter().enumerate() {
            match point(
                p,
                i,
                protocol.pattern,
                message.qos_or_default(),
                message.retained_or_default(),
                &render,
            ) {
                Ok(point) => points.push(point),
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Plan {
            pattern: protocol.pattern,
            points,
            state_topic,
            command_topic,
            qos: message.qos_or_default(),
            retain: message.retained_or_default(),
            sync: sync_interval(
                &[protocol.sync_interval.as_ref()],
                MqttDeviceProtocol::DEFAULT_SYNC_INTERVAL,
            ),
        })
    }

    /// What the connection subscribes to: topic and QoS.
    pub fn filters(&self) -> Vec<(String, i32)> {
        match self.pattern {
            MqttDevicePattern::AttributedMessage => self
                .state_topic
                .iter()
                .map(|t| (t.clone(), self.qos))
                .collect(),
            MqttDevicePattern::AttributedTopic => {
                let mut filters: Vec<(String, i32)> = Vec::new();
                for p in self.points.iter().filter(|p| p.read != ReadMode::Never) {
                    let topic = p.state_topic.clone().expect("a topic per property");
                    if !filters.iter().any(|(t, _)| *t == topic) {
                        filters.push((topic, p.qos));
                    }
                }
                filters
            }
        }
    }

    /// Where the adaptor publishes to the device: the topics of the
    /// properties it may write.
    pub fn command_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for p in self.points.iter().filter(|p| p.write != WriteMode::Never) {
            let topic = match self.pattern {
                MqttDevicePattern::AttributedMessage => self.command_topic.clone(),
                MqttDevicePattern::AttributedTopic => p.command_topic.clone(),
            };
            if let Some(topic) = topic.filter(|t| !topics.contains(t)) {
                topics.push(topic);
            }
        }
        topics
    }

    /// The properties as writes from MQTT see them.
    pub fn properties(&self) -> Vec<Property> {
        self.points
            .iter()
            .map(|p| Property {
                name: p.name.clone(),
                accepts: codec::accepts(p.type_),
                writes: access::mqtt_writes(p.write, p.value.is_some()),
            })
            .collect()
    }
}

/// Renders a property's (status topic, write topic) from its own topic
/// template, operator and path.
type RenderTopics<'a> =
    &'a dyn Fn(Option<&str>, Option<&MqttTopicOperator>, &str) -> Result<(String, String), String>;

fn point(
    p: &MqttDeviceProperty,
    index: usize,
    pattern: MqttDevicePattern,
    qos: i32,
    retain: bool,
    render: RenderTopics,
) -> Result<Point, String> {
    let field = format!("spec.properties[{index}] ({})", p.name);
    // Read-only unless it says otherwise, as in Octopus.
    let read_only = if p.access_modes.is_empty() {
        Some(p.read_only.unwrap_or(true))
    } else {
        p.read_only
    };
    let (read, write) = access::modes(&p.access_modes, read_only, true);
    let path = p.path.clone().unwrap_or_else(|| p.name.clone());
    let (json_path, state_topic, command_topic) = match pattern {
        MqttDevicePattern::AttributedMessage => {
            let parsed = JsonPath::parse(&path).map_err(|e| format!("{field}.path: {e}"))?;
            (Some(parsed), None, None)
        }
        MqttDevicePattern::AttributedTopic => {
            let (state, command) = render(
                Some(&path),
                p.operator.as_ref(),
                &format!("{field}: the topic"),
            )?;
            (None, Some(state), Some(command))
        }
    };
    let value = match (&p.value, write) {
        (Some(v), WriteMode::OnChange | WriteMode::Once | WriteMode::Every) => {
            Some(codec::decode(p.type_, v).map_err(|e| format!("{field}.value: {e}"))?)
        }
        (Some(_), WriteMode::Never) => {
            return Err(format!(
                "{field}.value: the property is read-only (properties are unless they say readOnly: false, or have WriteOnce or WriteMany), so its value is never published"
            ));
        }
        (None, _) => None,
    };
    Ok(Point {
        name: p.name.clone(),
        type_: p.type_,
        path,
        json_path,
        state_topic,
        command_topic,
        read,
        write,
        qos: p.qos.unwrap_or(qos),
        retain: p.retained.unwrap_or(retain),
        operations: p.arithmetic_operations.clone(),
        precision: p
            .arithmetic_operation_precision
            .map(|n| n.clamp(0, 24) as u32)
            .unwrap_or(arithmetic::DEFAULT_PRECISION),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_adaptor_runtime::Writes;
    use serde_json::json;

    fn link() -> TopicContext {
        TopicContext {
            namespace: "home".into(),
            name: "light".into(),
            uid: "u1".into(),
        }
    }

    fn spec(value: serde_json::Value) -> MqttDeviceSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn attributed_message_has_one_topic_each_way_and_paths_per_property() {
        let plan = Plan::new(
            &spec(json!({"protocol": {
                "pattern": "AttributedMessage",
                "client": {"server": "tcp://b:1883"},
                "message": {"topic": "home/:name/:operator", "operator": {"write": "set"}},
            }, "properties": [
                {"name": "switch", "type": "boolean", "readOnly": false},
                {"name": "gear", "path": "action.gear", "type": "string"},
            ]})),
            &link(),
        )
        .unwrap();
        assert_eq!(plan.state_topic.as_deref(), Some("home/light"));
        assert_eq!(plan.command_topic.as_deref(), Some("home/light/set"));
        assert_eq!(plan.filters(), [("home/light".to_string(), 1)]);
        assert_eq!(plan.points[0].write, WriteMode::OnChange);
        // Read-only by default, as in Octopus.
        assert_eq!(plan.points[1].write, WriteMode::Never);
        let writes: Vec<Writes> = plan.properties().iter().map(|p| p.writes).collect();
        assert_eq!(writes, [Writes::Yes, Writes::No]);
    }

    #[test]
    fn attributed_topic_renders_each_propertys_topics() {
        let plan = Plan::new(
            &spec(json!({"protocol": {
                "pattern": "AttributedTopic",
                "client": {"server": "tcp://b:1883"},
                "message": {"topic": "home/:operator/kitchen/:path", "operator": {"read": "status", "write": "set"}},
            }, "properties": [
                {"name": "switch", "type": "boolean", "readOnly": false, "qos": 2},
                {"name": "gear", "type": "string", "accessModes": ["WriteMany"], "value": "low",
                 "operator": {"read": "get", "write": "control"}},
                {"name": "door", "path": "door/state", "type": "string"},
            ]})),
            &link(),
        )
        .unwrap();
        let p = &plan.points;
        assert_eq!(
            p[0].state_topic.as_deref(),
            Some("home/status/kitchen/switch")
        );
        assert_eq!(
            p[0].command_topic.as_deref(),
            Some("home/set/kitchen/switch")
        );
        assert_eq!(
            p[1].command_topic.as_deref(),
            Some("home/control/kitchen/gear")
        );
        assert_eq!(
            p[2].state_topic.as_deref(),
            Some("home/status/kitchen/door/state")
        );
        // WriteMany without Notify is not read: no subscription for it.
        assert_eq!(
            plan.filters(),
            [
                ("home/status/kitchen/switch".to_string(), 2),
                ("home/status/kitchen/door/state".to_string(), 1)
            ]
        );
        assert_eq!(p[1].value, Some(json!("low")));
    }

    #[test]
    fn unusable_properties_are_named() {
        let problems = Plan::new(
            &spec(json!({"protocol": {
                "pattern": "AttributedMessage",
                "client": {"server": "tcp://b:1883"},
                "message": {"topic": "home/:name"},
            }, "properties": [
                {"name": "a", "path": "x..y", "type": "int"},
                {"name": "b", "type": "int", "readOnly": false, "value": "lots"},
                {"name": "c", "type": "int", "value": 3},
            ]})),
            &link(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3);
        assert!(
            problems[2].contains("(c).value: the property is read-only"),
            "{problems:?}"
        );
        assert!(
            problems[0].starts_with("spec.properties[0] (a).path: "),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "spec.properties[1] (b).value: \"lots\" is not a whole number"
        );
    }
}
