//! Events about DeviceLinks and devicelink's other objects
//! (events.k8s.io/v1), as the operator and the bridge record them.

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{Resource, api::ObjectMeta};

/// Who records an event: the controller's name and the process.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub controller: String,
    pub instance: String,
}

/// What happened to an object.
#[derive(Debug, Clone)]
pub struct Happening<'a> {
    pub warning: bool,
    /// CamelCase, such as `Unhealthy` or `WriteRefused`.
    pub reason: &'a str,
    /// What was being done, such as `DeviceConnected` or `Write`.
    pub action: &'a str,
    pub note: &'a str,
}

/// An Event about `link` (a DeviceLink, a KafkaBridge...); created with
/// `generateName` `<name>-` (names from `<name>.` are refused by the API
/// server).
pub fn about<K: Resource<DynamicType = ()>>(link: &K, what: &Happening, by: &Reporter) -> Event {
    about_ref(link.object_ref(&()), what, by)
}

/// An Event about the object `regarding` refers to (which must name it
/// and its namespace), as [`about`].
pub fn about_ref(regarding: ObjectReference, what: &Happening, by: &Reporter) -> Event {
    let name = regarding.name.as_deref().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(if what.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(what.reason.to_string()),
        action: Some(what.action.to_string()),
        note: Some(note_within_limit(what.note).to_string()),
        regarding: Some(regarding),
        reporting_controller: Some(by.controller.clone()),
        reporting_instance: Some(by.instance.clone()),
        ..Default::default()
    }
}

/// events.k8s.io refuses a note over 1,024 bytes (bytes, not characters):
/// cut at the last character boundary within them.
fn note_within_limit(note: &str) -> &str {
    const LIMIT: usize = 1024;
    if note.len() <= LIMIT {
        return note;
    }
    let mut end = LIMIT;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    &note[..end]
}

#[cfg(test)]
mod tests {
    use super::note_within_limit;

    #[test]
    fn a_note_is_cut_to_1024_bytes_on_a_character_boundary() {
        assert_eq!(note_within_limit("short"), "short");
        // 600 three-byte characters are 1,800 bytes.
        let wide = "\u{20ac}".repeat(600);
        let cut = note_within_limit(&wide);
        assert_eq!(cut.len(), 1023);
        assert_eq!(cut.chars().count(), 341);
        let ascii = "x".repeat(2000);
        assert_eq!(note_within_limit(&ascii).len(), 1024);
    }
}
