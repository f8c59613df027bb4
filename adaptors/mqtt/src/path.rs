//! Where a property's value is in a device's JSON message: a dotted path,
//! as Octopus's samples write it (`switch`, `action.gear`,
//! `parameter.power`), with array items by index (`colours.0`), an optional
//! JSONPath root (`$.action.gear`) and `\.` for a dot inside a key.

use serde_json::{Map, Value};

/// Longest path taken; a device's JSON is a handful of levels deep.
const MAX_SEGMENTS: usize = 32;

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<String>,
}

impl JsonPath {
    /// Parses a path, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let text = text.strip_prefix("$.").unwrap_or(text);
        let mut segments = vec![String::new()];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => segments.last_mut().expect("one").push(escaped),
                    None => return Err(format!("{text:?} ends with a lone \\")),
                },
                '.' => segments.push(String::new()),
                c => segments.last_mut().expect("one").push(c),
            }
        }
        if segments.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} has an empty part (two dots, or a dot at an end)"
            ));
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!("{text:?} is deeper than {MAX_SEGMENTS} levels"));
        }
        Ok(JsonPath { segments })
    }

    /// The value at the path, if the message has one there.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(root, |here, key| match here {
            Value::Object(fields) => fields.get(key),
            Value::Array(items) => items.get(key.parse::<usize>().ok()?),
            _ => None,
        })
    }

    /// Puts `value` at the path in `root`, making the objects on the way
    /// (a write to a device names only what it changes).
    pub fn set(&self, root: &mut Map<String, Value>, value: Value) {
        let (last, parents) = self.segments.split_last().expect("a path has a segment");
        let mut here = root;
        for key in parents {
            let slot = here
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            here = slot.as_object_mut().expect("made an object");
        }
        here.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(path: &str, message: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().get(message).cloned()
    }

    #[test]
    fn octopus_sample_paths_find_their_values() {
        let light = json!({
            "switch": true,
            "action": {"gear": "mid"},
            "parameter": {"power": 3.5, "luminance": 245},
            "colours": [{"r": 1}, {"r": 2}],
            "a.b": 7,
        });
        assert_eq!(at("switch", &light), Some(json!(true)));
        assert_eq!(at("action.gear", &light), Some(json!("mid")));
        assert_eq!(at("$.parameter.power", &light), Some(json!(3.5)));
        assert_eq!(at("colours.1.r", &light), Some(json!(2)));
        assert_eq!(at("a\\.b", &light), Some(json!(7)));
        assert_eq!(at("parameter.voltage", &light), None);
        assert_eq!(at("switch.on", &light), None);
    }

    #[test]
    fn bad_paths_are_named() {
        assert!(JsonPath::parse("a..b").unwrap_err().contains("empty part"));
        assert!(JsonPath::parse("").is_err());
        assert!(JsonPath::parse("a\\").unwrap_err().contains("lone"));
    }

    #[test]
    fn set_makes_the_objects_on_the_way() {
        let mut message = Map::new();
        JsonPath::parse("action.gear")
            .unwrap()
            .set(&mut message, json!("high"));
        JsonPath::parse("switch")
            .unwrap()
            .set(&mut message, json!(true));
        assert_eq!(
            Value::Object(message),
            json!({"action": {"gear": "high"}, "switch": true})
        );
    }

    proptest! {
        /// Whatever was set is found again, and no text panics the parser.
        #[test]
        fn set_then_get_round_trips(keys in prop::collection::vec("[a-z.\\\\]{1,6}", 1..5), n in any::<i64>()) {
            let text: String = keys
                .iter()
                .map(|k| k.replace('\\', "\\\\").replace('.', "\\."))
                .collect::<Vec<_>>()
                .join(".");
            let path = JsonPath::parse(&text).unwrap();
            let mut root = Map::new();
            path.set(&mut root, json!(n));
            let root = Value::Object(root);
            prop_assert_eq!(path.get(&root), Some(&json!(n)));
        }

        #[test]
        fn any_text_parses_or_is_refused(text in ".{0,40}") {
            let _ = JsonPath::parse(&text);
        }
    }
}
