//! Schema pieces that schemars cannot derive: fields the API server must keep
//! as they are written.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content is not pruned: a device spec in a template, or
/// free-form adaptor parameters.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
