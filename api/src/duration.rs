//! Durations as Kubernetes (and Octopus) write them: `500ms`, `15s`, `1m30s`,
//! `2h`. Kept as the text the user wrote, so a round trip through the API
//! server changes nothing; [`Duration::to_std`] reads it.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A Go-style duration string.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Duration(pub String);

/// The grammar the API server checks (a CEL regex, so no backslashes); the
/// same one [`parse`] reads.
pub const PATTERN: &str = "^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$";

/// The longest duration any field takes, as written and as a value: a
/// year is beyond every interval and timeout a device needs, and keeps
/// `now + duration` far from overflowing wherever a user's value meets the
/// clock.
pub const MAX_TEXT: &str = "8760h";
pub const MAX: std::time::Duration = std::time::Duration::from_secs(8760 * 3600);

/// The CEL rule for a duration of at most `max` (Go syntax, as CEL's
/// `duration()` reads it), and its message.
pub fn rule(max: &str) -> serde_json::Value {
    serde_json::json!({
        // `false && error` is false in CEL: text that is not a duration
        // gets this message, not duration()'s parse error.
        "rule": format!("self.matches('{PATTERN}') && duration(self) <= duration('{max}')"),
        "message": format!("must be a duration from 0 to {max}, such as 500ms, 15s, 1m30s or 2h"),
    })
}

impl Duration {
    /// A duration from its text, e.g. `Duration::from("15s")`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration, or `None` if the text is not one or is over [`MAX`]
    /// (the API server refuses both, so this only happens for objects
    /// that bypassed it).
    pub fn to_std(&self) -> Option<std::time::Duration> {
        parse(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [rule(MAX_TEXT)],
        })
    }
}

/// The schema of `keepAlive`: MQTT carries it in 16 bits of seconds, so
/// more than 65535s cannot be said to a broker.
pub fn keep_alive_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 64,
        "x-kubernetes-validations": [rule("65535s")],
    })
}

/// The shortest sync interval any adaptor keeps: a device read more often
/// than every 100 ms is a typing mistake more likely than a wish, and would
/// take a core for nothing.
pub const FASTEST_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a device is synced, by one rule for every model: the first
/// of `given` that is set (a model's protocol-level `syncInterval` before
/// its `parameters.syncInterval`, where it has both), else the model's
/// `default`. Zero counts as not set (so does text that is not a duration,
/// which the API server refuses); a value under [`FASTEST_SYNC`] is raised
/// to it.
pub fn sync_interval(
    given: &[Option<&Duration>],
    default: std::time::Duration,
) -> std::time::Duration {
    given
        .iter()
        .flatten()
        .find_map(|d| d.to_std().filter(|d| !d.is_zero()))
        .unwrap_or(default)
        .max(FASTEST_SYNC)
}

/// Parses a Go-style duration such as `30s`, `1m30s`, `500ms` or `1h`;
/// `None` for anything else, and for more than [`MAX`].
pub fn parse(text: &str) -> Option<std::time::Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = std::time::Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(std::time::Duration::try_from_secs_f64(value * scale).ok()?)?;
    }
    (total <= MAX).then_some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sync_interval_is_the_first_set_then_the_default_never_under_the_fastest() {
        use std::time::Duration as Std;
        let (five, zero, fast) = (
            Duration::from("5s"),
            Duration::from("0"),
            Duration::from("1ms"),
        );
        let default = Std::from_secs(15);
        assert_eq!(
            super::sync_interval(&[Some(&five), None], default),
            Std::from_secs(5)
        );
        assert_eq!(
            super::sync_interval(&[None, Some(&five)], default),
            Std::from_secs(5)
        );
        assert_eq!(
            super::sync_interval(&[Some(&zero), Some(&five)], default),
            Std::from_secs(5)
        );
        assert_eq!(super::sync_interval(&[Some(&zero)], default), default);
        assert_eq!(super::sync_interval(&[], default), default);
        assert_eq!(
            super::sync_interval(&[Some(&fast)], default),
            super::FASTEST_SYNC
        );
    }

    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn reads_go_durations() {
        assert_eq!(parse("30s"), Some(Std::from_secs(30)));
        assert_eq!(parse("1m30s"), Some(Std::from_secs(90)));
        assert_eq!(parse("500ms"), Some(Std::from_millis(500)));
        assert_eq!(parse("1.5h"), Some(Std::from_secs(5400)));
        assert_eq!(parse("0"), Some(Std::ZERO));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "ten", "10", "10x", "s", "1m30"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_durations_are_none_not_a_panic() {
        let huge = "5000000000000000h".repeat(4);
        assert_eq!(parse(&huge), None);
        assert_eq!(parse("1e400h"), None);
        assert_eq!(Duration::new("8761h").to_std(), None);
        assert_eq!(Duration::new(MAX_TEXT).to_std(), Some(MAX));
    }

    proptest::proptest! {
        /// Any text: a duration or `None`, never a panic.
        #[test]
        fn any_text_parses_or_not(text in "[0-9.hmsuµn]{0,64}") {
            let _ = parse(&text);
        }
    }

    /// The `default` each model's schema shows for `syncInterval` is the
    /// constant its adaptor falls back on.
    #[test]
    fn schema_defaults_of_sync_intervals_are_the_adaptors() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
        fn defaults(schema: &JSONSchemaProps, path: &str, found: &mut Vec<(String, String)>) {
            for (name, field) in schema.properties.iter().flatten() {
                let here = format!("{path}.{name}");
                if name == "syncInterval"
                    && let Some(default) = &field.default
                {
                    found.push((here.clone(), default.0.as_str().unwrap_or_default().into()));
                }
                defaults(field, &here, found);
            }
        }
        let constants = [
            (
                "DummyProtocolDevice",
                crate::dummy::DummyProtocolParameters::DEFAULT_SYNC_INTERVAL,
            ),
            (
                "ModbusDevice",
                crate::modbus::ModbusParameters::DEFAULT_SYNC_INTERVAL,
            ),
            (
                "OPCUADevice",
                crate::opcua::OpcuaParameters::DEFAULT_SYNC_INTERVAL,
            ),
            (
                "BluetoothDevice",
                crate::ble::BluetoothParameters::DEFAULT_SYNC_INTERVAL,
            ),
            (
                "MQTTDevice",
                crate::mqtt_device::MqttDeviceProtocol::DEFAULT_SYNC_INTERVAL,
            ),
        ];
        let mut checked = 0;
        for crd in crate::all_crds() {
            let mut found = Vec::new();
            for version in &crd.spec.versions {
                if let Some(schema) = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                {
                    defaults(schema, "", &mut found);
                }
            }
            let kind = crd.spec.names.kind.as_str();
            let constant = constants.iter().find(|(k, _)| *k == kind).map(|(_, c)| *c);
            for (path, default) in &found {
                assert_eq!(
                    parse(default),
                    constant,
                    "{kind}{path}: the schema's default {default:?} is not the adaptor's"
                );
                checked += 1;
            }
        }
        assert!(checked >= 4, "only {checked} schema defaults found");
    }
}
