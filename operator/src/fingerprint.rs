//! Short digests of what the operator wants an object to be, so that a cached
//! object can be compared with the wish without a request.

use sha2::{Digest, Sha256};

/// 16 hex digits of the SHA-256 of the value's JSON.
pub fn of(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).expect("the operator's own objects serialize");
    Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
