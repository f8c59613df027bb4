//! Events about DeviceLinks (events.k8s.io/v1), as the operator and the
//! adaptors record them.

use k8s_openapi::{api::events::v1::Event, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::DeviceLink;

/// Who records an event: the controller's name and the process.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub controller: String,
    pub instance: String,
}

/// What happened to a DeviceLink.
#[derive(Debug, Clone)]
pub struct Happening<'a> {
    pub warning: bool,
    /// CamelCase, such as `Unhealthy` or `WriteRefused`.
    pub reason: &'a str,
    /// What was being done, such as `DeviceConnected` or `Write`.
    pub action: &'a str,
    pub note: &'a str,
}

/// An Event about `link`; created with `generateName` `<name>-` (names
/// from `<name>.` are refused by the API server).
pub fn about(link: &DeviceLink, what: &Happening, by: &Reporter) -> Event {
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", link.name_any())),
            namespace: link.namespace(),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(if what.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(what.reason.to_string()),
        action: Some(what.action.to_string()),
        // events.k8s.io limits the note to 1 kB.
        note: Some(what.note.chars().take(1000).collect()),
        regarding: Some(link.object_ref(&())),
        reporting_controller: Some(by.controller.clone()),
        reporting_instance: Some(by.instance.clone()),
        ..Default::default()
    }
}
