//! What a device model must be for an adaptor to drive it. A module of its
//! own so that the registry, the writers and the release can all name it
//! without importing one another.

use std::fmt::Debug;

use devicelink_api::mqtt::WithMqttExtension;
use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};

/// A device model an adaptor drives: any namespaced device resource that
/// carries the MQTT extension.
pub trait Model:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + kube::core::object::HasStatus
    + WithMqttExtension
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
}

impl<K> Model for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + kube::core::object::HasStatus
        + WithMqttExtension
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static
{
}
