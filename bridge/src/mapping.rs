//! MQTT topic -> Kafka topic and headers, by a KafkaBridge's `mapping`
//! (the rule is written out in docs/bridge.md).

use devicelink_api::kafka_bridge::TopicMapping;
use regex::Regex;

/// A mapping ready to route topics: patterns compiled, policies by index.
#[derive(Debug)]
pub struct Mapping {
    match_index: usize,
    routes: Vec<(Regex, usize)>,
    policies: Vec<Policy>,
}

#[derive(Debug)]
struct Policy {
    topic_index: usize,
    topics: Vec<(Regex, String)>,
    /// (level, header name), by level.
    headers: Vec<(usize, String)>,
}

/// Where one MQTT message goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed<'m, 't> {
    pub topic: &'m str,
    /// Header name and the level's value, in level order.
    pub headers: Vec<(&'m str, &'t str)>,
}

/// Why a mapping cannot be used; the API server refuses most of these
/// first, this names them for objects it did not check (or patterns its
/// regular expressions take and ours do not).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("spec.mapping.{field}: {pattern:?} is not a regular expression: {reason}")]
    Pattern {
        field: String,
        pattern: String,
        reason: String,
    },
    #[error(
        "spec.mapping.routes[{index}].policy: {policy:?} is not the name of an entry of policies"
    )]
    UnknownPolicy { index: usize, policy: String },
    #[error("spec.mapping.policies[{index}].headers: {key:?} is not a level index")]
    HeaderLevel { index: usize, key: String },
}

/// The levels of an MQTT topic, counted from its first non-empty one:
/// `/a/b` and `a/b` both give `[a, b]`; empty levels after it count.
pub fn levels(topic: &str) -> Vec<&str> {
    topic
        .split('/')
        .skip_while(|level| level.is_empty())
        .collect()
}

impl Mapping {
    pub fn compile(spec: &TopicMapping) -> Result<Self, MappingError> {
        let policies = spec
            .policies
            .iter()
            .enumerate()
            .map(|(p, policy)| {
                let topics = policy
                    .topics
                    .iter()
                    .enumerate()
                    .map(|(t, route)| {
                        let field = format!("policies[{p}].topics[{t}].pattern");
                        Ok((compile(&route.pattern, field)?, route.topic.clone()))
                    })
                    .collect::<Result<_, _>>()?;
                let mut headers = policy
                    .headers
                    .iter()
                    .map(|(key, name)| match key.parse::<usize>() {
                        Ok(level) => Ok((level, name.clone())),
                        Err(_) => Err(MappingError::HeaderLevel {
                            index: p,
                            key: key.clone(),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                headers.sort();
                Ok(Policy {
                    topic_index: level_index(policy.topic_index),
                    topics,
                    headers,
                })
            })
            .collect::<Result<_, _>>()?;
        let routes = spec
            .routes
            .iter()
            .enumerate()
            .map(|(r, route)| {
                let pattern = compile(&route.pattern, format!("routes[{r}].pattern"))?;
                let policy = spec
                    .policies
                    .iter()
                    .position(|p| p.name == route.policy)
                    .ok_or_else(|| MappingError::UnknownPolicy {
                        index: r,
                        policy: route.policy.clone(),
                    })?;
                Ok((pattern, policy))
            })
            .collect::<Result<_, _>>()?;
        Ok(Mapping {
            match_index: level_index(spec.match_index),
            routes,
            policies,
        })
    }

    /// Where a message on `topic` goes; `None` when no route or topic
    /// pattern takes it (the sink's default topic then).
    pub fn route<'m, 't>(&'m self, topic: &'t str) -> Option<Routed<'m, 't>> {
        let levels = levels(topic);
        let selector = levels.get(self.match_index)?;
        let (_, policy) = self.routes.iter().find(|(p, _)| p.is_match(selector))?;
        let policy = &self.policies[*policy];
        let chooser = levels.get(policy.topic_index)?;
        let (_, kafka_topic) = policy.topics.iter().find(|(p, _)| p.is_match(chooser))?;
        let headers = policy
            .headers
            .iter()
            .filter_map(|(level, name)| Some((name.as_str(), *levels.get(*level)?)))
            .collect();
        Some(Routed {
            topic: kafka_topic,
            headers,
        })
    }
}

/// A level index from the API (never negative there; one that is names
/// no level).
fn level_index(index: i32) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

fn compile(pattern: &str, field: String) -> Result<Regex, MappingError> {
    Regex::new(pattern).map_err(|e| MappingError::Pattern {
        field,
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The worked example of docs/bridge.md (and issue 34).
    fn example() -> Mapping {
        let topics = json!([
            {"pattern": "iphone|xiaomi|oppo|pixel", "topic": "iot_phone"},
            {"pattern": ".*", "topic": "iot_other"},
        ]);
        let spec: TopicMapping = serde_json::from_value(json!({
            "matchIndex": 0,
            "routes": [
                {"pattern": "gate*", "policy": "gateway"},
                {"pattern": "dir*", "policy": "direct"},
            ],
            "policies": [
                {"name": "direct", "topicIndex": 1, "topics": topics,
                 "headers": {"0": "direct", "1": "device", "2": "status"}},
                {"name": "gateway", "topicIndex": 2, "topics": topics,
                 "headers": {"0": "gateway", "1": "gatewayID", "2": "device", "3": "status"}},
            ],
        }))
        .unwrap();
        Mapping::compile(&spec).unwrap()
    }

    fn routed<'m>(topic: &'m str, headers: &[(&'m str, &'m str)]) -> Option<Routed<'m, 'm>> {
        Some(Routed {
            topic,
            headers: headers.to_vec(),
        })
    }

    #[test]
    fn the_worked_examples_route_as_documented() {
        let mapping = example();
        assert_eq!(
            mapping.route("gateway/gate123/iphone/log"),
            routed(
                "iot_phone",
                &[
                    ("gateway", "gateway"),
                    ("gatewayID", "gate123"),
                    ("device", "iphone"),
                    ("status", "log")
                ]
            )
        );
        assert_eq!(
            mapping.route("direct/xiaomi/status"),
            routed(
                "iot_phone",
                &[
                    ("direct", "direct"),
                    ("device", "xiaomi"),
                    ("status", "status")
                ]
            )
        );
        assert_eq!(
            mapping.route("direct/tv/log"),
            routed(
                "iot_other",
                &[("direct", "direct"), ("device", "tv"), ("status", "log")]
            )
        );
    }

    #[test]
    fn levels_count_from_the_first_non_empty_one() {
        assert_eq!(
            levels("/gateway/gate123/iphone/log"),
            ["gateway", "gate123", "iphone", "log"]
        );
        assert_eq!(levels("//a//b"), ["a", "", "b"]);
        let mapping = example();
        assert_eq!(
            mapping.route("/gateway/gate123/iphone/log"),
            mapping.route("gateway/gate123/iphone/log")
        );
    }

    #[test]
    fn what_no_route_takes_goes_to_the_default_topic() {
        let mapping = example();
        // No route matches level 0.
        assert_eq!(mapping.route("plant/line1/fan"), None);
        // A route matches, but the topic has no level at topicIndex.
        assert_eq!(mapping.route("direct"), None);
        assert_eq!(mapping.route(""), None);
    }

    #[test]
    fn levels_the_topic_lacks_are_left_out_of_the_headers() {
        assert_eq!(
            example().route("gateway/gate9/pixel"),
            routed(
                "iot_phone",
                &[
                    ("gateway", "gateway"),
                    ("gatewayID", "gate9"),
                    ("device", "pixel")
                ]
            )
        );
    }

    #[test]
    fn bad_rules_are_named_by_field() {
        let spec = |routes: serde_json::Value, headers: serde_json::Value| -> TopicMapping {
            serde_json::from_value(json!({
                "routes": routes,
                "policies": [{"name": "p", "topicIndex": 0,
                              "topics": [{"pattern": "(", "topic": "t"}], "headers": headers}],
            }))
            .unwrap()
        };
        let err = Mapping::compile(&spec(json!([{"pattern": "a", "policy": "p"}]), json!({})))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "spec.mapping.policies[0].topics[0].pattern: \"(\" is not a regular expression"
            ),
            "{err}"
        );
        let mut good = spec(json!([{"pattern": "a", "policy": "q"}]), json!({"x": "h"}));
        good.policies[0].topics[0].pattern = ".".into();
        assert_eq!(
            Mapping::compile(&good).unwrap_err(),
            MappingError::HeaderLevel {
                index: 0,
                key: "x".into()
            }
        );
        good.policies[0].headers.clear();
        assert_eq!(
            Mapping::compile(&good).unwrap_err().to_string(),
            "spec.mapping.routes[0].policy: \"q\" is not the name of an entry of policies"
        );
    }
}
