//! A simulated device whose properties are declared in its spec
//! (DummyProtocolDevice), of any type the model allows, objects and arrays
//! nested in any way.
//!
//! Read-only properties are what the device measures: they take new values
//! on every sync (`parameters.syncInterval`, 2 s by default). Writable ones
//! are settings: they start at the spec's `value` (or at a first made-up
//! value) and keep it until written again, from the spec or from MQTT.
//!
//! Made-up values follow from the property's path and a count of syncs, so
//! a device tells the same story on every run: an int starts at a number
//! from 0 to 99 picked by its path and counts up by one per sync, a float is
//! that int over four, a string is `<path>-<count>`, a boolean alternates,
//! an array has three items, an object every declared field.

use std::{collections::BTreeMap, time::Duration};

use devicelink_adaptor_runtime::{Accepts, Change, DeviceContext, Property, Reason, Steps, Writes};
use devicelink_api::dummy::{
    DummyPropType, DummyProtocolDevice, DummyProtocolDeviceSpec, DummyProtocolDeviceStatus,
    DummyProtocolParameters, DummyProtocolProp, DummyProtocolValue,
};
use serde_json::{Map, Value};

/// A device as the runtime steps it: a sync every `syncInterval`.
pub struct Simulation {
    device: Device,
    period: Duration,
}

impl Steps for Simulation {
    type Model = DummyProtocolDevice;

    fn start(ctx: &DeviceContext<DummyProtocolDevice>) -> Simulation {
        let spec = &ctx.device().spec;
        let declared = Simulation {
            device: Device::new(spec),
            period: sync_interval(spec),
        };
        report(ctx, &declared.device);
        declared
    }

    fn changed(
        &mut self,
        ctx: &DeviceContext<DummyProtocolDevice>,
        change: Change<DummyProtocolDevice>,
    ) {
        match change {
            Change::Spec(changed) => {
                self.device.apply(&changed.spec);
                // A new interval paces anew (the runtime restarts the syncs).
                self.period = sync_interval(&changed.spec);
            }
            Change::Write(request) => {
                let Some(values) = ctx.decode_write(&request, &self.device.writable()) else {
                    return;
                };
                self.device.write(&values);
                ctx.answer_write(&request, Ok(&values));
            }
        }
        report(ctx, &self.device);
    }

    fn period(&self) -> Option<Duration> {
        Some(self.period)
    }

    fn tick(&mut self, ctx: &DeviceContext<DummyProtocolDevice>) {
        self.device.sync();
        report(ctx, &self.device);
    }
}

fn report(ctx: &DeviceContext<DummyProtocolDevice>, device: &Device) {
    ctx.report(&device.status());
    // A simulated device is always reachable; only its spec can be wrong.
    ctx.set_connected(match device.invalid() {
        None => Reason::Healthy.outcome(""),
        Some(why) => Reason::InvalidProperty.outcome(why),
    });
}

fn sync_interval(spec: &DummyProtocolDeviceSpec) -> Duration {
    devicelink_api::duration::sync_interval(
        &[spec
            .parameters
            .as_ref()
            .and_then(|p| p.sync_interval.as_ref())],
        DummyProtocolParameters::DEFAULT_SYNC_INTERVAL,
    )
}

/// Deepest nesting of declarations taken; a device is a handful of levels.
const MAX_DEPTH: usize = 8;
/// Items of a made-up array.
const ARRAY_ITEMS: usize = 3;

/// What a declared property holds, checked.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Int,
    Float,
    Text,
    Boolean,
    List(Box<Shape>),
    Object(BTreeMap<String, Shape>),
}

/// One declared property and its value now.
#[derive(Debug, Clone, PartialEq)]
struct Declared {
    shape: Shape,
    read_only: bool,
    value: Value,
    /// The spec's `value` last applied: only a change of it is written, so
    /// that a value written from MQTT outlives unrelated spec changes.
    spec_value: Option<Value>,
}

/// The device: its properties, how many syncs it has made, and what is
/// wrong with its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    properties: BTreeMap<String, Declared>,
    syncs: u64,
    /// The spec declared them under the older `props`.
    older_names: bool,
    /// Declarations or values of the spec that cannot be used, by path.
    invalid: Vec<String>,
}

impl Device {
    pub fn new(spec: &DummyProtocolDeviceSpec) -> Device {
        let mut device = Device {
            properties: BTreeMap::new(),
            syncs: 0,
            older_names: false,
            invalid: Vec::new(),
        };
        device.apply(spec);
        device
    }

    /// Takes a new spec: new declarations, and new values of writable
    /// properties whose spec `value` changed; the others keep theirs.
    pub fn apply(&mut self, spec: &DummyProtocolDeviceSpec) {
        self.older_names = spec.properties.is_empty() && !spec.props.is_empty();
        let field = if self.older_names {
            "props"
        } else {
            "properties"
        };
        self.invalid.clear();
        let before = std::mem::take(&mut self.properties);
        for (name, declaration) in spec.declared() {
            let path = format!("{field}.{name}");
            let shape = match shape_of(declaration, &path, 0) {
                Ok(shape) => shape,
                Err(problem) => {
                    self.invalid.push(problem);
                    continue;
                }
            };
            let read_only = declaration.read_only.unwrap_or(false);
            let wanted = match (&declaration.value, read_only) {
                (Some(_), true) => {
                    self.invalid.push(format!(
                        "{path}.value: the property is read-only; the device sets it"
                    ));
                    None
                }
                (Some(value), false) => match check(&shape, value) {
                    Ok(()) => Some(value.clone()),
                    Err(why) => {
                        self.invalid.push(format!("{path}.value {why}"));
                        None
                    }
                },
                (None, _) => None,
            };
            let old = before
                .get(name)
                .filter(|old| old.shape == shape && !read_only);
            let value = match (&wanted, old) {
                (Some(v), Some(old)) if old.spec_value.as_ref() == Some(v) => old.value.clone(),
                (Some(v), _) => v.clone(),
                (None, Some(old)) => old.value.clone(),
                (None, None) => made_up(&shape, name, self.syncs),
            };
            self.properties.insert(
                name.clone(),
                Declared {
                    shape,
                    read_only,
                    value,
                    spec_value: wanted,
                },
            );
        }
    }

    /// One sync: read-only properties take new values.
    pub fn sync(&mut self) {
        self.syncs += 1;
        for (name, p) in self.properties.iter_mut().filter(|(_, p)| p.read_only) {
            p.value = made_up(&p.shape, name, self.syncs);
        }
    }

    /// Applies a write from MQTT, already checked against [`Device::writable`].
    pub fn write(&mut self, values: &Map<String, Value>) {
        for (name, value) in values {
            if let Some(p) = self.properties.get_mut(name) {
                // An object written in part keeps its other fields.
                merge(&mut p.value, value.clone());
            }
        }
    }

    /// What writes from MQTT may set.
    pub fn writable(&self) -> Vec<Property> {
        self.properties
            .iter()
            .map(|(name, p)| Property {
                name: name.clone(),
                accepts: accepts(&p.shape),
                writes: if p.read_only { Writes::No } else { Writes::Yes },
            })
            .collect()
    }

    /// What is wrong with the spec, if anything.
    pub fn invalid(&self) -> Option<String> {
        (!self.invalid.is_empty()).then(|| self.invalid.join("; "))
    }

    /// The status the API server and MQTT see, under the name the spec used.
    pub fn status(&self) -> DummyProtocolDeviceStatus {
        let values = self
            .properties
            .iter()
            .map(|(name, p)| (name.clone(), shown(&p.shape, &p.value)))
            .collect();
        if self.older_names {
            DummyProtocolDeviceStatus {
                props: values,
                ..Default::default()
            }
        } else {
            DummyProtocolDeviceStatus {
                properties: values,
                ..Default::default()
            }
        }
    }
}

/// The shape a declaration describes, or what is wrong with it (named by
/// its path in the spec).
fn shape_of(declaration: &DummyProtocolProp, path: &str, depth: usize) -> Result<Shape, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path}: nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(match declaration.type_ {
        DummyPropType::Int => Shape::Int,
        DummyPropType::Float => Shape::Float,
        DummyPropType::String => Shape::Text,
        DummyPropType::Boolean => Shape::Boolean,
        DummyPropType::Array => {
            let items = declaration.items().ok_or_else(|| {
                format!("{path}: an array needs arrayProperties to describe its items")
            })?;
            Shape::List(Box::new(shape_of(
                items,
                &format!("{path}.arrayProperties"),
                depth + 1,
            )?))
        }
        DummyPropType::Object => {
            let mut fields = BTreeMap::new();
            for (name, field) in declaration.fields() {
                let at = format!("{path}.objectProperties.{name}");
                fields.insert(name.clone(), shape_of(field, &at, depth + 1)?);
            }
            Shape::Object(fields)
        }
    })
}

fn accepts(shape: &Shape) -> Accepts {
    match shape {
        Shape::Int => Accepts::Integer {
            min: i64::MIN.into(),
            max: i64::MAX.into(),
        },
        Shape::Float => Accepts::Number,
        Shape::Text => Accepts::Text,
        Shape::Boolean => Accepts::Boolean,
        Shape::List(item) => Accepts::List(Box::new(accepts(item))),
        Shape::Object(fields) => Accepts::Object(
            fields
                .iter()
                .map(|(name, shape)| (name.clone(), accepts(shape)))
                .collect(),
        ),
    }
}

/// Whether `value` is one the shape holds, else why not.
fn check(shape: &Shape, value: &Value) -> Result<(), String> {
    accepts(shape).check(value)
}

/// A value of the shape, made up from the path and the sync count.
fn made_up(shape: &Shape, path: &str, syncs: u64) -> Value {
    let start = path
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 100;
    let count = start + syncs;
    match shape {
        Shape::Int => Value::from(count),
        Shape::Float => Value::from(count as f64 / 4.0),
        Shape::Text => Value::from(format!("{path}-{syncs}")),
        Shape::Boolean => Value::from(count.is_multiple_of(2)),
        Shape::List(item) => Value::Array(
            (0..ARRAY_ITEMS)
                .map(|i| made_up(item, &format!("{path}[{i}]"), syncs))
                .collect(),
        ),
        Shape::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, shape)| {
                    (
                        name.clone(),
                        made_up(shape, &format!("{path}.{name}"), syncs),
                    )
                })
                .collect(),
        ),
    }
}

/// Writes `new` over `old`; objects field by field.
fn merge(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (name, value) in new {
                match old.get_mut(&name) {
                    Some(slot) => merge(slot, value),
                    None => {
                        old.insert(name, value);
                    }
                }
            }
        }
        (old, new) => *old = new,
    }
}

/// A value as the status shows it: in the field that matches its type.
fn shown(shape: &Shape, value: &Value) -> DummyProtocolValue {
    let mut out = DummyProtocolValue {
        type_: match shape {
            Shape::Int => DummyPropType::Int,
            Shape::Float => DummyPropType::Float,
            Shape::Text => DummyPropType::String,
            Shape::Boolean => DummyPropType::Boolean,
            Shape::List(_) => DummyPropType::Array,
            Shape::Object(_) => DummyPropType::Object,
        },
        int_value: None,
        string_value: None,
        float_value: None,
        boolean_value: None,
        array_value: Vec::new(),
        object_value: BTreeMap::new(),
    };
    match shape {
        Shape::Int => out.int_value = value.as_i64(),
        Shape::Float => out.float_value = value.as_f64().map(|f| f.to_string()),
        Shape::Text => out.string_value = value.as_str().map(str::to_string),
        Shape::Boolean => out.boolean_value = value.as_bool(),
        Shape::List(item) => {
            out.array_value = value
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| to_json(shown(item, v)))
                .collect();
        }
        Shape::Object(fields) => {
            let given = value.as_object();
            out.object_value = fields
                .iter()
                .filter_map(|(name, shape)| {
                    let v = given?.get(name)?;
                    Some((name.clone(), to_json(shown(shape, v))))
                })
                .collect();
        }
    }
    out
}

fn to_json(value: DummyProtocolValue) -> Value {
    serde_json::to_value(value).expect("a status value is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_adaptor_runtime::decode_write;
    use serde_json::json;

    /// Octopus's robot sample, in the newest field names.
    fn robot(properties: Value) -> DummyProtocolDeviceSpec {
        serde_json::from_value(json!({"protocol": {"ip": "127.0.0.1"}, "properties": properties}))
            .unwrap()
    }

    fn sample() -> Value {
        json!({
            "name": {"type": "string", "readOnly": true},
            "gender": {"type": "object", "objectProperties": {
                "name": {"type": "string"}, "code": {"type": "int"}}},
            "friends": {"type": "array", "arrayProperties": {"type": "string"}},
            "power": {"type": "float", "readOnly": true},
            "awake": {"type": "boolean", "value": true},
        })
    }

    fn status(device: &Device) -> Value {
        serde_json::to_value(device.status()).unwrap()
    }

    #[test]
    fn every_type_is_reported_in_its_field() {
        let device = Device::new(&robot(sample()));
        assert_eq!(device.invalid(), None);
        let s = status(&device);
        let p = &s["properties"];
        assert_eq!(p["name"]["type"], "string");
        assert_eq!(p["name"]["stringValue"], "name-0");
        assert_eq!(p["awake"]["booleanValue"], true);
        assert!(
            p["power"]["floatValue"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .is_ok()
        );
        assert_eq!(p["gender"]["type"], "object");
        assert_eq!(p["gender"]["objectValue"]["code"]["type"], "int");
        assert!(p["gender"]["objectValue"]["code"]["intValue"].is_i64());
        assert_eq!(p["friends"]["arrayValue"].as_array().unwrap().len(), 3);
        assert_eq!(p["friends"]["arrayValue"][1]["stringValue"], "friends[1]-0");
        assert!(s.get("props").is_none());
    }

    #[test]
    fn read_only_properties_change_on_each_sync_and_settings_hold() {
        let mut device = Device::new(&robot(sample()));
        let before = status(&device);
        device.sync();
        let after = status(&device);
        assert_eq!(after["properties"]["name"]["stringValue"], "name-1");
        assert_ne!(before["properties"]["power"], after["properties"]["power"]);
        assert_eq!(
            before["properties"]["gender"],
            after["properties"]["gender"]
        );
        assert_eq!(before["properties"]["awake"], after["properties"]["awake"]);
        // The same story on every run.
        let mut again = Device::new(&robot(sample()));
        again.sync();
        assert_eq!(status(&again), after);
    }

    #[test]
    fn writes_change_what_is_reported_and_objects_keep_unwritten_fields() {
        let mut device = Device::new(&robot(sample()));
        let code = status(&device)["properties"]["gender"]["objectValue"]["code"].clone();
        let payload = br#"{"gender": {"name": "robot"}, "friends": ["ann"], "awake": false}"#;
        let values = decode_write(payload, &device.writable()).unwrap();
        device.write(&values);
        let p = status(&device)["properties"].clone();
        assert_eq!(p["gender"]["objectValue"]["name"]["stringValue"], "robot");
        assert_eq!(p["gender"]["objectValue"]["code"], code);
        assert_eq!(
            p["friends"]["arrayValue"],
            json!([{"type": "string", "stringValue": "ann"}])
        );
        assert_eq!(p["awake"]["booleanValue"], false);
        // Read-only ones are refused by the write decoder.
        let refused = decode_write(br#"{"name": "x"}"#, &device.writable()).unwrap_err();
        assert_eq!(refused[0].to_string(), "name is read-only");
    }

    #[test]
    fn a_new_spec_value_replaces_a_setting_and_a_new_declaration_starts_over() {
        let mut device = Device::new(&robot(sample()));
        // Written from MQTT: an unrelated spec change keeps it.
        device.write(json!({"awake": false}).as_object().unwrap());
        let mut unrelated = sample();
        unrelated["power"]["description"] = json!("Watts.");
        device.apply(&robot(unrelated));
        assert_eq!(
            status(&device)["properties"]["awake"]["booleanValue"],
            false
        );
        device.write(json!({"awake": true}).as_object().unwrap());
        let mut spec = sample();
        spec["awake"]["value"] = json!(false);
        spec["gender"] = json!({"type": "int"});
        device.apply(&robot(spec));
        let p = status(&device)["properties"].clone();
        assert_eq!(p["awake"]["booleanValue"], false);
        assert_eq!(p["gender"]["type"], "int");
    }

    #[test]
    fn the_older_names_are_reported_under_props() {
        let spec: DummyProtocolDeviceSpec = serde_json::from_value(json!({
            "protocol": {"ip": "127.0.0.1"},
            "props": {"gender": {"type": "object", "objectProps": {"code": {"type": "int"}}},
                      "friends": {"type": "array", "arrayProps": {"type": "int"}}},
        }))
        .unwrap();
        let s = status(&Device::new(&spec));
        assert!(s.get("properties").is_none());
        assert_eq!(s["props"]["gender"]["objectValue"]["code"]["type"], "int");
        assert_eq!(s["props"]["friends"]["arrayValue"][0]["type"], "int");
    }

    #[test]
    fn bad_declarations_and_values_are_named_and_the_rest_runs() {
        let spec = robot(json!({
            "list": {"type": "array"},
            "deep": {"type": "object", "objectProperties": {"inner": {"type": "array"}}},
            "count": {"type": "int", "value": "three"},
            "name": {"type": "string", "readOnly": true, "value": "x"},
            "ok": {"type": "boolean"},
        }));
        let device = Device::new(&spec);
        let invalid = device.invalid().unwrap();
        assert!(
            invalid.contains("properties.list: an array needs arrayProperties"),
            "{invalid}"
        );
        assert!(
            invalid
                .contains("properties.deep.objectProperties.inner: an array needs arrayProperties"),
            "{invalid}"
        );
        assert!(
            invalid.contains("properties.count.value expects a whole number"),
            "{invalid}"
        );
        assert!(
            invalid.contains("properties.name.value: the property is read-only"),
            "{invalid}"
        );
        assert!(status(&device)["properties"]["ok"]["booleanValue"].is_boolean());
    }
}
