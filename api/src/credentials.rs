//! Credentials that device settings give inline or by reference to an item of
//! the DeviceLink's `spec.references` (so that they can live in a Secret).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::devicelink::ReferenceItem;

/// A username and a password, each inline or from `spec.references`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.username) || has(self.usernameRef)",
        "message": "needs a username: set username or usernameRef",
    },
    {
        "rule": "has(self.password) || has(self.passwordRef)",
        "message": "needs a password: set password or passwordRef",
    },
    {
        "rule": "!(has(self.username) && has(self.usernameRef))",
        "message": "set username or usernameRef, not both",
    },
    {
        "rule": "!(has(self.password) && has(self.passwordRef))",
        "message": "set password or passwordRef, not both",
    },
]))]
pub struct BasicAuth {
    /// The username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub username: Option<String>,
    /// The username, from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<ReferenceItem>,
    /// The password. Prefer passwordRef, so that the password stays in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub password: Option<String>,
    /// The password, from an item of `spec.references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_ref: Option<ReferenceItem>,
}
