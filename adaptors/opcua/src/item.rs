//! A property of an OPCUADevice made ready to watch: its node, how its
//! values are encoded, and when it is read and written.

use std::str::FromStr;

use devicelink_adaptor_runtime::{
    Property,
    access::{self, ReadMode, WriteMode},
    arithmetic,
    value::desired,
};
use devicelink_api::{
    opcua::OpcuaProperty,
    property::{ArithmeticOperation, ValueType},
};
use opcua::types::NodeId;
use serde_json::Value;

use crate::codec::Encoding;

/// One property, checked and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub type_: ValueType,
    /// As the spec gives it (for messages and `nsu=` lookups).
    pub node_spelled: String,
    pub node: NodeRef,
    pub encoding: Encoding,
    pub read: ReadMode,
    pub write: WriteMode,
    pub operations: Vec<ArithmeticOperation>,
    pub precision: u32,
    /// The spec's `value`, to be written to the node.
    pub desired: Option<Value>,
}

/// A node by index, or by namespace URI (resolved once connected, as
/// indexes are the server's to give).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeRef {
    Id(NodeId),
    InNamespace { uri: String, id: NodeId },
}

impl Item {
    /// Resolves a property; the error names the field and says why.
    pub fn new(p: &OpcuaProperty) -> Result<Item, String> {
        let spelled = p.visitor.node_id.trim().to_string();
        let node = parse_node(&spelled)
            .ok_or_else(|| format!("visitor.nodeID {spelled:?} is not an OPC-UA node ID"))?;
        let (read, write) = access::modes(&p.access_modes, p.read_only, true);
        let desired = p.value.as_ref().map(desired);
        if desired.is_some() && write == WriteMode::Never {
            return Err("value is set but the property cannot be written".into());
        }
        Ok(Item {
            name: p.name.clone(),
            type_: p.type_,
            node_spelled: spelled,
            node,
            encoding: Encoding::of(p.type_),
            read,
            write,
            operations: p.visitor.arithmetic_operations.clone(),
            precision: p
                .visitor
                .arithmetic_operation_precision
                .map_or(arithmetic::DEFAULT_PRECISION, |p| p.clamp(0, 24) as u32),
            desired,
        })
    }

    /// The property as writes from MQTT see it.
    pub fn as_property(&self) -> Property {
        Property {
            name: self.name.clone(),
            accepts: self.encoding.accepts(),
            writes: access::mqtt_writes(self.write, self.desired.is_some()),
        }
    }
}

/// `ns=2;s=x`, `i=2258`, `nsu=urn:x;s=y`.
fn parse_node(spelled: &str) -> Option<NodeRef> {
    if let Some(rest) = spelled.strip_prefix("nsu=") {
        let (uri, id) = rest.split_once(';')?;
        return Some(NodeRef::InNamespace {
            uri: uri.to_string(),
            id: NodeId::from_str(id).ok()?,
        });
    }
    NodeId::from_str(spelled).ok().map(NodeRef::Id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_api::{opcua::OpcuaVisitor, property::AccessMode};

    fn property(node: &str) -> OpcuaProperty {
        OpcuaProperty {
            name: "p".into(),
            description: None,
            type_: ValueType::Int32,
            visitor: OpcuaVisitor {
                node_id: node.into(),
                browse_name: None,
                arithmetic_operations: vec![],
                arithmetic_operation_precision: None,
            },
            read_only: None,
            access_modes: vec![],
            value: None,
        }
    }

    #[test]
    fn node_ids_in_every_form() {
        assert_eq!(
            Item::new(&property("ns=2;s=the.answer")).unwrap().node,
            NodeRef::Id(NodeId::new(2, "the.answer"))
        );
        assert_eq!(
            Item::new(&property("i=2258")).unwrap().node,
            NodeRef::Id(NodeId::new(0, 2258u32))
        );
        assert_eq!(
            Item::new(&property("nsu=urn:devicelink:test;s=x"))
                .unwrap()
                .node,
            NodeRef::InNamespace {
                uri: "urn:devicelink:test".into(),
                id: NodeId::new(0, "x")
            }
        );
        let e = Item::new(&property("ns=x;q=1")).unwrap_err();
        assert!(e.starts_with("visitor.nodeID"), "{e}");
    }

    #[test]
    fn read_only_properties_refuse_writes() {
        let mut p = property("i=1");
        p.read_only = Some(true);
        let item = Item::new(&p).unwrap();
        assert_eq!(
            item.as_property().writes,
            devicelink_adaptor_runtime::Writes::No
        );
        p.value = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1));
        assert!(Item::new(&p).is_err());
        p.read_only = None;
        p.access_modes = vec![AccessMode::WriteMany];
        assert_eq!(Item::new(&p).unwrap().write, WriteMode::Every);
        assert_eq!(Item::new(&p).unwrap().read, ReadMode::Never);
    }
}
