//! Connections shared by the devices of one adaptor.
//!
//! A connection is what a broker sees of a client: its client ID, its will,
//! its session. A device that sets none of those (no `clientID`, no `will`,
//! `cleanSession` not false) asks for nothing a connection of its own would
//! give it, so devices whose connection settings are equal (server,
//! protocol, credentials, TLS material, headers, keep-alive and the other
//! timings) share one, under a client ID that says whose it is: the
//! adaptor pod's name and a digest of the settings. Each device keeps its
//! own topics, QoS, retained status, write topic, outbox and store.

use std::{
    cell::RefCell,
    collections::{HashMap, hash_map::DefaultHasher},
    hash::Hasher,
    sync::{Arc, Mutex},
};

use devicelink_api::mqtt::{MqttClientOptions, MqttOptions};

use crate::{
    MqttMetrics,
    connection::{Connection, Member, Plan, Timing},
    error::{PublisherError, Resolve},
    options::client_options,
    subscriptions::MemberId,
    topic::TopicContext,
    wire::Dial,
};

/// Messages a shared connection keeps in flight at once. Sized for many
/// devices publishing about once a second each (rumqttc sets a slot aside
/// for each up front).
const SHARED_INFLIGHT: u16 = 1000;
/// Requests a shared connection's queue holds (it grows only as used).
const SHARED_REQUESTS: usize = 20_000;

/// Whether a device with these options may share a connection.
pub fn shareable(options: &MqttOptions) -> bool {
    options.client.shared_connection != Some(false)
        && options.client.client_id.is_none()
        && options.message.will.is_none()
        && options.client.clean_session != Some(false)
}

/// How to reach the broker as `options` say, and a digest that is equal for
/// options that one connection can serve: everything that is the
/// connection's, including the values `*Ref` fields resolve to (a rotated
/// password is another connection), and nothing that is the device's own
/// (client ID, session, store, buffer bounds).
pub fn dial_and_digest(
    options: &MqttOptions,
    link: &TopicContext,
    resolve: Resolve,
) -> Result<(Dial, Digest), PublisherError> {
    let resolved = RefCell::new(Vec::new());
    let recording = |item: &devicelink_api::devicelink::ReferenceItem| {
        let value = resolve(item)?;
        resolved.borrow_mut().push(value.clone());
        Ok(value)
    };
    let dial = client_options(options, link, &recording)?;
    let digest = digest(&options.client, &resolved.into_inner());
    Ok((dial, digest))
}

/// A digest of the settings of a connection: equal for the devices one
/// connection can serve. A number, not its text: each device keeps one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(u64);

impl Digest {
    /// Its first twelve hex digits, for a client ID.
    pub fn short(self) -> String {
        format!("{:012x}", self.0 >> 16)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn digest(client: &MqttClientOptions, resolved: &[String]) -> Digest {
    let mut client = client.clone();
    client.client_id = None;
    client.clean_session = None;
    client.store = None;
    client.resume_subs = None;
    client.message_channel_depth = None;
    client.message_channel_bytes = None;
    client.shared_connection = None;
    let mut hasher = DefaultHasher::new();
    hasher.write(&serde_json::to_vec(&client).unwrap_or_default());
    for value in resolved {
        hasher.write(value.as_bytes());
        hasher.write_u8(0);
    }
    Digest(hasher.finish())
}

/// The shared connections of one adaptor, by the digest of their settings.
pub struct Connections {
    /// Client IDs start with it: the adaptor pod's name.
    prefix: String,
    open: Mutex<HashMap<Digest, Arc<Connection>>>,
    metrics: MqttMetrics,
}

impl Connections {
    /// Shared connections whose client IDs start with `prefix`, counted in
    /// `metrics`.
    pub fn new(prefix: impl Into<String>, metrics: MqttMetrics) -> Arc<Connections> {
        Arc::new(Connections {
            prefix: prefix.into(),
            open: Mutex::default(),
            metrics,
        })
    }

    /// The client ID of the shared connection for settings `digest`.
    pub fn client_id(&self, digest: Digest) -> String {
        format!("{}-{}", self.prefix, digest.short())
    }

    /// Puts `member` on the connection for `digest`, made from `dial` and
    /// `timing` if there is none yet.
    pub(crate) fn join(
        &self,
        digest: Digest,
        mut dial: Dial,
        server: &str,
        timing: Timing,
        member: Member,
    ) -> (Arc<Connection>, MemberId) {
        // Joining and the last member's leaving are one at a time, so that
        // nobody joins a connection that is ending.
        let mut open = self.open.lock().unwrap();
        let connection = open.entry(digest).or_insert_with(|| {
            dial.client_id = self.client_id(digest);
            dial.clean = true;
            dial.will = None;
            dial.inflight = SHARED_INFLIGHT;
            dial.connect_timeout = timing.connect;
            Connection::start(Plan {
                dial,
                server: server.to_string(),
                capacity: SHARED_REQUESTS,
                resume_subs: false,
                timing,
            })
        });
        let id = connection.join(member);
        let connection = connection.clone();
        self.count(&open, 1);
        (connection, id)
    }

    /// Takes a member off its shared connection; true if it was the last
    /// (the connection is then ending and no longer offered).
    pub(crate) fn leave(&self, digest: Digest, connection: &Arc<Connection>, id: MemberId) -> bool {
        let mut open = self.open.lock().unwrap();
        let last = connection.leave(id);
        if last
            && open
                .get(&digest)
                .is_some_and(|c| Arc::ptr_eq(c, connection))
        {
            open.remove(&digest);
        }
        self.count(&open, -1);
        last
    }

    /// Updates the metrics after a device joined (+1) or left (-1).
    fn count(&self, open: &HashMap<Digest, Arc<Connection>>, devices: i64) {
        self.metrics.shared_connections.set(open.len() as i64);
        self.metrics.shared_connection_devices.inc_by(devices);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: serde_json::Value) -> MqttOptions {
        serde_json::from_value(value).unwrap()
    }

    fn link(name: &str) -> TopicContext {
        TopicContext {
            namespace: "plant".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn digest_of(o: &MqttOptions, password: &str) -> Digest {
        let resolve = |_: &devicelink_api::devicelink::ReferenceItem| Ok(password.to_string());
        dial_and_digest(o, &link("fan"), &resolve).unwrap().1
    }

    #[test]
    fn what_is_the_devices_own_does_not_split_connections_and_the_rest_does() {
        let base = json!({"client": {"server": "tcp://broker:1883"},
                          "message": {"topic": "plant/:name"}});
        let with = |patch: serde_json::Value| {
            let mut v = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                v["client"][k] = val.clone();
            }
            options(v)
        };
        let plain = digest_of(&with(json!({})), "");
        for own in [
            json!({"messageChannelDepth": 5}),
            json!({"messageChannelBytes": 1024}),
            json!({"store": {"type": "File"}}),
        ] {
            assert_eq!(digest_of(&with(own.clone()), ""), plain, "{own}");
        }
        for connection_level in [
            json!({"server": "tcp://other:1883"}),
            json!({"protocolVersion": 5}),
            json!({"keepAlive": "10s"}),
            json!({"basicAuth": {"username": "u", "password": "p"}}),
        ] {
            assert_ne!(
                digest_of(&with(connection_level.clone()), ""),
                plain,
                "{connection_level}"
            );
        }
        // A password by reference: its value counts.
        let by_ref = with(json!({"basicAuth": {"username": "u",
            "passwordRef": {"name": "auth", "item": "password"}}}));
        assert_ne!(digest_of(&by_ref, "one"), digest_of(&by_ref, "two"));
        assert_eq!(digest_of(&by_ref, "one"), digest_of(&by_ref, "one"));
    }

    #[test]
    fn a_client_id_a_will_or_a_kept_session_keeps_a_connection_of_its_own() {
        let o = |client: serde_json::Value, message: serde_json::Value| {
            options(json!({"client": client, "message": message}))
        };
        let server = json!({"server": "tcp://b:1883"});
        let topic = json!({"topic": "t"});
        assert!(shareable(&o(server.clone(), topic.clone())));
        assert!(shareable(&o(
            json!({"server": "tcp://b:1883", "cleanSession": true}),
            topic.clone()
        )));
        assert!(!shareable(&o(
            json!({"server": "tcp://b:1883", "clientID": "mine"}),
            topic.clone()
        )));
        assert!(!shareable(&o(
            json!({"server": "tcp://b:1883", "cleanSession": false}),
            topic.clone()
        )));
        assert!(!shareable(&o(
            json!({"server": "tcp://b:1883", "sharedConnection": false}),
            topic
        )));
        assert!(!shareable(&o(
            server,
            json!({"topic": "t", "will": {"content": "Z29uZQ=="}})
        )));
    }
}
