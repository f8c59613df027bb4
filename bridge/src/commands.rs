//! Commands from Kafka to devices. Each record of `commands.topic` is a
//! write for one DeviceLink that `source.deviceLinks` selects, keyed by its
//! `namespace/name`: the bridge publishes it on the DeviceLink's write
//! topic, waits for the adaptor's answer, and produces that answer (or why
//! there is none) to `commands.replyTopic` under the same key. A command's
//! offset is stored for commit only once its answer is in Kafka, in the
//! order commands came: at least once, as for the other direction.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use devicelink_api::kafka_bridge::{KafkaCommands, KafkaSink};
use devicelink_mqtt::{
    answers::{Requested, Requests},
    wire::{self, Dial, Seen},
    write::{Refusal, answer},
};
use futures::{StreamExt, future::BoxFuture, stream::FuturesOrdered};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    message::{BorrowedMessage, Headers},
};
use tokio::sync::{oneshot, watch};

use crate::{
    devices::Directory,
    pipeline::Progress,
    record::{BRIDGE_HEADER, Record, UID_HEADER},
    sink::{Security, Sink, client_config},
};

/// The header a command may carry to be quoted in its answer; without it
/// the answer quotes the command's place (`topic/partition/offset`).
pub const CORRELATION_HEADER: &str = "devicelink.correlation";
/// Who answered: `adaptor` (its answer, unchanged) or `bridge` (why the
/// command was not written, or why no answer came).
pub const ANSWERED_BY_HEADER: &str = "devicelink.answeredBy";
/// Commands handled at once; more wait in Kafka.
const IN_FLIGHT: usize = 64;

/// What a bridge's commands run with.
pub struct Settings {
    pub commands: KafkaCommands,
    /// The bridge's namespace: the only one whose DeviceLinks it writes.
    pub namespace: String,
    /// `namespace/name` of the KafkaBridge.
    pub bridge: String,
    /// The consumer group: the replicas share the topic's partitions.
    pub group: String,
}

/// A command as read from Kafka.
#[derive(Debug, Clone)]
struct Command {
    key: Option<String>,
    payload: Vec<u8>,
    correlation: String,
    /// Milliseconds since the epoch, as the record says.
    timestamp: Option<i64>,
    place: (String, i32, i64),
}

impl Command {
    fn of(m: &BorrowedMessage<'_>) -> Command {
        let place = (m.topic().to_string(), m.partition(), m.offset());
        let quoted = m.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == CORRELATION_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        Command {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            correlation: quoted.unwrap_or_else(|| format!("{}/{}/{}", place.0, place.1, place.2)),
            timestamp: m.timestamp().to_millis(),
            place,
        }
    }
}

/// An answer to produce.
struct Answer {
    by_adaptor: bool,
    payload: Vec<u8>,
    uid: Option<String>,
}

impl Answer {
    fn refusal(reason: impl Into<String>) -> Answer {
        Answer {
            by_adaptor: false,
            payload: answer(Err(&[Refusal::whole(reason)])),
            uid: None,
        }
    }
}

/// Runs until the task is aborted, writing over a connection made from
/// `dial` (a clean session: an answer to a write from before a restart
/// has nobody left waiting for it).
pub async fn run(
    settings: Settings,
    dial: Dial,
    sink: KafkaSink,
    security: Security,
    producer: Sink,
    devices: watch::Receiver<Arc<Directory>>,
    report: watch::Sender<Progress>,
) {
    let consumer: StreamConsumer = match client_config(&sink, &security)
        .set("group.id", &settings.group)
        // Offsets are stored by hand, once a command is answered, and
        // committed in the background.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        // A new group starts at the end: commands given before the bridge
        // existed are not its to carry out.
        .set("auto.offset.reset", "latest")
        .create()
    {
        Ok(consumer) => consumer,
        Err(e) => {
            tracing::warn!(error = %e, "the commands' consumer cannot be made");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[&settings.commands.topic]) {
        tracing::warn!(error = %e, "cannot subscribe to the commands' topic");
        return;
    }
    // Commands are judged against the DeviceLinks selected: once listed.
    let mut listed = devices.clone();
    if listed.wait_for(|d| d.listed()).await.is_err() {
        return;
    }
    let writer = Arc::new(Writer::start(dial, devices));
    let mut turns: HashMap<String, oneshot::Receiver<()>> = HashMap::new();
    let mut pending: FuturesOrdered<BoxFuture<'static, (String, i32, i64)>> = FuturesOrdered::new();
    let settings = Arc::new(settings);
    loop {
        tokio::select! {
            Some((topic, partition, offset)) = pending.next(), if !pending.is_empty() => {
                if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                    // Revoked meanwhile: its new owner reads it again.
                    tracing::debug!(error = %e, "a command's offset was not stored");
                }
            }
            received = consumer.recv(), if pending.len() < IN_FLIGHT => match received {
                Ok(m) => {
                    let command = Command::of(&m);
                    // One device's commands one after another, in order.
                    let (done, turn) = oneshot::channel();
                    let previous = command.key.clone().and_then(|k| turns.insert(k, turn));
                    let (writer, producer, settings, report) =
                        (writer.clone(), producer.clone(), settings.clone(), report.clone());
                    pending.push_back(Box::pin(async move {
                        if let Some(previous) = previous {
                            let _ = previous.await;
                        }
                        let place = command.place.clone();
                        let answer = writer.carry_out(&settings, &command).await;
                        let _ = done.send(());
                        report.send_modify(|p| match answer.by_adaptor {
                            true => p.commands_answered += 1,
                            false => p.commands_refused += 1,
                        });
                        reply(&producer, &settings, &command, answer).await;
                        place
                    }));
                    turns.retain(|_, turn| !turn.is_terminated_now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading commands");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Whether a turn is over (its command answered) without waiting.
trait Terminated {
    fn is_terminated_now(&mut self) -> bool;
}

impl Terminated for oneshot::Receiver<()> {
    fn is_terminated_now(&mut self) -> bool {
        !matches!(self.try_recv(), Err(oneshot::error::TryRecvError::Empty))
    }
}

/// Produces a command's answer and waits until Kafka has it (retrying
/// while Kafka is away, as every record of the bridge).
async fn reply(producer: &Sink, settings: &Settings, command: &Command, answer: Answer) {
    let mut headers = vec![
        (
            CORRELATION_HEADER.to_string(),
            command.correlation.clone().into_bytes(),
        ),
        (
            ANSWERED_BY_HEADER.to_string(),
            if answer.by_adaptor {
                "adaptor"
            } else {
                "bridge"
            }
            .into(),
        ),
        (
            BRIDGE_HEADER.to_string(),
            settings.bridge.clone().into_bytes(),
        ),
    ];
    if let Some(uid) = answer.uid {
        headers.push((UID_HEADER.to_string(), uid.into_bytes()));
    }
    let record = Record {
        topic: settings.commands.reply_topic.clone(),
        key: command.key.clone().map(String::into_bytes),
        headers,
        payload: answer.payload,
    };
    if let Err(refused) = producer.send(record).await.await {
        tracing::warn!(%refused, "a command's answer was refused");
    }
}

/// Publishes writes and receives their answers over one connection.
struct Writer {
    client: wire::Client,
    /// The writes made, waiting for their answers.
    requests: Arc<Requests>,
    connected: watch::Receiver<bool>,
    devices: watch::Receiver<Arc<Directory>>,
    /// Drives the connection; ends with the writer.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Writer {
    fn start(dial: Dial, devices: watch::Receiver<Arc<Directory>>) -> Writer {
        const QUEUE: usize = 1024;
        let requests = Arc::new(Requests::new(dial.version, dial.client_id.clone()));
        let (client, connection) = dial.connect(QUEUE);
        let (up, connected) = watch::channel(false);
        let task = tokio::spawn(drive(connection, client.clone(), requests.clone(), up));
        Writer {
            client,
            requests,
            connected,
            devices,
            task,
        }
    }

    /// Writes `command` to its DeviceLink and waits for the answer, or
    /// says why it was not written or not answered.
    async fn carry_out(&self, settings: &Settings, command: &Command) -> Answer {
        let device = match self.addressee(settings, command) {
            Ok(device) => device,
            Err(why) => {
                tracing::info!(key = ?command.key, %why, "a command was refused");
                return Answer::refusal(why);
            }
        };
        let within = settings.commands.timeout();
        // A connection coming back is waited for, as long as an answer is.
        let mut connected = self.connected.clone();
        let up = matches!(
            tokio::time::timeout(within, connected.wait_for(|up| *up)).await,
            Ok(Ok(_))
        );
        if !up {
            return Answer::refusal(format!(
                "the bridge could not reach the MQTT broker within {within:?}: not written"
            ));
        }
        let requested = self
            .requests
            .request(&self.client, &device.1, command.payload.clone(), within)
            .await;
        match requested {
            Requested::Answered(payload) => Answer {
                by_adaptor: true,
                payload,
                uid: Some(device.0),
            },
            Requested::NotSent => Answer::refusal("the bridge's MQTT queue is full; not written"),
            Requested::NoAnswer(reply_topic) => Answer::refusal(format!(
                "no answer on {reply_topic} within {within:?}: is the DeviceLink's adaptor running?"
            )),
        }
    }

    /// The UID and write topic of the DeviceLink `command` is for, or why
    /// it is not written.
    fn addressee(
        &self,
        settings: &Settings,
        command: &Command,
    ) -> Result<(String, String), String> {
        let key = command
            .key
            .as_deref()
            .ok_or("the command has no key: it must be the DeviceLink's namespace/name")?;
        let (namespace, name) = key
            .split_once('/')
            .ok_or(format!("the key {key:?} is not namespace/name"))?;
        if namespace != settings.namespace {
            return Err(format!(
                "this bridge writes only to DeviceLinks of namespace {}",
                settings.namespace
            ));
        }
        let expiry = settings.commands.expire_after();
        if let Some(age) = command.timestamp.and_then(age_of)
            && age > expiry
        {
            return Err(format!(
                "the command is {}s old, older than expireAfter ({}s): not written",
                age.as_secs(),
                expiry.as_secs()
            ));
        }
        let devices = self.devices.borrow();
        let device = devices.by_name(name).ok_or(format!(
            "DeviceLink {key} is not one the bridge's source.deviceLinks selects (with an MQTT extension)"
        ))?;
        Ok((device.uid.clone(), device.write_topic.clone()))
    }
}

/// How long ago `millis` (since the epoch) was; none if in the future.
fn age_of(millis: i64) -> Option<Duration> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    now.checked_sub(Duration::from_millis(u64::try_from(millis).ok()?))
}

/// Drives the writer's connection: answer subscriptions again on each
/// connection, answers to their writes.
async fn drive(
    mut connection: wire::Connection,
    client: wire::Client,
    requests: Arc<Requests>,
    up: watch::Sender<bool>,
) {
    loop {
        match connection.poll().await {
            Ok(Seen::Connected { .. }) => {
                requests.resubscribe(&client);
                up.send_replace(true);
            }
            Ok(Seen::Received(m)) => {
                requests.hand_over(&m);
            }
            Ok(_) => {}
            Err(why) => {
                up.send_replace(false);
                tracing::warn!(%why, "the commands' MQTT connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_is_measured_from_the_records_timestamp() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let minute_ago = (now - Duration::from_secs(60)).as_millis() as i64;
        let age = age_of(minute_ago).unwrap();
        assert!(age >= Duration::from_secs(60) && age < Duration::from_secs(70));
        assert_eq!(
            age_of((now + Duration::from_secs(60)).as_millis() as i64),
            None
        );
    }
}
