//! The broker side: one connection per distinct set of broker settings
//! (server, protocol, credentials, TLS material), subscribed to the status
//! topics of the DeviceLinks that use them. What arrives goes to the hub
//! (the WebSocket clients) and the catalog (the last message of each).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use devicelink_api::{DeviceLink, mqtt::MqttOptions};
use devicelink_mqtt::{
    TopicContext,
    observe::{Observed, observe},
    wire::{self, Seen},
};
use futures::{StreamExt, stream::BoxStream};
use kube::ResourceExt;
use rumqttc::QoS;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{
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

/// A connection to one broker, shared by the DeviceLinks that reach it
/// with equal settings.
struct BrokerConnection {
    client: wire::Client,
    topics: Topics,
    /// Up, or why not.
    state: Arc<Mutex<Result<(), String>>>,
    task: JoinHandle<()>,
}

/// Follows the DeviceLinks' device topics as the DeviceLinks change.
pub struct Feed {
    catalog: Arc<Catalog>,
    hub: Arc<Hub>,
    client_id: String,
    connections: HashMap<String, BrokerConnection>,
    /// What each DeviceLink is followed on: (connection, status topic).
    following: HashMap<LinkKey, (String, String)>,
}

impl Feed {
    pub fn new(catalog: Arc<Catalog>, hub: Arc<Hub>, client_id: String) -> Feed {
        Feed {
            catalog,
            hub,
            client_id,
            connections: HashMap::new(),
            following: HashMap::new(),
        }
    }

    /// Runs until the DeviceLinks' watch ends.
    pub async fn run(mut self, changes: BoxStream<'static, DeviceLink>) {
        // Changes come in bursts (the first list, a kubectl apply of many):
        // each burst is one look at the whole set, which costs no request.
        let mut bursts = changes.ready_chunks(4096);
        while bursts.next().await.is_some() {
            self.sync();
        }
        for (_, connection) in self.connections.drain() {
            connection.client.try_disconnect();
            connection.task.abort();
        }
    }

    /// Makes the subscriptions and connections what the DeviceLinks in the
    /// cache ask for.
    fn sync(&mut self) {
        let mut wanted: HashMap<LinkKey, Observed> = HashMap::new();
        for link in self.catalog.links.state() {
            let key = (link.namespace().unwrap_or_default(), link.name_any());
            match observed(&link, &self.client_id) {
                Ok(Some(o)) => {
                    wanted.insert(key, o);
                }
                Ok(None) => self.catalog.set_stream(key, Stream::None),
                Err(why) => self.catalog.set_stream(key, Stream::Unavailable(why)),
            }
        }
        let all: std::collections::HashSet<LinkKey> = self
            .catalog
            .links
            .state()
            .iter()
            .map(|l| (l.namespace().unwrap_or_default(), l.name_any()))
            .collect();

        // Followed no more (gone, or moved to other settings or topics).
        let stale: Vec<LinkKey> = self
            .following
            .iter()
            .filter(|(key, (connection, topic))| {
                wanted
                    .get(*key)
                    .is_none_or(|o| o.connection != *connection || o.status_topic != *topic)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            let (connection, topic) = self.following.remove(&key).expect("listed above");
            if let Some(c) = self.connections.get(&connection) {
                c.unfollow(&topic, &key);
            }
            if !all.contains(&key) {
                self.catalog.forget(&key);
            }
        }

        for (key, o) in wanted {
            if !self.following.contains_key(&key) {
                let connection =
                    self.connections
                        .entry(o.connection.clone())
                        .or_insert_with(|| {
                            info!(client_id = %o.dial.client_id, "connecting to a broker");
                            BrokerConnection::start(o.dial, self.catalog.clone(), self.hub.clone())
                        });
                connection.follow(&o.status_topic, &key);
                self.following
                    .insert(key.clone(), (o.connection.clone(), o.status_topic.clone()));
            }
            let state = self.connections[&o.connection]
                .state
                .lock()
                .unwrap()
                .clone();
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

        // Connections nobody needs any more.
        self.connections.retain(|_, c| {
            let needed = !c.topics.lock().unwrap().is_empty();
            if !needed {
                c.client.try_disconnect();
                c.task.abort();
            }
            needed
        });
    }
}

/// How the console follows a DeviceLink's device: None when it has no MQTT
/// extension, an error naming the field when its settings cannot be used.
fn observed(link: &DeviceLink, client_id: &str) -> Result<Option<Observed>, String> {
    const FIELD: &str = "spec.template.spec.extension.mqtt";
    let Some(mqtt) = link
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.get("extension"))
        .and_then(|e| e.get("mqtt"))
    else {
        return Ok(None);
    };
    let options: MqttOptions =
        serde_json::from_value(mqtt.clone()).map_err(|e| format!("{FIELD}: {e}"))?;
    let context = TopicContext {
        namespace: link.namespace().unwrap_or_default(),
        name: link.name_any(),
        uid: link.uid().unwrap_or_default(),
    };
    let no_references: devicelink_mqtt::publisher::Resolve = &|item| {
        Err(format!(
            "uses reference {:?}; the console does not read Secrets or ConfigMaps yet, so it follows only brokers whose settings are given inline",
            item.name
        ))
    };
    observe(&options, &context, no_references, client_id)
        .map(Some)
        .map_err(|e| format!("{FIELD}.{e}"))
}

impl BrokerConnection {
    fn start(dial: wire::Dial, catalog: Arc<Catalog>, hub: Arc<Hub>) -> BrokerConnection {
        let (client, connection) = dial.connect(REQUESTS);
        let topics = Topics::default();
        let state = Arc::new(Mutex::new(Err("connecting".to_string())));
        let task = tokio::spawn(drive(
            connection,
            client.clone(),
            topics.clone(),
            state.clone(),
            catalog,
            hub,
        ));
        BrokerConnection {
            client,
            topics,
            state,
            task,
        }
    }

    fn follow(&self, topic: &str, link: &LinkKey) {
        let mut topics = self.topics.lock().unwrap();
        let links = topics.entry(topic.to_string()).or_default();
        if links.is_empty() && self.state.lock().unwrap().is_ok() {
            // (When not connected, the subscriptions are made on connecting.)
            self.client.try_subscribe(topic, QoS::AtMostOnce);
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
                self.client.try_unsubscribe(topic);
            }
        }
    }
}

/// Drives one broker connection: subscribes on every (re)connect, hands
/// messages on, and keeps trying (with a growing pause) while the broker
/// cannot be reached.
async fn drive(
    mut connection: wire::Connection,
    client: wire::Client,
    topics: Topics,
    state: Arc<Mutex<Result<(), String>>>,
    catalog: Arc<Catalog>,
    hub: Arc<Hub>,
) {
    let mut backoff = Duration::from_secs(1);
    let set_state = |now: Result<(), String>| {
        *state.lock().unwrap() = now.clone();
        for links in topics.lock().unwrap().values() {
            for link in links {
                catalog.set_connected(link, &now);
            }
        }
    };
    loop {
        match connection.poll().await {
            Ok(Seen::Connected { .. }) => {
                backoff = Duration::from_secs(1);
                // A clean session: nothing is subscribed yet.
                for topic in topics.lock().unwrap().keys() {
                    client.try_subscribe(topic, QoS::AtMostOnce);
                }
                set_state(Ok(()));
            }
            Ok(Seen::Received(m)) => {
                let links = topics.lock().unwrap().get(&m.topic).cloned();
                for link in links.into_iter().flatten() {
                    let message = Arc::new(StreamMessage::new(
                        m.topic.clone(),
                        &m.payload,
                        m.retained,
                        link,
                    ));
                    catalog.remember(message.clone());
                    hub.publish(message);
                }
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "broker connection lost");
                if state.lock().unwrap().is_ok() {
                    warn!(error = %e, "broker connection lost; reconnecting");
                }
                set_state(Err(e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
