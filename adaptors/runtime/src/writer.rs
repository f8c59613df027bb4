//! What a device's adaptor writes to the API server about it, in one task
//! per device: its status (status_writer.rs), its DeviceLink's
//! DeviceConnected condition with an Event per change (link_status.rs), and
//! Events for the writes from MQTT it refused (write_events.rs). One task,
//! not one per kind of write: an adaptor keeps one for each of thousands of
//! devices, all the time.
//!
//! The status is written only when it changed, at most once per
//! `--status-interval` for the device and within the adaptor's budget
//! (status_budget.rs), always the newest when its turn comes. (Per-sample
//! status writes have taken API servers down; samples go to MQTT.) The
//! condition and Events are not held back by the status: they are rare and
//! say what a user waits for.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use devicelink_api::{DeviceLink, Outcome, events::Reporter, property::MqttStatus};
use kube::{Api, Client};
use tokio::{sync::watch, time::Instant};

use crate::{
    connected::with_delivery,
    link_status,
    model::Model,
    status_budget::{StatusBudget, Turn},
    status_writer::{self, Written},
    write_events::{self, Refusals},
};

/// Where and how a device's writes go. (The `Api`s are made for each
/// write: each is a few hundred bytes, kept for every device otherwise.)
pub(crate) struct Writer<K: Model> {
    pub(crate) client: Client,
    pub(crate) namespace: String,
    /// The device's (and its DeviceLink's) name.
    pub(crate) name: String,
    /// Field manager of status writes.
    pub(crate) manager: Arc<str>,
    pub(crate) reporter: Arc<Reporter>,
    /// Least time between two status writes of the device.
    pub(crate) status_interval: Duration,
    pub(crate) budget: Arc<StatusBudget>,
    pub(crate) model: PhantomData<K>,
}

/// What the writes are made of, as the device task and the registry see it.
pub(crate) struct Seen {
    /// The status the device task reported last, as JSON text.
    pub(crate) reported: watch::Receiver<Option<String>>,
    /// The device's MQTT connection state.
    pub(crate) mqtt: watch::Receiver<Option<MqttStatus>>,
    /// The DeviceLink as last seen.
    pub(crate) link: watch::Receiver<Option<Arc<DeviceLink>>>,
    /// What the device task says of DeviceConnected.
    pub(crate) connected: watch::Receiver<Option<Outcome>>,
    pub(crate) refusals: Arc<Refusals>,
}

impl<K: Model> Writer<K> {
    /// Writes what changes until the device is gone (its senders dropped).
    pub(crate) async fn run(self, mut seen: Seen) {
        // A digest of the status last written, not its text: the reported
        // text is kept already, and this is for every device.
        let mut written: Option<u64> = None;
        // What to write: the status changed since it was last written, and
        // the condition may no longer say what it should.
        let (mut status_changed, mut condition_stale) = (false, true);
        let mut status_rests_until = Instant::now();
        let mut turn: Option<Turn> = None;
        let mut refusals_quiet_until = Instant::now();
        loop {
            if condition_stale {
                condition_stale = false;
                let link = seen.link.borrow().clone();
                let outcome = seen.connected.borrow().clone();
                // Boxed, as every write here, with what it is made of:
                // this task waits for changes nearly all the time;
                // unboxed, its size would be the largest write's, kept for
                // every device.
                if let (Some(link), Some(outcome)) = (link, outcome) {
                    let mqtt = seen.mqtt.borrow().clone();
                    let this = &self;
                    Box::pin(async move {
                        let outcome = with_delivery(outcome, mqtt.as_ref());
                        let (links, events) = (this.api(), this.api());
                        link_status::update(&links, &events, &this.reporter, &link, outcome).await
                    })
                    .await;
                }
            }
            if status_changed && turn.is_none() && Instant::now() >= status_rests_until {
                turn = Some(self.budget.reserve());
            }
            // One timer: the device's turn, or the end of its rest.
            let wake = match &turn {
                Some(turn) => Some(turn.at()),
                None => status_changed.then_some(status_rests_until),
            };
            tokio::select! {
                r = seen.link.changed() => {
                    if r.is_err() { return }
                    condition_stale = true;
                }
                r = seen.connected.changed() => {
                    if r.is_err() { return }
                    condition_stale = true;
                }
                r = seen.mqtt.changed() => {
                    if r.is_err() { return }
                    (status_changed, condition_stale) = (true, true);
                }
                r = seen.reported.changed() => {
                    if r.is_err() { return }
                    status_changed = true;
                }
                // Not boxed: made on every wake-up, and small.
                refused = async {
                    tokio::time::sleep_until(refusals_quiet_until).await;
                    seen.refusals.next().await
                } => {
                    let link = seen.link.borrow().clone();
                    if let Some(link) = link {
                        Box::pin(async {
                            write_events::record(&self.api(), &self.reporter, &link, refused).await
                        })
                        .await;
                        refusals_quiet_until = Instant::now() + write_events::AT_MOST_EVERY;
                    }
                }
                () = tokio::time::sleep_until(wake.unwrap_or(status_rests_until)), if wake.is_some() => {
                    // The rest ended: the loop takes a turn.
                    if turn.take().is_none() {
                        continue;
                    }
                    status_changed = false;
                    // The newest, including what changed while it waited.
                    let status = status_writer::current(&seen.reported, &seen.mqtt)
                        .map(|s| (digest(&s), s));
                    if let Some((now, status)) = status.filter(|(now, _)| written != Some(*now)) {
                        self.budget.wrote();
                        let result = Box::pin(async {
                            status_writer::write(&self.api::<K>(), &self.name, &self.manager, &status).await
                        })
                        .await;
                        match result {
                            Written::Yes => written = Some(now),
                            Written::Gone => {}
                            Written::No => status_changed = true,
                        }
                        status_rests_until = Instant::now() + self.status_interval;
                    }
                }
            }
        }
    }

    /// The API of kind `T` in the device's namespace.
    fn api<T>(&self) -> Api<T>
    where
        T: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        T::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

fn digest(status: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    status.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, Response, StatusCode};
    use devicelink_api::dummy::DummySpecialDevice;
    use kube::client::Body;
    use serde_json::{Value, json};

    type ApiServer = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    const STATUS_PATH: &str =
        "/apis/devices.edge.cattle.io/v1alpha1/namespaces/ns/dummyspecialdevices/fan/status";

    /// The mocked API server, the senders of the reported status and of
    /// the MQTT status, and the writer's task.
    type Started = (
        ApiServer,
        watch::Sender<Option<String>>,
        watch::Sender<Option<MqttStatus>>,
        tokio::task::JoinHandle<()>,
    );

    /// A writer for the fan `ns/fan` on a mocked API server, with the
    /// senders of what it writes.
    fn start(status_interval: Duration) -> Started {
        let (service, server) = tower_test::mock::pair();
        let (reported, reported_rx) = watch::channel(None);
        let (mqtt, mqtt_rx) = watch::channel(None);
        let (link, link_rx) = watch::channel(None);
        let (connected, connected_rx) = watch::channel(None);
        let writer = Writer {
            client: Client::new(service, "default"),
            namespace: "ns".into(),
            name: "fan".into(),
            manager: "m".into(),
            reporter: Arc::new(Reporter {
                controller: "c".into(),
                instance: "i".into(),
            }),
            status_interval,
            budget: Arc::new(StatusBudget::new(100.0)),
            model: PhantomData::<DummySpecialDevice>,
        };
        let task = tokio::spawn(async move {
            // Held: the writer ends when they are dropped.
            let _held = (link, connected);
            writer
                .run(Seen {
                    reported: reported_rx,
                    mqtt: mqtt_rx,
                    link: link_rx,
                    connected: connected_rx,
                    refusals: Default::default(),
                })
                .await
        });
        (server, reported, mqtt, task)
    }

    /// Answers the next request, which must write the fan's status; the
    /// status written.
    async fn status_written(server: &mut ApiServer) -> Value {
        let (request, respond) = server.next_request().await.expect("the writer is alive");
        assert_eq!(
            (request.method().as_str(), request.uri().path()),
            ("PATCH", STATUS_PATH)
        );
        let sent = request.into_body().collect_bytes().await.unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        let stored = json!({
            "apiVersion": "devices.edge.cattle.io/v1alpha1",
            "kind": "DummySpecialDevice",
            "metadata": {"name": "fan", "namespace": "ns"},
            "spec": {"protocol": {"location": "attic"}},
            "status": sent["status"],
        });
        respond.send_response(
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from(serde_json::to_vec(&stored).unwrap()))
                .unwrap(),
        );
        sent["status"].clone()
    }

    fn speed(n: i64) -> Option<String> {
        Some(json!({"rotatingSpeed": n}).to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_is_written_when_it_changed_at_most_once_per_interval_and_the_newest() {
        let (mut server, reported, mqtt, _writer) = start(Duration::from_secs(5));
        let start = Instant::now();
        reported.send_replace(speed(1));
        assert_eq!(
            status_written(&mut server).await,
            json!({"rotatingSpeed": 1})
        );

        // Two changes within the interval: one write once it is over, of
        // the newest.
        reported.send_replace(speed(2));
        reported.send_replace(speed(3));
        assert_eq!(
            status_written(&mut server).await,
            json!({"rotatingSpeed": 3})
        );
        assert!(Instant::now() - start >= Duration::from_secs(5));

        // The same again is not written.
        reported.send_replace(speed(3));
        let nothing = tokio::time::timeout(Duration::from_secs(30), server.next_request()).await;
        assert!(nothing.is_err(), "an unchanged status was written again");

        // The MQTT connection's state is part of the status.
        mqtt.send_replace(Some(MqttStatus {
            connected: true,
            ..Default::default()
        }));
        let written = status_written(&mut server).await;
        assert_eq!(written["rotatingSpeed"], 3);
        assert_eq!(written["extension"]["mqtt"]["connected"], true, "{written}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_status_write_is_made_again_after_the_interval() {
        let (mut server, reported, _mqtt, _writer) = start(Duration::from_secs(5));
        reported.send_replace(speed(7));
        let (_, respond) = server.next_request().await.expect("the writer is alive");
        respond.send_response(
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from(
                    br#"{"kind":"Status","code":500,"message":"etcd"}"#.to_vec(),
                ))
                .unwrap(),
        );
        let failed = Instant::now();
        assert_eq!(
            status_written(&mut server).await,
            json!({"rotatingSpeed": 7})
        );
        assert!(Instant::now() - failed >= Duration::from_secs(5));
    }
}
