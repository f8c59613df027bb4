//! Labels the operator puts on what it creates, so that adaptors and the
//! operator can select them without reading everything.

use sha2::{Digest, Sha256};

/// Marks objects created and owned by the operator.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "devicelink-operator";
/// The node an adaptor pod or a device belongs to (see [`node_label_value`]).
pub const NODE: &str = "edge.cattle.io/node";
/// The adaptor kind (`dummy`, `modbus`, ...) of an adaptor pod or a device.
pub const ADAPTOR: &str = "edge.cattle.io/adaptor";
/// What part of devicelink an object is for, such as the console's grants.
pub const COMPONENT: &str = "app.kubernetes.io/component";

/// A label value that stands for a node name.
///
/// Node names may be up to 253 characters but label values only 63, so a long
/// name is shortened to a prefix plus a digest that keeps it unique.
pub fn node_label_value(node: &str) -> String {
    if node.len() <= 63 {
        return node.to_string();
    }
    let digest = Sha256::digest(node.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let prefix: String = node.chars().take(50).collect();
    format!("{}-{hex}", prefix.trim_end_matches(['-', '.', '_']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_node_names_are_kept() {
        assert_eq!(node_label_value("edge-worker"), "edge-worker");
    }

    #[test]
    fn long_node_names_fit_a_label_and_stay_distinct() {
        let a = node_label_value(&format!("{}a", "n".repeat(100)));
        let b = node_label_value(&format!("{}b", "n".repeat(100)));
        assert!(a.len() <= 63, "{a}");
        assert_ne!(a, b);
    }
}
