//! What a device task sees of the world.

use std::sync::{Arc, Mutex};

use devicelink_api::Outcome;
use devicelink_api::mqtt::MqttOptions;
use devicelink_api::property::MqttStatus;
use devicelink_cells::latest;
use devicelink_mqtt::{
    Publisher, PublisherError, TopicContext,
    publisher::{DeviceMqtt, Received, WriteRequest},
    write::{self, Property, Refusal},
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    Reason, References, model::Model, write_ledger::WriteLedger, write_rate::WriteRate,
    writer::Report,
};

/// A connection to the broker of a device that speaks MQTT itself
/// ([`DeviceContext::connect_device`]).
pub struct DeviceConnection {
    /// Publishes to the device ([`Publisher::publish_to`]).
    pub publisher: Publisher,
    /// What the device published on the subscribed topics.
    pub received: mpsc::Receiver<Received>,
    /// The connection's state: connected, and the last error.
    pub state: latest::Receiver<Option<MqttStatus>>,
}

/// What a device's task shares with the registry, in one allocation for
/// each of thousands of devices. Kept across runs of the task (a new one
/// after a panic, see `supervise`).
pub(crate) struct Handles {
    /// Its MQTT state, and its writes from MQTT.
    pub(crate) mqtt: DeviceMqtt,
    /// Its connection to the broker; the registry takes it over to clear
    /// the retained status when the device is deleted.
    pub(crate) publisher: Mutex<Option<Publisher>>,
    /// Read from the device's status once, when it starts (the copy of the
    /// device kept after that has no status).
    pub(crate) ledger: Mutex<WriteLedger>,
}

/// What a device task is woken for.
#[derive(Debug)]
pub enum Change<K> {
    /// The spec, or a value it refers to, changed.
    Spec(Arc<K>),
    /// A write arrived on the device's MQTT write topic; decode it with
    /// [`DeviceContext::decode_write`] and answer it with
    /// [`DeviceContext::answer_write`].
    Write(WriteRequest),
}

/// A device's spec and the values of its references, as the registry
/// hands them to its task (one channel for both).
pub(crate) struct Spec<K> {
    pub(crate) device: Kept<K>,
    pub(crate) references: Arc<References>,
}

/// A device as it is kept between its events, for each of thousands of
/// devices: as JSON text, read back into `K` when code asks for it (at its
/// start and when its spec changes). A typed device keeps every field of
/// its metadata and options inline whether set or not: a fan with the
/// MQTT extension took 1.3 KiB typed and takes about 0.4 as text.
pub(crate) struct Kept<K> {
    generation: Option<i64>,
    form: Form<K>,
}

enum Form<K> {
    Text(Arc<str>),
    /// A device whose text does not read back (no known model has one);
    /// kept whole rather than lost.
    Typed(Arc<K>),
}

impl<K> Clone for Kept<K> {
    fn clone(&self) -> Self {
        Kept {
            generation: self.generation,
            form: match &self.form {
                Form::Text(text) => Form::Text(text.clone()),
                Form::Typed(device) => Form::Typed(device.clone()),
            },
        }
    }
}

impl<K: Model> Kept<K> {
    pub(crate) fn new(device: K) -> Self {
        let generation = device.meta().generation;
        let text = serde_json::to_string(&device).ok();
        let form = match text {
            Some(text) if serde_json::from_str::<K>(&text).is_ok() => Form::Text(text.into()),
            _ => {
                warn!(device = ?device.meta().name, "device does not read back from JSON; kept whole");
                Form::Typed(Arc::new(device))
            }
        };
        Kept { generation, form }
    }

    pub(crate) fn device(&self) -> Arc<K> {
        match &self.form {
            Form::Typed(device) => device.clone(),
            Form::Text(text) => Arc::new(
                serde_json::from_str(text).expect("a kept device reads back (checked when kept)"),
            ),
        }
    }

    fn as_json(&self) -> Value {
        match &self.form {
            Form::Typed(device) => as_json(device.as_ref()),
            Form::Text(text) => serde_json::from_str(text).unwrap_or_default(),
        }
    }
}

/// Handed to each device task. Dropping it stops nothing; the task ends when
/// [`DeviceContext::changed`] returns `None`.
pub struct DeviceContext<K: Model> {
    spec: latest::Receiver<Spec<K>>,
    /// The device whose spec the task was last handed ([`Change::Spec`], or
    /// at the start): a spec that arrives while the task is busy is told
    /// at its next [`DeviceContext::changed`], measured against this.
    acted_on: Kept<K>,
    /// The references' values the task was last handed.
    references_acted_on: Arc<References>,
    handles: Arc<Handles>,
    /// What the adaptor writes to the API server about the device: its
    /// status, DeviceConnected, refused writes (writer.rs).
    report: Arc<Report>,
    write_rate: Mutex<WriteRate>,
}

impl<K: Model> DeviceContext<K> {
    pub(crate) fn new(
        spec: latest::Receiver<Spec<K>>,
        handles: Arc<Handles>,
        report: Arc<Report>,
    ) -> Self {
        let (acted_on, references_acted_on) = {
            let now = spec.borrow();
            (now.device.clone(), now.references.clone())
        };
        let mut ctx = DeviceContext {
            spec,
            acted_on,
            references_acted_on,
            handles,
            report,
            write_rate: Mutex::new(WriteRate::new(std::time::Instant::now())),
        };
        ctx.configure_mqtt(None, true);
        ctx
    }

    /// The device as last seen: its metadata and spec. Its status is not
    /// kept (the runtime writes it from what the task reports, see
    /// [`DeviceContext::report`]), so it reads as none.
    pub fn device(&self) -> Arc<K> {
        self.spec.borrow().device.device()
    }

    /// `namespace/name` of the device (and of its DeviceLink).
    pub fn key(&self) -> String {
        self.report.to_string()
    }

    /// The values of the DeviceLink's `spec.references`, for the `*Ref`
    /// fields of the device's settings.
    pub fn references(&self) -> Arc<References> {
        self.spec.borrow().references.clone()
    }

    /// The DeviceLink as topic templates see it (`:namespace`, `:name`,
    /// `:uid`). Made when asked for (rarely: when a connection is made),
    /// not kept for each device.
    pub fn topic_context(&self) -> TopicContext {
        topic_context(self.device().as_ref())
    }

    /// Connects to the broker of a device that speaks MQTT itself, with
    /// the options of its protocol (`*Ref` fields from the DeviceLink's
    /// references, which must have been read): subscribes to `filters`
    /// (topic, QoS) and hands what the device publishes there to the
    /// connection's `received`. A second connection beside the MQTT
    /// extension's, with its own queue and state, and its own client ID
    /// unless its options let it share a connection. The error
    /// names the field below the options.
    pub fn connect_device(
        &self,
        options: &MqttOptions,
        filters: Vec<(String, i32)>,
    ) -> Result<DeviceConnection, PublisherError> {
        let (mut mqtt, state) = DeviceMqtt::new(
            self.handles.mqtt.outbox.metrics().clone(),
            self.handles.mqtt.data_dir.clone(),
        );
        // Shared as the extension's connections are, when its options allow.
        mqtt.connections = self.handles.mqtt.connections.clone();
        // A device's messages are its state, taken in as they come; a few
        // may wait while the task handles one.
        let (sink, received) = mpsc::channel(64);
        let references = self.references();
        let resolve = |r: &devicelink_api::devicelink::ReferenceItem| {
            references.text(r).map_err(|e| e.to_string())
        };
        let publisher = Publisher::start_device(
            options,
            &self.topic_context(),
            &resolve,
            &mqtt,
            filters,
            sink,
        )?;
        Ok(DeviceConnection {
            publisher,
            received,
            state,
        })
    }

    /// Waits for the device's spec, or a value it refers to, to change
    /// (status writes, ours included, do not count), or for a write on the
    /// device's MQTT write topic. `None` means the device was removed and
    /// the task should stop.
    pub async fn changed(&mut self) -> Option<Change<K>> {
        // One task at a time runs the device and takes its writes.
        let handles = self.handles.clone();
        let writes = &handles.mqtt.writes;
        loop {
            tokio::select! {
                r = self.spec.changed() => {
                    r.ok()?;
                    if let Some(change) = self.spec_seen() {
                        return Some(change);
                    }
                }
                w = writes.next() => return Some(Change::Write(w)),
            }
        }
    }

    /// What [`DeviceContext::changed`] would return now, without waiting:
    /// `Ok(None)` if nothing changed, `Err` once the device was removed.
    /// For the runtime's steps (steps.rs), which wait for all devices at
    /// once.
    pub(crate) fn next_change(&mut self) -> Result<Option<Change<K>>, latest::Closed> {
        while self.spec.has_changed()? {
            drop(self.spec.borrow_and_update());
            if let Some(change) = self.spec_seen() {
                return Ok(Some(change));
            }
        }
        Ok(self.handles.mqtt.writes.try_next().map(Change::Write))
    }

    /// A new spec or references were handed over: what the protocol code
    /// is to be told, if anything (a status write alone tells nothing).
    fn spec_seen(&mut self) -> Option<Change<K>> {
        let references = self.references();
        if !Arc::ptr_eq(&references, &self.references_acted_on) {
            self.references_acted_on = references;
            let now = self
                .new_spec()
                .map_or_else(|| self.device(), |(now, _)| now);
            // A rotated credential: reconnect with it.
            self.configure_mqtt(None, true);
            return Some(Change::Spec(now));
        }
        let (now, before) = self.new_spec()?;
        self.configure_mqtt(Some(before.as_ref()), false);
        Some(Change::Spec(now))
    }

    /// A context for a new run of the device's protocol code, as the
    /// registry makes one (after a panic, see supervise.rs).
    pub(crate) fn renew(&self) -> Self {
        DeviceContext::new(self.spec.clone(), self.handles.clone(), self.report.clone())
    }

    /// Whether the device was removed (nothing more of it is written).
    pub(crate) fn removed(&self) -> bool {
        self.report.is_closed()
    }

    /// Rings `ring` whenever a write from MQTT arrives for the device.
    pub(crate) fn on_write(&self, ring: impl Fn() + Send + Sync + 'static) {
        self.handles.mqtt.writes.set_doorbell(ring);
    }

    /// The device and the one acted on before it, if its spec changed
    /// since the task was last handed one (then it counts as handed).
    fn new_spec(&mut self) -> Option<(Arc<K>, Arc<K>)> {
        let now = self.spec.borrow().device.clone();
        if now.generation == self.acted_on.generation {
            // The same spec (its status was written): only the newer copy
            // is kept, not one of each for every device.
            self.acted_on = now;
            return None;
        }
        let before = std::mem::replace(&mut self.acted_on, now.clone());
        self.handles
            .ledger
            .lock()
            .unwrap()
            .follow_spec(&now.as_json());
        Some((now.device(), before.device()))
    }

    /// The property values of a write, checked against `properties`; a
    /// refused write (also one that comes faster than the device takes
    /// writes, see `write_rate`) is answered here (reply, Event, log) and
    /// gives `None`.
    pub fn decode_write(
        &self,
        request: &WriteRequest,
        properties: &[Property],
    ) -> Option<Map<String, Value>> {
        if !self
            .write_rate
            .lock()
            .unwrap()
            .take(std::time::Instant::now())
        {
            self.answer_write(request, Err(&[Refusal::whole(WriteRate::refusal())]));
            return None;
        }
        let decoded = write::decode(&request.payload, properties).and_then(|values| {
            let again = self
                .handles
                .ledger
                .lock()
                .unwrap()
                .refusals(&values, properties);
            if again.is_empty() {
                Ok(values)
            } else {
                Err(again)
            }
        });
        match decoded {
            Ok(values) => Some(values),
            Err(refused) => {
                self.answer_write(request, Err(&refused));
                None
            }
        }
    }

    /// Answers a write on its reply topic: what was applied, or why not
    /// (refusals are also logged and counted on the DeviceLink).
    pub fn answer_write(
        &self,
        request: &WriteRequest,
        result: Result<&Map<String, Value>, &[Refusal]>,
    ) {
        match result {
            Ok(values) => {
                let at = devicelink_api::condition::now().0.to_string();
                let device = self.spec.borrow().device.as_json();
                self.handles
                    .ledger
                    .lock()
                    .unwrap()
                    .record(values, &device, &at);
                info!(device = %self.key(), properties = ?values.keys().collect::<Vec<_>>(), "write from MQTT applied")
            }
            Err(refused) => {
                let why = write::bounded(refused)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                warn!(device = %self.key(), reason = %why, "write from MQTT refused");
                self.report.refused(why);
            }
        }
        if let Some(publisher) = self.handles.publisher.lock().unwrap().as_ref() {
            publisher.reply(request, write::answer(result));
        }
    }

    /// Reports a sample: published to MQTT every time, written to the
    /// device's status when it differs from the last write (rate-limited).
    pub fn report(&self, status: &impl serde::Serialize) {
        let mut value = match serde_json::to_value(status) {
            Ok(v) => v,
            Err(e) => {
                warn!(device = %self.key(), error = %e, "status does not serialize");
                return;
            }
        };
        self.handles.ledger.lock().unwrap().annotate(&mut value);
        // Kept as text until written: a JSON tree takes several times the
        // space, for every device.
        let text = value.to_string();
        if let Some(publisher) = self.handles.publisher.lock().unwrap().as_ref() {
            publisher.publish(text.clone().into_bytes());
        }
        self.report.report(text);
    }

    /// Sets the DeviceConnected condition on the DeviceLink (written only
    /// when it changes).
    pub fn set_connected(&self, outcome: Outcome) {
        self.report.set_connected(outcome);
    }

    /// (Re)connects to the broker when the MQTT options (or, with
    /// `references_changed`, the values they refer to) changed.
    fn configure_mqtt(&mut self, before: Option<&K>, references_changed: bool) {
        let device = self.device();
        let options = device.mqtt();
        if !references_changed && before.is_some_and(|b| b.mqtt() == options) {
            return;
        }
        *self.handles.publisher.lock().unwrap() = None;
        let references = self.references();
        let link = topic_context(device.as_ref());
        match start_publisher(device.as_ref(), &link, &references, &self.handles.mqtt) {
            Ok(None) => {
                if options.is_none() {
                    self.handles.mqtt.state.send_replace(None);
                }
            }
            Ok(Some(p)) => {
                tracing::info!(device = %self.key(), topic = p.topic(), "publishing to MQTT");
                *self.handles.publisher.lock().unwrap() = Some(p);
            }
            Err(e) => {
                let e = format!("spec.extension.mqtt.{e}");
                warn!(device = %self.key(), error = %e, "MQTT extension not usable");
                self.handles.mqtt.state.send_replace(Some(MqttStatus {
                    server: options.map(|o| o.client.server.clone()),
                    last_error: Some(e.clone()),
                    ..Default::default()
                }));
                self.set_connected(Reason::InvalidSettings.outcome(e));
            }
        }
    }
}

/// The DeviceLink a device stands for, as topic templates see it.
pub(crate) fn topic_context(device: &impl kube::Resource) -> TopicContext {
    TopicContext {
        namespace: device.meta().namespace.clone().unwrap_or_default(),
        name: device.meta().name.clone().unwrap_or_default(),
        uid: owner_uid(device),
    }
}

/// Connects a device to its broker, if it has the MQTT extension and the
/// values its `*Ref` fields name have been read (`None` otherwise; it is
/// started again once they have).
pub(crate) fn start_publisher<K: Model>(
    device: &K,
    link: &TopicContext,
    references: &References,
    mqtt: &DeviceMqtt,
) -> Result<Option<Publisher>, PublisherError> {
    let Some(options) = device.mqtt() else {
        return Ok(None);
    };
    if references.pending() {
        return Ok(None);
    }
    let resolve = |r: &devicelink_api::devicelink::ReferenceItem| {
        references.text(r).map_err(|e| e.to_string())
    };
    Publisher::start(options, link, &resolve, mqtt).map(Some)
}

/// The UID of the DeviceLink that owns a device (the operator sets it as
/// controller owner); used for `:uid` and the default client ID.
fn owner_uid(device: &impl kube::Resource) -> String {
    device
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
        .unwrap_or_default()
}

/// The device as JSON, for what reads its spec and status by field name.
fn as_json<K: serde::Serialize>(device: &K) -> Value {
    serde_json::to_value(device).unwrap_or_default()
}

/// A context of a fan no registry drives, for tests: the sender of its
/// spec, and its report.
#[cfg(test)]
pub(crate) fn test_context(
    fan: devicelink_api::dummy::DummySpecialDevice,
) -> (
    latest::Sender<Spec<devicelink_api::dummy::DummySpecialDevice>>,
    DeviceContext<devicelink_api::dummy::DummySpecialDevice>,
    Arc<Report>,
) {
    let (mqtt, mqtt_rx) = DeviceMqtt::new(Default::default(), std::path::Path::new("/").into());
    let handles = Arc::new(Handles {
        mqtt,
        publisher: Mutex::new(None),
        ledger: Mutex::new(WriteLedger::default()),
    });
    let (spec, spec_rx) = latest::channel(Spec {
        device: Kept::new(fan),
        references: Arc::new(References::awaiting_link()),
    });
    let report = Report::detached(mqtt_rx);
    let ctx = DeviceContext::new(spec_rx, handles, report.clone());
    (spec, ctx, report)
}

/// The handles of a context, for tests.
#[cfg(test)]
pub(crate) fn handles_of<K: Model>(ctx: &DeviceContext<K>) -> Arc<Handles> {
    ctx.handles.clone()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use devicelink_api::dummy::DummySpecialDevice;

    pub(crate) fn fan() -> DummySpecialDevice {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "devices.edge.cattle.io/v1alpha1",
            "kind": "DummySpecialDevice",
            "metadata": {"name": "fan-1", "namespace": "bench", "generation": 3,
                         "ownerReferences": [{"apiVersion": "", "kind": "", "name": "",
                                              "uid": "6f1c2f0e-6a4b-4c53-9d5e-0b8e4c1f2a3d"}]},
            "spec": {"protocol": {"location": "bench"}, "gear": "fast", "on": true,
                     "extension": {"mqtt": {"client": {"server": "tcp://127.0.0.1:1883"},
                                            "message": {"topic": "bench/adaptor/:name"}}}},
        }))
        .unwrap()
    }

    #[test]
    fn a_kept_device_reads_back_as_it_came() {
        let kept = Kept::new(fan());
        assert!(matches!(kept.form, Form::Text(_)));
        assert_eq!(kept.generation, Some(3));
        assert_eq!(
            serde_json::to_value(kept.device().as_ref()).unwrap(),
            serde_json::to_value(fan()).unwrap()
        );
        assert_eq!(kept.as_json(), serde_json::to_value(fan()).unwrap());
        if let Form::Text(text) = &kept.form {
            eprintln!(
                "a fan kept: {} bytes of text, {} bytes typed inline",
                text.len(),
                std::mem::size_of::<DummySpecialDevice>()
            );
        }
    }

    /// Prints the sizes of what a device's task holds (docs/benchmarks.md).
    #[tokio::test]
    async fn what_a_device_task_holds() {
        let (_spec, mut ctx, _) = test_context(fan());
        let context = std::mem::size_of_val(&ctx);
        let changed = std::mem::size_of_val(&ctx.changed());
        eprintln!("a device context: {context} bytes; waiting for a change: {changed} bytes");
    }
}
