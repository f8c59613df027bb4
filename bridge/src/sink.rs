//! The Kafka side: an idempotent producer (acks from every in-sync replica,
//! no duplicates or reordering from its own retries) that keeps retrying
//! while Kafka is away, and what it knows of its connection.

use std::time::Duration;

use devicelink_api::kafka_bridge::{KafkaSink, SaslMechanism};
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
    /// The last refused login or TLS handshake: "all brokers down", which
    /// follows it, says less.
    cause: std::sync::Mutex<Option<String>>,
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
            *self.cause.lock().unwrap() = None;
            self.state.send_if_modified(|s| {
                let changed = *s != SinkState::Connected;
                *s = SinkState::Connected;
                changed
            });
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka");
        let code = error.rdkafka_error_code();
        let refused = matches!(
            code,
            Some(RDKafkaErrorCode::Authentication) | Some(RDKafkaErrorCode::SSL)
        );
        if refused {
            *self.cause.lock().unwrap() = Some(reason.to_string());
        }
        if refused
            || matches!(
                code,
                Some(RDKafkaErrorCode::AllBrokersDown)
                    | Some(RDKafkaErrorCode::BrokerTransportFailure)
                    | Some(RDKafkaErrorCode::Resolve)
            )
        {
            let why = match (refused, self.cause.lock().unwrap().as_deref()) {
                (false, Some(cause)) => format!("{error}: {reason}; the last refusal: {cause}"),
                _ => format!("{error}: {reason}"),
            };
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

/// How the producer proves who it is and checks the brokers, with the
/// values its `*Ref` fields took.
#[derive(Debug, Default, Clone)]
pub struct Security {
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

#[derive(Debug, Default, Clone)]
pub struct Tls {
    /// PEM of the CAs to trust; the system's when `None`.
    pub ca: Option<String>,
    /// PEM of a client certificate and its key.
    pub client: Option<(String, String)>,
    pub verify: bool,
}

#[derive(Debug, Clone)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl Security {
    /// librdkafka's settings for it.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let protocol = match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        let mut settings = vec![("security.protocol", protocol.to_string())];
        if let Some(tls) = &self.tls {
            match &tls.ca {
                Some(ca) => settings.push(("ssl.ca.pem", ca.clone())),
                // The usual places of a system's CA bundle.
                None => settings.push(("ssl.ca.location", "probe".to_string())),
            }
            if let Some((cert, key)) = &tls.client {
                settings.push(("ssl.certificate.pem", cert.clone()));
                settings.push(("ssl.key.pem", key.clone()));
            }
            if !tls.verify {
                settings.push(("enable.ssl.certificate.verification", "false".into()));
                settings.push(("ssl.endpoint.identification.algorithm", "none".into()));
            }
        }
        if let Some(sasl) = &self.sasl {
            settings.push(("sasl.mechanism", sasl.mechanism.as_str().to_string()));
            settings.push(("sasl.username", sasl.username.clone()));
            settings.push(("sasl.password", sasl.password.clone()));
        }
        settings
    }
}

/// librdkafka's settings to reach `sink`'s cluster, for its producer and
/// the commands' consumer alike.
pub fn client_config(sink: &KafkaSink, security: &Security) -> ClientConfig {
    let servers: Vec<&str> = sink
        .bootstrap_servers
        .iter()
        .map(|s| s.0.as_str())
        .collect();
    let mut config = ClientConfig::new();
    for (name, value) in security.settings() {
        config.set(name, value);
    }
    config.set("bootstrap.servers", servers.join(","));
    config
}

/// The producer of one bridge (a handle: clones share it).
#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer<Observer>,
}

impl Sink {
    /// A producer for `sink`; `client_id` names it in Kafka's logs and
    /// quotas. The state of its connection goes to `state`.
    pub fn new(
        sink: &KafkaSink,
        security: &Security,
        client_id: &str,
        state: watch::Sender<SinkState>,
    ) -> Result<Sink, KafkaError> {
        let compression = sink.compression.map_or("none", |c| c.as_str());
        let producer = client_config(sink, security)
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
            .create_with_context(Observer {
                state,
                cause: Default::default(),
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_follows_tls_and_sasl() {
        let protocol = |security: &Security| {
            security
                .settings()
                .into_iter()
                .find(|(name, _)| *name == "security.protocol")
                .map(|(_, value)| value)
                .unwrap()
        };
        let sasl = Sasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "bridge".into(),
            password: "s3cret".into(),
        };
        let tls = Tls {
            verify: true,
            ..Default::default()
        };
        assert_eq!(protocol(&Security::default()), "plaintext");
        let both = Security {
            tls: Some(tls.clone()),
            sasl: Some(sasl.clone()),
        };
        assert_eq!(protocol(&both), "sasl_ssl");
        let settings = both.settings();
        assert!(settings.contains(&("sasl.mechanism", "SCRAM-SHA-512".into())));
        assert!(settings.contains(&("ssl.ca.location", "probe".into())));
        let sasl_only = Security {
            tls: None,
            sasl: Some(sasl),
        };
        assert_eq!(protocol(&sasl_only), "sasl_plaintext");
    }
}
