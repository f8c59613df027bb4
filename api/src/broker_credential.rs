//! BrokerCredential, `edge.cattle.io/v1alpha1` (devicelink's own, not
//! Octopus's): asks the operator for a username on the broker it manages
//! (the chart's, `broker.auth=managed`) that reaches the devices of one
//! namespace. Whoever may update that namespace's DeviceLinks may ask for
//! one that writes them; whoever may get them, for one that reads them
//! (the `devicelink-broker-credentials` admission policy checks it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a BrokerCredential.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "edge.cattle.io",
    version = "v1alpha1",
    kind = "BrokerCredential",
    namespaced,
    status = "BrokerCredentialStatus",
    shortname = "bcred",
    doc = "BrokerCredential asks the operator for a username and password on the broker it manages, reaching the devices of this namespace; the operator writes them to a Secret here and rotates them.",
    printcolumn(name = "ACCESS", type_ = "string", json_path = ".spec.access"),
    printcolumn(name = "SECRET", type_ = "string", json_path = ".status.secretName"),
    printcolumn(name = "USERNAME", type_ = "string", json_path = ".status.username"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerCredentialSpec {
    /// What it may do with this namespace's devices on the managed broker.
    pub access: BrokerAccessLevel,
}

/// What a BrokerCredential may do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BrokerAccessLevel {
    /// Subscribe to the devices' status and to the answers to writes.
    Read,
    /// Read, and publish on the devices' write topics.
    Write,
}

/// What the operator made for a BrokerCredential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerCredentialStatus {
    /// The Secret (in this namespace) with `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The username in use now (it changes with each rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Ready`: whether the broker takes the credential.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
