//! Events of what adaptors report on DeviceLinks: each change of the
//! status or reason of DeviceConnected, and each rise of the count of
//! writes from MQTT they refused (`status.refusedWrites`).
//!
//! Adaptors write only status. The operator sees every change of every
//! DeviceLink anyway, and records these Events as it sees them. (Events
//! recorded by adaptors had to be held to their own node's DeviceLinks by
//! an admission policy that compared each Event with every DeviceLink of
//! its namespace: with 10,000 DeviceLinks that took the API server's
//! cores.)
//!
//! Of each DeviceLink it keeps two numbers. What changed while no replica
//! was leading is in the status, not told again as an Event.

use std::collections::{HashMap, HashSet};

use devicelink_api::{
    DeviceLink, DeviceLinkCondition,
    condition::{self, ConditionType},
};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Resource, runtime::watcher};

/// What was last seen of each DeviceLink, by a digest of its UID.
#[derive(Default)]
pub struct Reported {
    seen: HashMap<u64, Seen>,
    /// The DeviceLinks of a relist in progress: those not in it are gone.
    relisted: Option<HashSet<u64>>,
}

#[derive(Default, Clone, Copy, PartialEq)]
struct Seen {
    /// A digest of DeviceConnected's status and reason, once an adaptor
    /// has set it.
    connected: Option<u64>,
    refused: i64,
}

/// What an adaptor reported newly, as an Event to record.
#[derive(Debug, PartialEq)]
pub struct Happened {
    pub regarding: ObjectReference,
    pub warning: bool,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

impl Reported {
    /// What `event` shows newly. A DeviceLink seen for the first time in
    /// a (re)list tells nothing new: only a change from what was seen does.
    pub fn observe(&mut self, event: &watcher::Event<DeviceLink>) -> Vec<Happened> {
        match event {
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                vec![]
            }
            watcher::Event::InitApply(link) => {
                let key = key(link);
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(key);
                }
                match self.seen.get(&key).copied() {
                    Some(before) => self.changed(key, before, link),
                    None => {
                        self.seen.insert(key, seen(link));
                        vec![]
                    }
                }
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    self.seen.retain(|k, _| relisted.contains(k));
                }
                vec![]
            }
            watcher::Event::Apply(link) => {
                let key = key(link);
                let before = self.seen.get(&key).copied().unwrap_or_default();
                self.changed(key, before, link)
            }
            watcher::Event::Delete(link) => {
                self.seen.remove(&key(link));
                vec![]
            }
        }
    }

    fn changed(&mut self, key: u64, before: Seen, link: &DeviceLink) -> Vec<Happened> {
        let now = seen(link);
        self.seen.insert(key, now);
        let mut happened = vec![];
        if now.connected.is_some() && now.connected != before.connected {
            let connected = condition::find(link.conditions(), ConditionType::DeviceConnected)
                .expect("seen as set");
            happened.push(connected_event(link, connected));
        }
        if now.refused > before.refused {
            happened.push(refused_event(link, now.refused - before.refused));
        }
        happened
    }
}

fn key(link: &DeviceLink) -> u64 {
    digest(&link.meta().uid)
}

fn digest(value: &impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

/// What of `link` the adaptor set. DeviceConnected pending (the
/// operator's placeholder until the adaptor speaks) is not the adaptor's.
fn seen(link: &DeviceLink) -> Seen {
    let pending = ConditionType::DeviceConnected.pending();
    let connected = condition::find(link.conditions(), ConditionType::DeviceConnected)
        .filter(|c| !(c.status == pending.status.as_str() && c.reason == pending.reason))
        .map(|c| digest(&(&c.status, &c.reason)));
    let refused = link.refused_writes().map_or(0, |r| r.count);
    Seen { connected, refused }
}

fn connected_event(link: &DeviceLink, c: &DeviceLinkCondition) -> Happened {
    Happened {
        regarding: link.object_ref(&()),
        warning: c.status == "False",
        reason: c.reason.clone(),
        action: "DeviceConnected",
        note: crate::events::describe(c),
    }
}

fn refused_event(link: &DeviceLink, count: i64) -> Happened {
    let last = link
        .refused_writes()
        .map(|r| r.last_message.as_str())
        .unwrap_or_default();
    let note = if count == 1 {
        format!("a write from MQTT was refused: {last}")
    } else {
        format!("{count} writes from MQTT were refused; the last: {last}")
    };
    Happened {
        regarding: link.object_ref(&()),
        warning: true,
        reason: "WriteRefused".into(),
        action: "Write",
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(uid: &str, status: serde_json::Value) -> DeviceLink {
        serde_json::from_value(json!({
            "metadata": {"name": "fan", "namespace": "ns", "uid": uid},
            "spec": {"adaptor": {"node": "n", "name": "adaptors.edge.cattle.io/dummy"},
                     "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1",
                               "kind": "DummySpecialDevice"},
                     "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn connected(status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"conditions": [
            {"type": "NodeExisted", "status": "True", "reason": "Found"},
            {"type": "ModelExisted", "status": "True", "reason": "Found"},
            {"type": "AdaptorExisted", "status": "True", "reason": "Found"},
            {"type": "DeviceCreated", "status": "True", "reason": "Created"},
            {"type": "DeviceConnected", "status": status, "reason": reason, "message": message},
        ]})
    }

    fn notes(happened: Vec<Happened>) -> Vec<(String, bool, String)> {
        happened
            .into_iter()
            .map(|h| (h.reason, h.warning, h.note))
            .collect()
    }

    #[test]
    fn each_change_of_device_connected_is_told_once_and_not_the_pending_placeholder() {
        let mut reported = Reported::default();
        let apply =
            |r: &mut Reported, status| notes(r.observe(&watcher::Event::Apply(link("u1", status))));
        assert!(apply(&mut reported, json!({})).is_empty());
        assert!(
            apply(&mut reported, connected("Unknown", "Connecting", "waiting")).is_empty(),
            "the operator's placeholder"
        );
        assert_eq!(
            apply(&mut reported, connected("False", "Unreachable", "no route")),
            vec![(
                "Unreachable".into(),
                true,
                "DeviceConnected is False (Unreachable): no route".into()
            )]
        );
        assert!(
            apply(
                &mut reported,
                connected("False", "Unreachable", "timed out")
            )
            .is_empty(),
            "a new message alone"
        );
        assert_eq!(
            apply(&mut reported, connected("True", "Healthy", "")),
            vec![(
                "Healthy".into(),
                false,
                "DeviceConnected is True (Healthy)".into()
            )]
        );
        // Reset by the operator (a node went away), then connected again.
        assert!(apply(&mut reported, json!({})).is_empty());
        assert_eq!(
            apply(&mut reported, connected("True", "Healthy", "")).len(),
            1
        );
    }

    #[test]
    fn a_rise_of_refused_writes_is_told_with_how_many() {
        let mut reported = Reported::default();
        let refused = |count: i64, last: &str| json!({"refusedWrites": {"count": count, "lastMessage": last}});
        let mut apply =
            |status| notes(reported.observe(&watcher::Event::Apply(link("u1", status))));
        assert_eq!(
            apply(refused(1, "gear is not one of slow, fast")),
            vec![(
                "WriteRefused".into(),
                true,
                "a write from MQTT was refused: gear is not one of slow, fast".into()
            )]
        );
        assert_eq!(
            apply(refused(4, "on is not a boolean"))[0].2,
            "3 writes from MQTT were refused; the last: on is not a boolean"
        );
        assert!(apply(refused(4, "on is not a boolean")).is_empty());
    }

    #[test]
    fn a_relist_tells_only_what_changed_since_it_was_seen_and_forgets_the_gone() {
        let mut reported = Reported::default();
        let healthy = connected("True", "Healthy", "");
        // The first list after the start: what is, not what happened.
        reported.observe(&watcher::Event::Init);
        assert!(
            reported
                .observe(&watcher::Event::InitApply(link("u1", healthy.clone())))
                .is_empty()
        );
        reported.observe(&watcher::Event::InitApply(link("u2", healthy.clone())));
        reported.observe(&watcher::Event::InitDone);
        // A relist after the watch was lost: u1 went away meanwhile, u2
        // lost its device.
        reported.observe(&watcher::Event::Init);
        let lost = reported.observe(&watcher::Event::InitApply(link(
            "u2",
            connected("False", "Unreachable", ""),
        )));
        assert_eq!(lost.len(), 1);
        reported.observe(&watcher::Event::InitDone);
        assert_eq!(reported.seen.len(), 1, "u1 is forgotten");
    }
}
