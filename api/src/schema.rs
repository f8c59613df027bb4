//! Schema pieces that schemars cannot derive: fields the API server must keep
//! as they are written, and label maps checked like Kubernetes labels.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use crate::devicelink::REFERENCE_PATHS;

/// An object whose content is not pruned: free-form adaptor parameters.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A DeviceLink's `template.spec`: kept as written (its schema is the
/// model's), except that the `*Ref` fields at [`REFERENCE_PATHS`] are typed so
/// that validation rules can see them.
pub fn template_spec(_: &mut SchemaGenerator) -> Schema {
    let mut root = free_object();
    for path in REFERENCE_PATHS {
        let mut node = &mut root;
        for segment in path.split('.') {
            node = node
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("properties is an object")
                .entry(segment)
                .or_insert_with(|| Value::Object(free_object()))
                .as_object_mut()
                .expect("a schema is an object");
        }
        *node = reference_item();
    }
    Schema::try_from(Value::Object(root)).expect("an object is a schema")
}

fn free_object() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    }) else {
        unreachable!()
    };
    map
}

fn reference_item() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "type": "object",
        "description": "Refers to one item of one entry of spec.references.",
        "required": ["name", "item"],
        "properties": {
            "name": {"type": "string", "maxLength": 63, "description": "Name of the entry in spec.references."},
            "item": {"type": "string", "maxLength": 253, "description": "Key within that entry."},
        },
    }) else {
        unreachable!()
    };
    map
}

/// Labels: keys and values as Kubernetes accepts them on an object.
pub fn labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {
            "type": "string",
            "maxLength": 63,
            "x-kubernetes-validations": [{
                "rule": "self.matches('^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')",
                "message": "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            }],
        },
        "x-kubernetes-validations": [{
            "rule": "self.all(k, k.size() <= 316 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",
            "message": "keys must be label keys: an optional DNS prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'",
        }],
    })
}

/// A regular expression of a KafkaBridge mapping. The API server compiles it
/// (CEL's `matches` with the pattern as the expression: RE2, as the bridge's
/// own regex crate reads it) and refuses one that does not compile: the
/// rule is true for any pattern that compiles, and an error otherwise (both
/// sides fail; `|| true` would absorb the error).
pub fn pattern(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "description": "A regular expression (RE2 syntax) looked for in the level.",
        "x-kubernetes-validations": [{
            "rule": "''.matches(self) || !''.matches(self)",
            "message": "must be a regular expression (RE2 syntax)",
        }],
    })
}

/// A Kafka topic name, as Kafka accepts it.
pub fn kafka_topic(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 249,
        "x-kubernetes-validations": [{
            "rule": "self.matches('^[A-Za-z0-9._-]+$') && self != '.' && self != '..'",
            "message": "must be a Kafka topic name: letters, digits, '.', '_' and '-', not '.' or '..'",
        }],
    })
}

/// A mapping policy's headers: level index to header name.
pub fn level_headers(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 128},
        "x-kubernetes-validations": [{
            "rule": "self.all(k, k.matches('^(0|[1-9][0-9]?)$'))",
            "message": "keys must be level indexes 0 to 99, e.g. \"0\"",
        }],
    })
}

/// The CEL rule of a field that names a node (a DeviceLink's
/// `spec.adaptor.node`, a DeviceDiscovery's `spec.node`).
pub fn node_name_rule() -> Value {
    json!({
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "message": "must be a node name: lower-case letters, digits, '-' and '.'",
    })
}
