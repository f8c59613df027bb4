//! What a connection subscribes to for its members, and who gets what
//! arrives.
//!
//! Members may ask for the same filter (devices sharing a write topic, or
//! MQTT-native devices listening to one topic): the connection subscribes
//! once, at the highest QoS asked for, and unsubscribes only when the last
//! member asking for it leaves. A message goes to every member whose filter
//! matches its topic, once, however many of its filters match.
//!
//! Retained messages: a broker hands them over (retain flag set) only in
//! answer to a subscription, and hands them over again whenever a filter is
//! subscribed again, which a new member asking for a filter others already
//! have needs (it must see the topic's retained state, as it would on a
//! connection of its own). A member that already heard a topic since its
//! filter was subscribed knows newer or the same, so a retained message on
//! that topic is not given to it again.

use std::{
    collections::{HashMap, HashSet, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
};

use rumqttc::QoS;

/// A member's place on its connection (a device on it).
pub(crate) type MemberId = u64;

/// The subscriptions of one connection.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// By filter: the QoS subscribed with, and who asked (a member once).
    by_filter: HashMap<String, Subscribers>,
    /// The filters with wildcards, looked at for every message; the others
    /// are found by the topic itself.
    wildcards: Vec<String>,
    /// Per member, the topics it heard since its filters were subscribed
    /// (hashed; a member that heard nothing has no entry).
    heard: HashMap<MemberId, HashSet<u64>>,
}

struct Subscribers {
    qos: QoS,
    members: Vec<MemberId>,
}

impl Subscriptions {
    /// `member` asks for `filters`; returns what to subscribe: each of its
    /// filters, at the highest QoS any member asks for (a filter others
    /// have already is subscribed again, for its retained messages).
    pub fn add(&mut self, member: MemberId, filters: &[(String, QoS)]) -> Vec<(String, QoS)> {
        let mut subscribe = Vec::with_capacity(filters.len());
        for (filter, qos) in filters {
            let subscribers = self.by_filter.entry(filter.clone()).or_insert_with(|| {
                if is_wildcard(filter) {
                    self.wildcards.push(filter.clone());
                }
                Subscribers {
                    qos: *qos,
                    members: Vec::new(),
                }
            });
            if *qos > subscribers.qos {
                subscribers.qos = *qos;
            }
            if !subscribers.members.contains(&member) {
                subscribers.members.push(member);
            }
            subscribe.push((filter.clone(), subscribers.qos));
        }
        subscribe
    }

    /// `member` leaves; returns the filters nobody asks for any more (to
    /// unsubscribe).
    pub fn remove(&mut self, member: MemberId, filters: &[(String, QoS)]) -> Vec<String> {
        self.heard.remove(&member);
        let mut unsubscribe = Vec::new();
        for (filter, _) in filters {
            let Some(subscribers) = self.by_filter.get_mut(filter) else {
                continue;
            };
            subscribers.members.retain(|m| *m != member);
            if subscribers.members.is_empty() {
                self.by_filter.remove(filter);
                self.wildcards.retain(|w| w != filter);
                unsubscribe.push(filter.clone());
            }
        }
        unsubscribe
    }

    /// Every filter, once, for a new connection; members hear retained
    /// messages afresh.
    pub fn all(&mut self) -> Vec<(String, QoS)> {
        self.heard.clear();
        let mut all: Vec<_> = self
            .by_filter
            .iter()
            .map(|(filter, s)| (filter.clone(), s.qos))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Who gets a message on `topic`: each member once; a retained message
    /// only members that have not heard the topic yet.
    pub fn recipients(&mut self, topic: &str, retained: bool) -> Vec<MemberId> {
        let mut to: Vec<MemberId> = Vec::new();
        if let Some(s) = self.by_filter.get(topic) {
            to.extend(&s.members);
        }
        for filter in &self.wildcards {
            if rumqttc::matches(topic, filter) {
                to.extend(&self.by_filter[filter].members);
            }
        }
        if to.len() > 1 {
            to.sort_unstable();
            to.dedup();
        }
        let hash = hash_of(topic);
        to.retain(|m| {
            let heard = self.heard.entry(*m).or_default();
            // `insert` is false when it was heard already.
            heard.insert(hash) || !retained
        });
        to
    }
}

fn is_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

fn hash_of(topic: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    topic.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(filter: &str, qos: QoS) -> (String, QoS) {
        (filter.to_string(), qos)
    }

    #[test]
    fn a_filter_is_subscribed_at_the_highest_qos_asked_and_dropped_with_its_last_member() {
        let mut s = Subscriptions::default();
        assert_eq!(
            s.add(1, &[f("a/b", QoS::AtMostOnce)]),
            [f("a/b", QoS::AtMostOnce)]
        );
        // A second member: subscribed again (its retained messages), at the higher QoS.
        assert_eq!(
            s.add(2, &[f("a/b", QoS::ExactlyOnce), f("c/+", QoS::AtLeastOnce)]),
            [f("a/b", QoS::ExactlyOnce), f("c/+", QoS::AtLeastOnce)]
        );
        // A third asking for less still subscribes at the highest.
        assert_eq!(
            s.add(3, &[f("a/b", QoS::AtMostOnce)]),
            [f("a/b", QoS::ExactlyOnce)]
        );
        assert_eq!(
            s.all(),
            [f("a/b", QoS::ExactlyOnce), f("c/+", QoS::AtLeastOnce)]
        );
        assert!(s.remove(1, &[f("a/b", QoS::AtMostOnce)]).is_empty());
        assert_eq!(
            s.remove(2, &[f("a/b", QoS::ExactlyOnce), f("c/+", QoS::AtLeastOnce)]),
            ["c/+"]
        );
        assert!(s.recipients("c/d", false).is_empty(), "c/+ is gone");
        assert_eq!(s.remove(3, &[f("a/b", QoS::AtMostOnce)]), ["a/b"]);
        assert!(s.all().is_empty());
    }

    #[test]
    fn a_message_goes_to_every_member_whose_filter_matches_once() {
        let mut s = Subscriptions::default();
        s.add(
            1,
            &[
                f("plant/+/state", QoS::AtLeastOnce),
                f("plant/fan/state", QoS::AtLeastOnce),
            ],
        );
        s.add(2, &[f("plant/#", QoS::AtLeastOnce)]);
        s.add(3, &[f("plant/pump/state", QoS::AtLeastOnce)]);
        assert_eq!(s.recipients("plant/fan/state", false), [1, 2]);
        assert_eq!(s.recipients("plant/pump/state", false), [1, 2, 3]);
        assert_eq!(s.recipients("plant/pump/speed", false), [2]);
        assert!(s.recipients("office/fan/state", false).is_empty());
    }

    #[test]
    fn a_retained_message_reaches_only_members_that_have_not_heard_its_topic() {
        let mut s = Subscriptions::default();
        s.add(1, &[f("light/state", QoS::AtLeastOnce)]);
        // The first subscription's retained state reaches the first member.
        assert_eq!(s.recipients("light/state", true), [1]);
        assert_eq!(s.recipients("light/state", false), [1]);
        // A second member joins: the filter is subscribed again and the
        // broker hands the retained state over again; only the newcomer
        // takes it.
        s.add(2, &[f("light/state", QoS::AtLeastOnce)]);
        assert_eq!(s.recipients("light/state", true), [2]);
        // Live messages reach both.
        assert_eq!(s.recipients("light/state", false), [1, 2]);
        // After a reconnect every filter is subscribed afresh: both take
        // the retained state again, once.
        s.all();
        assert_eq!(s.recipients("light/state", true), [1, 2]);
        assert!(s.recipients("light/state", true).is_empty());
    }
}
