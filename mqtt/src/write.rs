//! Writes received on a device's write topic: a JSON object of property
//! values, checked against what the device declares writable, all or
//! nothing; and the answer published on the reply topic.
//!
//! A write is `{"on": true, "gear": "fast"}`. It is refused as a whole if it
//! is not a JSON object, is empty or too large, names a property the device
//! does not have or that is read-only, or gives a value of the wrong type or
//! out of range. The answer is `{"ok":true,"applied":{...}}` or
//! `{"ok":false,"refused":[{"property":"speed","reason":"is read-only"}]}`.

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest write accepted; a device write is a handful of values.
pub const MAX_WRITE_BYTES: usize = 64 * 1024;

/// The values a property accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepts {
    Boolean,
    /// A whole number within the bounds (inclusive).
    Integer {
        min: i128,
        max: i128,
    },
    /// Any finite number.
    Number,
    Text,
    /// One of these strings.
    OneOf(Vec<String>),
    /// A JSON object with some of these fields (each as it accepts).
    Object(Vec<(String, Accepts)>),
    /// A JSON array whose items each are as it accepts.
    List(Box<Accepts>),
    /// Any JSON object (the device checks it).
    AnyObject,
    /// Any JSON array (the device checks it).
    AnyArray,
}

/// A property as writes see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub accepts: Accepts,
    pub writes: Writes,
}

/// Whether writes from MQTT may set a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Read-only.
    No,
    /// Every write is applied.
    Yes,
    /// `WriteOnce` with no spec value: one write, until the property's
    /// spec changes (the device task keeps count).
    Once,
    /// `WriteOnce` with a spec value: the spec's value was its one write.
    SpecOnce,
    /// `WriteMany` with a spec value: the spec's value is written every
    /// sync, so a write from MQTT would not hold.
    SpecEvery,
}

impl Writes {
    /// Why a write is refused whatever its value, if it is.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Writes::No => Some("is read-only"),
            Writes::SpecOnce => Some(
                "is WriteOnce and was written with its spec value; change the spec's value to write it again",
            ),
            Writes::SpecEvery => Some(
                "is WriteMany with a spec value, which is written every sync and would undo this write; change the spec's value instead",
            ),
            Writes::Yes | Writes::Once => None,
        }
    }
}

/// Why (part of) a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The property concerned; none when the whole payload is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    pub reason: String,
}

impl Refusal {
    /// One property's value refused.
    pub fn of(property: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            property: Some(property.to_string()),
            reason: reason.into(),
        }
    }

    /// The whole write refused.
    pub fn whole(reason: impl Into<String>) -> Refusal {
        Refusal {
            property: None,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.property {
            Some(p) => write!(f, "{p} {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The property values of a write, checked; or every reason it is refused.
pub fn decode(payload: &[u8], properties: &[Property]) -> Result<Map<String, Value>, Vec<Refusal>> {
    let whole = |reason: String| vec![Refusal::whole(reason)];
    if payload.len() > MAX_WRITE_BYTES {
        return Err(whole(format!(
            "is {} bytes; a write may have at most {MAX_WRITE_BYTES}",
            payload.len()
        )));
    }
    let values: Map<String, Value> = match serde_json::from_slice(payload) {
        Ok(Value::Object(values)) => values,
        Ok(other) => {
            return Err(whole(format!(
                "must be a JSON object of property values, not {}",
                kind_of(&other)
            )));
        }
        Err(e) => return Err(whole(format!("is not JSON: {e}"))),
    };
    if values.is_empty() {
        return Err(whole("names no property".into()));
    }
    let mut refused = Vec::new();
    for (name, value) in &values {
        let problem = match properties.iter().find(|p| &p.name == name) {
            None => Some("is not a property of this device".to_string()),
            Some(p) if p.writes.refusal().is_some() => p.writes.refusal().map(str::to_string),
            Some(p) => check(&p.accepts, value).err(),
        };
        if let Some(reason) = problem {
            refused.push(Refusal::of(name, reason));
        }
    }
    if refused.is_empty() {
        Ok(values)
    } else {
        Err(refused)
    }
}

/// How many refusals an answer, log line or Event lists; the rest are
/// counted.
pub const MAX_REFUSALS_SHOWN: usize = 10;

/// The answer to a write. Refusals are bounded (see [`bounded`]), so a
/// write of thousands of unknown names gets an answer of a few hundred
/// bytes.
pub fn answer(result: Result<&Map<String, Value>, &[Refusal]>) -> Vec<u8> {
    let body = match result {
        Ok(applied) => serde_json::json!({"ok": true, "applied": applied}),
        Err(refused) => serde_json::json!({"ok": false, "refused": bounded(refused)}),
    };
    body.to_string().into_bytes()
}

/// Refusals as answers and Events show them: at most
/// [`MAX_REFUSALS_SHOWN`], names and reasons cut short (they may echo
/// what the writer sent), then one saying how many more there were.
pub fn bounded(refused: &[Refusal]) -> Vec<Refusal> {
    let mut shown: Vec<Refusal> = refused
        .iter()
        .take(MAX_REFUSALS_SHOWN)
        .map(|r| Refusal {
            property: r.property.as_deref().map(truncated),
            reason: truncated_to(&r.reason, 256),
        })
        .collect();
    if refused.len() > MAX_REFUSALS_SHOWN {
        shown.push(Refusal::whole(format!(
            "and {} more refused",
            refused.len() - MAX_REFUSALS_SHOWN
        )));
    }
    shown
}

impl Accepts {
    /// Ok if the property takes `value`, else what it expects.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        check(self, value)
    }
}

fn check(accepts: &Accepts, value: &Value) -> Result<(), String> {
    let fits = match accepts {
        Accepts::Boolean => value.is_boolean(),
        Accepts::Number => value.as_f64().is_some_and(f64::is_finite),
        Accepts::Text => value.is_string(),
        Accepts::Integer { min, max } => integer(value).is_some_and(|v| (*min..=*max).contains(&v)),
        Accepts::OneOf(options) => value
            .as_str()
            .is_some_and(|s| options.iter().any(|o| o == s)),
        // Inside, the first problem is named by where it is.
        Accepts::Object(fields) => match value {
            Value::Object(given) => {
                for (name, v) in given {
                    match fields.iter().find(|(field, _)| field == name) {
                        None => return Err(format!("has no field {}", truncated(name))),
                        Some((_, inner)) => {
                            check(inner, v).map_err(|e| format!("field {} {e}", truncated(name)))?
                        }
                    }
                }
                true
            }
            _ => false,
        },
        Accepts::AnyObject => value.is_object(),
        Accepts::AnyArray => value.is_array(),
        Accepts::List(item) => match value {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    check(item, v).map_err(|e| format!("item {i} {e}"))?;
                }
                true
            }
            _ => false,
        },
    };
    if fits {
        return Ok(());
    }
    let expected = match accepts {
        Accepts::Boolean => "true or false".to_string(),
        Accepts::Number => "a number".to_string(),
        Accepts::Text => "a string".to_string(),
        Accepts::Integer { min, max } => format!("a whole number from {min} to {max}"),
        Accepts::OneOf(options) => format!("one of {}", options.join(", ")),
        Accepts::Object(_) | Accepts::AnyObject => "an object".to_string(),
        Accepts::List(_) | Accepts::AnyArray => "an array".to_string(),
    };
    Err(format!("expects {expected}, not {}", shown(value)))
}

/// A whole number, also when written as `3.0`.
fn integer(value: &Value) -> Option<i128> {
    if let Some(v) = value.as_i64() {
        return Some(v.into());
    }
    if let Some(v) = value.as_u64() {
        return Some(v.into());
    }
    let f = value.as_f64()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e38).then_some(f as i128)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as an answer or a message shows it: short, whatever it is.
pub fn shown(value: &Value) -> String {
    truncated(&value.to_string())
}

/// Text cut to 64 characters, for answers that echo what they were sent.
fn truncated(text: &str) -> String {
    truncated_to(text, 64)
}

fn truncated_to(text: &str, chars: usize) -> String {
    if text.chars().count() > chars {
        format!("{}...", text.chars().take(chars).collect::<String>())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fan() -> Vec<Property> {
        vec![
            Property {
                name: "on".into(),
                accepts: Accepts::Boolean,
                writes: Writes::Yes,
            },
            Property {
                name: "gear".into(),
                accepts: Accepts::OneOf(vec!["slow".into(), "middle".into(), "fast".into()]),
                writes: Writes::Yes,
            },
            Property {
                name: "limit".into(),
                accepts: Accepts::Integer {
                    min: -32768,
                    max: 32767,
                },
                writes: Writes::Yes,
            },
            Property {
                name: "rotatingSpeed".into(),
                accepts: Accepts::Integer { min: 0, max: 300 },
                writes: Writes::No,
            },
        ]
    }

    fn reasons(payload: &str) -> Vec<String> {
        decode(payload.as_bytes(), &fan())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_write_is_taken_whole() {
        let values = decode(br#"{"on": true, "gear": "fast", "limit": 12.0}"#, &fan()).unwrap();
        assert_eq!(values.len(), 3);
        let answer: Value = serde_json::from_slice(&answer(Ok(&values))).unwrap();
        assert_eq!(answer["ok"], true);
        assert_eq!(answer["applied"]["gear"], "fast");
    }

    #[test]
    fn every_problem_is_named() {
        assert_eq!(
            reasons(
                r#"{"rotatingSpeed": 5, "colour": "red", "gear": "turbo", "on": 1, "limit": 40000}"#
            ),
            [
                "colour is not a property of this device",
                "gear expects one of slow, middle, fast, not \"turbo\"",
                "limit expects a whole number from -32768 to 32767, not 40000",
                "on expects true or false, not 1",
                "rotatingSpeed is read-only",
            ]
        );
    }

    #[test]
    fn objects_and_lists_are_checked_inside_and_the_place_is_named() {
        let robot = vec![
            Property {
                name: "gender".into(),
                accepts: Accepts::Object(vec![
                    ("name".into(), Accepts::Text),
                    (
                        "code".into(),
                        Accepts::Integer {
                            min: i64::MIN.into(),
                            max: i64::MAX.into(),
                        },
                    ),
                ]),
                writes: Writes::Yes,
            },
            Property {
                name: "friends".into(),
                accepts: Accepts::List(Box::new(Accepts::Text)),
                writes: Writes::Yes,
            },
        ];
        let good = br#"{"gender": {"code": 2}, "friends": ["ann", "bob"]}"#;
        assert!(decode(good, &robot).is_ok());
        let bad = br#"{"gender": {"code": "two", "eyes": 2}, "friends": ["ann", 3]}"#;
        let refused: Vec<String> = decode(bad, &robot)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            refused,
            [
                "friends item 1 expects a string, not 3",
                "gender field code expects a whole number from -9223372036854775808 to 9223372036854775807, not \"two\"",
            ]
        );
        let unknown = decode(br#"{"gender": {"eyes": 2}}"#, &robot).unwrap_err();
        assert_eq!(unknown[0].to_string(), "gender has no field eyes");
        let wrong = decode(br#"{"friends": "ann"}"#, &robot).unwrap_err();
        assert_eq!(
            wrong[0].to_string(),
            "friends expects an array, not \"ann\""
        );
    }

    #[test]
    fn malformed_payloads_are_refused_as_a_whole() {
        assert!(reasons("{not json")[0].starts_with("is not JSON"));
        assert_eq!(
            reasons("[1]"),
            ["must be a JSON object of property values, not an array"]
        );
        assert_eq!(reasons("{}"), ["names no property"]);
        let big = format!("{{\"on\": \"{}\"}}", "x".repeat(MAX_WRITE_BYTES));
        assert!(reasons(&big)[0].contains("at most"));
    }

    #[test]
    fn an_answer_stays_small_whatever_the_write_names() {
        // A name of 5,000 characters first, then 1,999 more unknown ones.
        let many: Map<String, Value> = (0..2000)
            .map(|i| match i {
                0 => (format!("0{}", "n".repeat(5000)), Value::from(i)),
                _ => (format!("unknown-{i:04}"), Value::from(i)),
            })
            .collect();
        let payload = Value::Object(many).to_string();
        assert!(payload.len() > 40_000 && payload.len() < MAX_WRITE_BYTES);
        let refused = decode(payload.as_bytes(), &fan()).unwrap_err();
        let text = String::from_utf8(answer(Err(&refused))).unwrap();
        assert!(text.len() < 4096, "{} bytes", text.len());
        let shown: Value = serde_json::from_str(&text).unwrap();
        let listed = shown["refused"].as_array().unwrap();
        assert_eq!(listed.len(), MAX_REFUSALS_SHOWN + 1);
        assert_eq!(
            listed[MAX_REFUSALS_SHOWN]["reason"],
            "and 1990 more refused"
        );
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("on".to_string()),
                        Just("gear".to_string()),
                        Just("limit".to_string()),
                        Just("rotatingSpeed".to_string()),
                        ".{0,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any bytes at all: an answer, never a panic.
        #[test]
        fn any_bytes_are_decoded_or_refused(payload in prop::collection::vec(any::<u8>(), 0..256)) {
            let result = decode(&payload, &fan());
            let _ = answer(result.as_ref().map_err(Vec::as_slice));
        }

        /// Any JSON: accepted only if every value is one the device takes,
        /// and otherwise refused with at least one reason.
        #[test]
        fn any_json_is_checked_value_by_value(value in json()) {
            let payload = value.to_string();
            match decode(payload.as_bytes(), &fan()) {
                Ok(values) => {
                    prop_assert!(!values.is_empty());
                    for (name, v) in &values {
                        let p = fan().into_iter().find(|p| &p.name == name).unwrap();
                        prop_assert!(p.writes.refusal().is_none());
                        prop_assert!(check(&p.accepts, v).is_ok());
                    }
                }
                Err(refused) => prop_assert!(!refused.is_empty()),
            }
        }
    }
}
