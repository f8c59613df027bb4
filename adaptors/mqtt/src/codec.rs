//! Values of an MQTT device's properties: taken from what the device sends,
//! shown in the status, and put into what is sent to it.
//!
//! Devices send JSON, but many send every value as a string: `"3.5"` is
//! taken for a float, `"true"` for a boolean. On its own topic
//! (AttributedTopic) a value is the whole payload: JSON, or for a string
//! any text.

use devicelink_adaptor_runtime::Accepts;
use devicelink_api::mqtt_device::MqttValueType;
use devicelink_mqtt::write::shown;
use serde_json::Value;

/// The value as the property's type holds it, or why it does not fit.
pub fn decode(type_: MqttValueType, value: &Value) -> Result<Value, String> {
    let fits = match (type_, value) {
        (MqttValueType::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(value.clone()),
        (MqttValueType::Int, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| Value::from(f as i64)),
        (MqttValueType::Int, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        (MqttValueType::Float, Value::Number(_)) => Some(value.clone()),
        (MqttValueType::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        (MqttValueType::Boolean, Value::Bool(_)) => Some(value.clone()),
        (MqttValueType::Boolean, Value::String(s)) => match s.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (MqttValueType::String, Value::String(_)) => Some(value.clone()),
        (MqttValueType::Object, Value::Object(_)) => Some(value.clone()),
        (MqttValueType::Array, Value::Array(_)) => Some(value.clone()),
        _ => None,
    };
    fits.ok_or_else(|| format!("{} is not {}", shown(value), expected(type_)))
}

/// A value from a whole payload (a property on its own topic).
pub fn from_payload(type_: MqttValueType, payload: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("the payload ({} bytes) is not UTF-8 text", payload.len()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(json) => decode(type_, &json).or_else(|e| match type_ {
            // `open` is text; so is `"open"`, but also `42` for a string.
            MqttValueType::String => Ok(Value::String(text.to_string())),
            _ => Err(e),
        }),
        Err(_) => decode(type_, &Value::String(text.to_string())),
    }
}

/// A whole payload from a value (a property on its own topic): a string as
/// its text, anything else as JSON.
pub fn to_payload(value: &Value) -> Vec<u8> {
    text(value).into_bytes()
}

/// The value as the status shows it: a string as it is, anything else as
/// JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a write from MQTT may give for the type.
pub fn accepts(type_: MqttValueType) -> Accepts {
    match type_ {
        MqttValueType::Int => Accepts::Integer {
            min: i64::MIN.into(),
            max: i64::MAX.into(),
        },
        MqttValueType::Float => Accepts::Number,
        MqttValueType::String => Accepts::Text,
        MqttValueType::Boolean => Accepts::Boolean,
        MqttValueType::Object => Accepts::AnyObject,
        MqttValueType::Array => Accepts::AnyArray,
    }
}

fn expected(type_: MqttValueType) -> &'static str {
    match type_ {
        MqttValueType::Int => "a whole number",
        MqttValueType::Float => "a number",
        MqttValueType::String => "a string",
        MqttValueType::Boolean => "true or false",
        MqttValueType::Object => "an object",
        MqttValueType::Array => "an array",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_and_its_string_forms_are_taken() {
        use MqttValueType::*;
        assert_eq!(decode(Int, &json!(245)), Ok(json!(245)));
        assert_eq!(decode(Int, &json!("245")), Ok(json!(245)));
        assert_eq!(decode(Int, &json!(2.0)), Ok(json!(2)));
        assert_eq!(decode(Float, &json!("3.0")), Ok(json!(3.0)));
        assert_eq!(decode(Boolean, &json!("false")), Ok(json!(false)));
        assert_eq!(decode(Object, &json!({"a": 1})), Ok(json!({"a": 1})));
        assert_eq!(
            decode(Boolean, &json!("on")),
            Err("\"on\" is not true or false".into())
        );
        assert_eq!(
            decode(Int, &json!(2.5)),
            Err("2.5 is not a whole number".into())
        );
        assert_eq!(decode(Array, &json!({})), Err("{} is not an array".into()));
    }

    #[test]
    fn a_topic_payload_is_json_or_for_a_string_any_text() {
        use MqttValueType::*;
        assert_eq!(from_payload(String, b"open"), Ok(json!("open")));
        assert_eq!(from_payload(String, b"\"open\""), Ok(json!("open")));
        assert_eq!(from_payload(String, b"42"), Ok(json!("42")));
        assert_eq!(from_payload(Float, b"3.0"), Ok(json!(3.0)));
        assert_eq!(from_payload(Boolean, b"true"), Ok(json!(true)));
        assert_eq!(from_payload(Array, b"[1,2]"), Ok(json!([1, 2])));
        assert!(from_payload(Int, b"lots").is_err());
        assert!(
            from_payload(String, &[0xff, 0xfe])
                .unwrap_err()
                .contains("UTF-8")
        );
        assert_eq!(to_payload(&json!("open")), b"open");
        assert_eq!(to_payload(&json!({"r": 1})), br#"{"r":1}"#);
    }

    proptest! {
        /// Any bytes: a value or a reason, never a panic; and a value sent
        /// is read back the same.
        #[test]
        fn payloads_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            for t in [MqttValueType::Int, MqttValueType::Float, MqttValueType::String,
                      MqttValueType::Boolean, MqttValueType::Object, MqttValueType::Array] {
                if let Ok(v) = from_payload(t, &bytes) {
                    prop_assert_eq!(from_payload(t, &to_payload(&v)), Ok(v));
                }
            }
        }
    }
}
