//! A client of mosquitto's dynamic security plugin: commands are JSON
//! published on `$CONTROL/dynamic-security/v1` by an admin client, and the
//! plugin answers every command, in order, on `.../response`. Each command
//! carries a correlation ID, so answers meant for another admin client
//! (someone running `mosquitto_ctrl`) are told apart.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

const COMMANDS: &str = "$CONTROL/dynamic-security/v1";
const RESPONSES: &str = "$CONTROL/dynamic-security/v1/response";
/// Commands sent in one message: the plugin saves its file after each
/// message's commands, and a broker limits a packet's size.
const BATCH: usize = 200;
/// How long the plugin has to answer one message.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum DynsecError {
    #[error("the broker {0} did not answer the dynamic security commands within {1:?}")]
    NoAnswer(String, Duration),
    #[error("not connected to the broker {0}: {1}")]
    NotConnected(String, String),
    #[error("the dynamic security plugin answered {0}: {1}")]
    Refused(String, String),
}

/// The plugin's answer to one command.
#[derive(Debug, Clone)]
pub struct Answer {
    pub command: String,
    pub error: Option<String>,
    pub data: Option<Value>,
}

impl Answer {
    /// The answer, or the plugin's error naming the command.
    pub fn ok(self) -> Result<Option<Value>, DynsecError> {
        match self.error {
            None => Ok(self.data),
            Some(e) => Err(DynsecError::Refused(self.command, e)),
        }
    }
}

/// An admin connection to the plugin.
pub struct Dynsec {
    server: String,
    client: AsyncClient,
    responses: mpsc::Receiver<Vec<u8>>,
    /// Counts connections on which the answers' topic is subscribed: a new
    /// value means the broker may have restarted (and forgotten its state).
    ready: watch::Receiver<(u64, Option<String>)>,
    task: JoinHandle<()>,
    next_id: u64,
}

impl Drop for Dynsec {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dynsec {
    /// Connects (in the background, retrying) to `server` (tcp://host:port)
    /// as the plugin's admin.
    pub fn connect(server: &str, username: &str, password: &str) -> Result<Dynsec, String> {
        let url = url::Url::parse(server).map_err(|e| format!("{server:?}: {e}"))?;
        if url.scheme() != "tcp" {
            return Err(format!(
                "{server:?}: the operator reaches the managed broker over tcp:// only"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{server:?}: no host"))?;
        let client_id = format!(
            "devicelink-operator-{}",
            std::env::var("POD_NAME").unwrap_or_else(|_| std::process::id().to_string())
        );
        let mut options = MqttOptions::new(client_id, host, url.port().unwrap_or(1883));
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(64 << 20, 64 << 20);
        let (client, events) = AsyncClient::new(options, 64);
        let (answers, responses) = mpsc::channel(64);
        let (ready_tx, ready) = watch::channel((0, Some("connecting".to_string())));
        let task = tokio::spawn(drive(events, client.clone(), answers, ready_tx));
        Ok(Dynsec {
            server: server.to_string(),
            client,
            responses,
            ready,
            task,
            next_id: 0,
        })
    }

    /// Waits up to `within` for a ready connection; its number.
    pub async fn ready(&mut self, within: Duration) -> Result<u64, DynsecError> {
        let ready = tokio::time::timeout(within, async {
            self.ready
                .wait_for(|(_, why)| why.is_none())
                .await
                .map(|s| s.0)
        })
        .await;
        match ready {
            Ok(Ok(connection)) => Ok(connection),
            _ => Err(DynsecError::NotConnected(
                self.server.clone(),
                self.ready.borrow().1.clone().unwrap_or_default(),
            )),
        }
    }

    /// Sends the commands and returns the plugin's answers, in order.
    pub async fn run(&mut self, commands: Vec<Value>) -> Result<Vec<Answer>, DynsecError> {
        let mut answers = Vec::with_capacity(commands.len());
        for batch in commands.chunks(BATCH) {
            answers.extend(self.run_batch(batch).await?);
        }
        Ok(answers)
    }

    async fn run_batch(&mut self, batch: &[Value]) -> Result<Vec<Answer>, DynsecError> {
        // Answers of an earlier batch that timed out are stale now.
        while self.responses.try_recv().is_ok() {}
        let first = self.next_id;
        let ids: Vec<String> = (0..batch.len())
            .map(|i| format!("devicelink-{}", first + i as u64))
            .collect();
        self.next_id += batch.len() as u64;
        let commands: Vec<Value> = batch
            .iter()
            .zip(&ids)
            .map(|(c, id)| {
                let mut c = c.clone();
                c["correlationData"] = json!(id);
                c
            })
            .collect();
        let payload = serde_json::to_vec(&json!({ "commands": commands })).expect("JSON");
        self.client
            .publish(COMMANDS, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| DynsecError::NotConnected(self.server.clone(), e.to_string()))?;
        let mut found: Vec<Option<Answer>> = vec![None; ids.len()];
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        while found.iter().any(Option::is_none) {
            let message = tokio::time::timeout_at(deadline, self.responses.recv()).await;
            let Ok(Some(message)) = message else {
                return Err(DynsecError::NoAnswer(self.server.clone(), ANSWER_WITHIN));
            };
            let Ok(response) = serde_json::from_slice::<Value>(&message) else {
                continue;
            };
            for r in response["responses"].as_array().into_iter().flatten() {
                let Some(i) = r["correlationData"]
                    .as_str()
                    .and_then(|c| ids.iter().position(|id| id == c))
                else {
                    continue;
                };
                found[i] = Some(Answer {
                    command: r["command"].as_str().unwrap_or_default().to_string(),
                    error: r["error"].as_str().map(str::to_string),
                    data: r.get("data").cloned(),
                });
            }
        }
        Ok(found.into_iter().flatten().collect())
    }
}

/// Drives the connection: subscribes to the answers on every connection,
/// hands answers over, and says when it is ready or why not.
async fn drive(
    mut events: EventLoop,
    client: AsyncClient,
    answers: mpsc::Sender<Vec<u8>>,
    ready: watch::Sender<(u64, Option<String>)>,
) {
    let mut connections = 0;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = client.try_subscribe(RESPONSES, QoS::AtLeastOnce) {
                    warn!(error = %e, "cannot subscribe to the dynamic security answers");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    let why = format!("the broker refused the admin a subscription to {RESPONSES}");
                    warn!("{why}");
                    ready.send_replace((connections, Some(why)));
                } else {
                    connections += 1;
                    info!(connection = connections, "connected to the managed broker");
                    ready.send_replace((connections, None));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == RESPONSES => {
                let _ = answers.try_send(p.payload.to_vec());
            }
            Ok(_) => {}
            Err(e) => {
                let why = e.to_string();
                if ready.borrow().1.as_deref() != Some(why.as_str()) {
                    warn!(error = %why, "managed broker connection failed; retrying");
                }
                ready.send_replace((connections, Some(why)));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
