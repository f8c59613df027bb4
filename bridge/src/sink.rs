//! The Kafka side: an idempotent producer (acks from every in-sync replica,
//! no duplicates or reordering from its own retries) that keeps retrying
//! while Kafka is away, and what it knows of its connection.

use std::time::Duration;

use devicelink_api::kafka_bridge::KafkaSink;
use futures::{FutureExt, future::BoxFuture};
use rdkafka::{
    ClientConfig, ClientContext, Statistics,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use tokio::sync::watch;

use crate::record::Record;

/// What the producer last knew of its brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkState {
    /// Not connected to any broker yet.
    Connecting,
    Connected,
    /// Why no broker is reachable, in librdkafka's words.
    Unreachable(String),
}

/// Reports the connection from librdkafka's callbacks (its own thread).
struct Observer {
    state: watch::Sender<SinkState>,
}

impl ClientContext for Observer {
    // Statistics each second say which brokers are up: librdkafka has no
    // callback for a connection that comes back.
    fn stats(&self, statistics: Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.state == "UP" && b.nodeid >= 0);
        if up {
            self.state.send_if_modified(|s| {
                let changed = *s != SinkState::Connected;
                *s = SinkState::Connected;
                changed
            });
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka");
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
                | Some(RDKafkaErrorCode::BrokerTransportFailure)
                | Some(RDKafkaErrorCode::Resolve)
                | Some(RDKafkaErrorCode::Authentication)
        ) {
            let why = format!("{error}: {reason}");
            self.state.send_if_modified(|s| {
                let changed = *s != SinkState::Unreachable(why.clone());
                *s = SinkState::Unreachable(why);
                changed
            });
        }
    }
}

/// Why a record was not delivered: Kafka refused it for good (too large,
/// a topic it may not create...); retrying would not help.
#[derive(Debug, thiserror::Error)]
#[error("Kafka refused the record for topic {topic:?}: {error}")]
pub struct Refused {
    pub topic: String,
    pub error: KafkaError,
}

/// The producer of one bridge.
pub struct Sink {
    producer: FutureProducer<Observer>,
}

impl Sink {
    /// A producer for `sink`; `client_id` names it in Kafka's logs and
    /// quotas. The state of its connection goes to `state`.
    pub fn new(
        sink: &KafkaSink,
        client_id: &str,
        state: watch::Sender<SinkState>,
    ) -> Result<Sink, KafkaError> {
        let servers: Vec<&str> = sink
            .bootstrap_servers
            .iter()
            .map(|s| s.0.as_str())
            .collect();
        let compression = sink.compression.map_or("none", |c| c.as_str());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", servers.join(","))
            .set("client.id", client_id)
            // At least once, in order: every in-sync replica has it before
            // it counts, and the producer's retries neither duplicate nor
            // reorder (idempotence).
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Retry until Kafka is back however long it is away: the MQTT
            // messages stay unacknowledged meanwhile, so nothing is lost
            // and the broker's session holds what waits.
            .set("message.timeout.ms", "0")
            .set("compression.type", compression)
            .set("linger.ms", "5")
            .set("statistics.interval.ms", "1000")
            .create_with_context(Observer { state })?;
        Ok(Sink { producer })
    }

    /// Queues `record`; the future ends when Kafka has it (its partition
    /// and offset) or refused it. Records of one key reach Kafka in the
    /// order they are queued.
    pub async fn send(&self, record: Record) -> BoxFuture<'static, Result<(i32, i64), Refused>> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut queued = FutureRecord::to(&record.topic)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            queued = queued.key(key);
        }
        // The local queue is full only when Kafka has been away long; the
        // caller waits (and so does the broker's session).
        let delivery: DeliveryFuture = loop {
            match self.producer.send_result(queued) {
                Ok(delivery) => break delivery,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    queued = back;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((error, _)) => {
                    let refused = Refused {
                        topic: record.topic.clone(),
                        error,
                    };
                    return futures::future::ready(Err(refused)).boxed();
                }
            }
        };
        let topic = record.topic;
        delivery
            .map(move |delivered| match delivered {
                Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
                Ok(Err((error, _))) => Err(Refused { topic, error }),
                // The producer went away (the bridge is stopping).
                Err(_) => Err(Refused {
                    topic,
                    error: KafkaError::Canceled,
                }),
            })
            .boxed()
    }
}
