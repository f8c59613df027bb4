//! The broker side: one connection per distinct set of broker settings
//! (server, protocol, credentials, TLS material), subscribed to the status
//! topics of the DeviceLinks that use them. What arrives goes to the hub
//! (the WebSocket clients) and the catalog (the last message of each).
//!
//! Broker credentials and TLS material given by reference come from the
//! Secrets and ConfigMaps the operator grants the console (`--grant-console`:
//! exactly those the MQTT extensions reference), followed like the adaptors
//! follow theirs, so a rotated password moves the DeviceLink to a new
//! connection by itself.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use devicelink_api::{DeviceLink, devicelink::MQTT_EXTENSION_REFERENCE_PATHS};
use devicelink_mqtt::{
    TopicContext,
    answers::{Requested, Requests},
    observe::{Observed, observe},
    wire::{self, Seen, Version},
};
use devicelink_references::{Following, ObjectKey, References, Update, objects_used_under};
use futures::{StreamExt, stream::BoxStream};
use kube::{Client, ResourceExt};
use rumqttc::QoS;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::{
    brokers::AllowedBrokers,
    catalog::{Catalog, LinkKey, Stream},
    hub::{Hub, StreamMessage},
};

/// Requests a connection may queue: subscriptions of every DeviceLink on it
/// are queued at once after a reconnect. The queue only grows when used.
const REQUESTS: usize = 65_536;
/// Longest wait between two attempts to reach a broker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Which DeviceLinks each status topic of a connection belongs to.
type Topics = Arc<Mutex<HashMap<String, Vec<LinkKey>>>>;

/// How a write reaches each followed DeviceLink's device; shared with the
/// API.
pub type Routes = Arc<Mutex<HashMap<LinkKey, Route>>>;

/// Why a write got no answer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the console is not connected to the device's broker: {0}")]
    NotConnected(String),
    #[error("no answer on {0} in time: is the DeviceLink's adaptor running?")]
    NoAnswer(String),
}

/// A DeviceLink's write topic on the connection that follows it.
#[derive(Clone)]
pub struct Route {
    channel: Arc<Channel>,
    write_topic: String,
    /// MQTT 3.1.1 answers carry nothing to tell them apart: one write at a
    /// time per DeviceLink.
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
}

/// A broker connection's client and what its task shares with the
/// writes routed over it.
struct Channel {
    client: wire::Client,
    /// The writes made over it, waiting for their answers.
    requests: Requests,
    /// Up, or why not.
    state: Arc<Mutex<Result<(), String>>>,
}

impl Route {
    pub fn write_topic(&self) -> &str {
        &self.write_topic
    }

    /// Publishes `payload` on the write topic and waits up to `within` for
    /// the adaptor's answer: with MQTT 5 on a topic of the console's own
    /// under the write topic, matched by correlation data; with 3.1.1 on
    /// the write topic's default answer topic.
    pub async fn write(&self, payload: Vec<u8>, within: Duration) -> Result<Vec<u8>, WriteError> {
        if let Err(why) = self.channel.state.lock().unwrap().clone() {
            return Err(WriteError::NotConnected(why));
        }
        let _turn = match self.channel.requests.version() {
            Version::V4 => Some(self.one_at_a_time.lock().await),
            Version::V5 => None,
        };
        let requested = self
            .channel
            .requests
            .request(&self.channel.client, &self.write_topic, payload, within)
            .await;
        match requested {
            Requested::Answered(answer) => Ok(answer),
            Requested::NotSent => Err(WriteError::NotConnected(
                "its queue of requests is full".into(),
            )),
            Requested::NoAnswer(reply_topic) => Err(WriteError::NoAnswer(reply_topic)),
        }
    }
}

/// A connection to one broker, shared by the DeviceLinks that reach it
/// with equal settings.
struct BrokerConnection {
    channel: Arc<Channel>,
    topics: Topics,
    task: JoinHandle<()>,
}

/// Follows the DeviceLinks' device topics as the DeviceLinks change.
pub struct Feed {
    catalog: Arc<Catalog>,
    hub: Arc<Hub>,
    client_id: String,
    /// The brokers it may connect to; other DeviceLinks are listed with why.
    brokers: AllowedBrokers,
    connections: HashMap<String, BrokerConnection>,
    /// What each DeviceLink is followed on: (connection, status topic).
    following: HashMap<LinkKey, (String, String)>,
    /// The spec each DeviceLink was last looked at in: (uid, generation).
    seen: HashMap<LinkKey, (Option<String>, Option<i64>)>,
    routes: Routes,
    /// The Secrets and ConfigMaps the followed brokers' settings use.
    references: Following,
    reference_updates: mpsc::UnboundedReceiver<(ObjectKey, Update)>,
}

impl Feed {
    pub fn new(
        catalog: Arc<Catalog>,
        hub: Arc<Hub>,
        client_id: String,
        brokers: AllowedBrokers,
        client: Client,
        identity: Option<(String, String)>,
    ) -> Feed {
        let (mut references, reference_updates) = Following::new(client);
        if let Some((namespace, name)) = identity {
            references.follow_identity(&namespace, &name);
        }
        Feed {
            catalog,
            hub,
            client_id,
            brokers,
            connections: HashMap::new(),
            following: HashMap::new(),
            seen: HashMap::new(),
            routes: Routes::default(),
            references,
            reference_updates,
        }
    }

    /// Where writes to the followed DeviceLinks go.
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// Runs until the DeviceLinks' watch ends.
    pub async fn run(mut self, changes: BoxStream<'static, DeviceLink>) {
        // Changes come in bursts (the first list, a kubectl apply of many):
        // each burst is one look at the whole set, which costs no request.
        let mut bursts = changes.ready_chunks(4096);
        loop {
            tokio::select! {
                burst = bursts.next() => match burst {
                    Some(_) => self.sync(),
                    None => break,
                },
                Some((object, update)) = self.reference_updates.recv() => {
                    self.references.record(&object, update);
                    self.look_again_at_users_of(&object);
                    self.sync();
                }
            }
        }
        for (_, connection) in self.connections.drain() {
            connection.channel.client.try_disconnect();
            connection.task.abort();
        }
    }

    /// A referenced object changed (or could not be read): the DeviceLinks
    /// whose broker settings use it are looked at again.
    fn look_again_at_users_of(&mut self, object: &ObjectKey) {
        if self.references.is_identity(object) {
            // Every DeviceLink on the managed broker may use it.
            self.seen.clear();
            return;
        }
        for link in self.catalog.links.state() {
            if objects_used_under(&link, MQTT_EXTENSION_REFERENCE_PATHS).contains(object) {
                self.seen
                    .remove(&(link.namespace().unwrap_or_default(), link.name_any()));
            }
        }
    }

    /// Makes the subscriptions and connections what the DeviceLinks in the
    /// cache ask for. Only DeviceLinks whose spec changed (or that are new)
    /// are looked at again: their status changes all the time.
    fn sync(&mut self) {
        let links = self.catalog.links.state();
        let present: HashSet<LinkKey> = links
            .iter()
            .map(|l| (l.namespace().unwrap_or_default(), l.name_any()))
            .collect();
        let gone: Vec<LinkKey> = self
            .seen
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.seen.remove(&key);
            self.unfollow(&key);
            self.catalog.forget(&key);
        }
        // Before resolving: an object just wanted reads as "being read".
        self.references.want(
            links
                .iter()
                .flat_map(|l| objects_used_under(l, MQTT_EXTENSION_REFERENCE_PATHS))
                .collect(),
        );
        for link in links {
            let key = (link.namespace().unwrap_or_default(), link.name_any());
            let version = (link.uid(), link.metadata.generation);
            if self.seen.get(&key) == Some(&version) {
                continue;
            }
            self.seen.insert(key.clone(), version);
            let resolved = self.references.resolve(&link);
            match observed(&link, &self.client_id, &self.brokers, &resolved) {
                Ok(Some(o)) => self.follow(key, o),
                Ok(None) => {
                    self.unfollow(&key);
                    self.catalog.set_stream(key, Stream::None);
                }
                Err(why) => {
                    self.unfollow(&key);
                    self.catalog.set_stream(key, Stream::Unavailable(why));
                }
            }
        }
        // Connections nobody needs any more.
        self.connections.retain(|_, c| {
            let needed = !c.topics.lock().unwrap().is_empty();
            if !needed {
                c.channel.client.try_disconnect();
                c.task.abort();
            }
            needed
        });
    }

    /// Follows a DeviceLink's status topic on the connection its settings
    /// call for (moving it if they changed), and routes its writes there.
    fn follow(&mut self, key: LinkKey, o: Observed) {
        let on = (o.connection.clone(), o.status_topic.clone());
        if self.following.get(&key) != Some(&on) {
            self.unfollow(&key);
            let connection = self
                .connections
                .entry(o.connection.clone())
                .or_insert_with(|| {
                    info!(client_id = %o.dial.client_id, "connecting to a broker");
                    BrokerConnection::start(o.dial, self.catalog.clone(), self.hub.clone())
                });
            connection.follow(&o.status_topic, &key);
            self.following.insert(key.clone(), on);
        }
        let connection = &self.connections[&o.connection];
        let route = connection.route(&o.write_topic);
        self.routes.lock().unwrap().insert(key.clone(), route);
        let state = connection.channel.state.lock().unwrap().clone();
        self.catalog.set_stream(
            key,
            Stream::Following {
                status_topic: o.status_topic,
                write_topic: o.write_topic,
                connected: state.is_ok(),
                error: state.err(),
            },
        );
    }

    fn unfollow(&mut self, key: &LinkKey) {
        if let Some((connection, topic)) = self.following.remove(key) {
            self.routes.lock().unwrap().remove(key);
            if let Some(c) = self.connections.get(&connection) {
                c.unfollow(&topic, key);
            }
        }
    }
}

/// How the console follows a DeviceLink's device: None when it has no MQTT
/// extension, an error naming the field when its settings cannot be used
/// (or a value they refer to cannot be read yet).
fn observed(
    link: &DeviceLink,
    client_id: &str,
    brokers: &AllowedBrokers,
    references: &References,
) -> Result<Option<Observed>, String> {
    const FIELD: &str = "spec.template.spec.extension.mqtt";
    let Some(options) = link.spec.mqtt_extension() else {
        return Ok(None);
    };
    let options = options?;
    brokers
        .check(&options.client.server)
        .map_err(|e| format!("{FIELD}.{e}"))?;
    let context = TopicContext {
        namespace: link.namespace().unwrap_or_default(),
        name: link.name_any(),
        uid: link.uid().unwrap_or_default(),
    };
    let resolve: devicelink_mqtt::publisher::Resolve =
        &|item| references.text(item).map_err(|e| e.to_string());
    observe(&options, &context, resolve, client_id)
        .map(Some)
        .map_err(|e| format!("{FIELD}.{e}"))
}

impl BrokerConnection {
    fn start(dial: wire::Dial, catalog: Arc<Catalog>, hub: Arc<Hub>) -> BrokerConnection {
        let requests = Requests::new(dial.version, dial.client_id.clone());
        let (client, connection) = dial.connect(REQUESTS);
        let channel = Arc::new(Channel {
            client: client.clone(),
            requests,
            state: Arc::new(Mutex::new(Err("connecting".to_string()))),
        });
        let topics = Topics::default();
        let task = tokio::spawn(drive(
            connection,
            client,
            Shared {
                topics: topics.clone(),
                channel: channel.clone(),
                catalog,
                hub,
            },
        ));
        BrokerConnection {
            channel,
            topics,
            task,
        }
    }

    fn route(&self, write_topic: &str) -> Route {
        Route {
            channel: self.channel.clone(),
            write_topic: write_topic.to_string(),
            one_at_a_time: Arc::default(),
        }
    }

    fn follow(&self, topic: &str, link: &LinkKey) {
        let mut topics = self.topics.lock().unwrap();
        let links = topics.entry(topic.to_string()).or_default();
        if links.is_empty() && self.channel.state.lock().unwrap().is_ok() {
            // (When not connected, the subscriptions are made on connecting.)
            self.channel.client.try_subscribe(topic, QoS::AtMostOnce);
        }
        if !links.contains(link) {
            links.push(link.clone());
        }
    }

    fn unfollow(&self, topic: &str, link: &LinkKey) {
        let mut topics = self.topics.lock().unwrap();
        if let Some(links) = topics.get_mut(topic) {
            links.retain(|l| l != link);
            if links.is_empty() {
                topics.remove(topic);
                self.channel.client.try_unsubscribe(topic);
            }
        }
    }
}

/// What a connection's task shares with the feed and the API.
struct Shared {
    topics: Topics,
    channel: Arc<Channel>,
    catalog: Arc<Catalog>,
    hub: Arc<Hub>,
}

impl Shared {
    fn set_state(&self, now: Result<(), String>) {
        *self.channel.state.lock().unwrap() = now.clone();
        for links in self.topics.lock().unwrap().values() {
            for link in links {
                self.catalog.set_connected(link, &now);
            }
        }
    }

    /// Hands an answer to the write waiting for it; false if it is not one.
    fn answered(&self, m: &wire::Incoming) -> bool {
        self.channel.requests.hand_over(m)
    }
}

/// Drives one broker connection: subscribes on every (re)connect, hands
/// messages on, and keeps trying (with a growing pause) while the broker
/// cannot be reached.
async fn drive(mut connection: wire::Connection, client: wire::Client, shared: Shared) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match connection.poll().await {
            Ok(Seen::Connected { .. }) => {
                backoff = Duration::from_secs(1);
                // A clean session: nothing is subscribed yet.
                for topic in shared.topics.lock().unwrap().keys() {
                    client.try_subscribe(topic, QoS::AtMostOnce);
                }
                shared.channel.requests.resubscribe(&client);
                shared.set_state(Ok(()));
            }
            Ok(Seen::Received(m)) => {
                if shared.answered(&m) {
                    continue;
                }
                let links = shared.topics.lock().unwrap().get(&m.topic).cloned();
                for link in links.into_iter().flatten() {
                    let message = Arc::new(StreamMessage::new(
                        m.topic.clone(),
                        &m.payload,
                        m.retained,
                        link,
                    ));
                    shared.catalog.remember(message.clone());
                    shared.hub.publish(message);
                }
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "broker connection lost");
                if shared.channel.state.lock().unwrap().is_ok() {
                    warn!(error = %e, "broker connection lost; reconnecting");
                }
                shared.set_state(Err(e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
