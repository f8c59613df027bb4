//! A test subscriber on the real broker.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// A message as the subscriber received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: serde_json::Value,
    pub at: Instant,
}

/// Subscribes to `filter` and collects messages.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Received>,
    _client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(port: u16, filter: &str) -> Subscriber {
        Subscriber::start_as(port, filter, None).await
    }

    /// Subscribes with a username and password.
    pub async fn start_as(port: u16, filter: &str, user: Option<(&str, &str)>) -> Subscriber {
        // Unique per subscriber: a broker drops a client whose ID reconnects.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options = MqttOptions::new(
            format!("e2e-sub-{}-{n}", std::process::id()),
            "127.0.0.1",
            port,
        );
        if let Some((user, password)) = user {
            options.set_credentials(user, password);
        }
        let (client, mut event_loop) = AsyncClient::new(options, 100);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                            serde_json::Value::String(String::from_utf8_lossy(&p.payload).into())
                        });
                        let _ = tx.send(Received {
                            topic: p.topic.clone(),
                            payload,
                            at: Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Subscriber {
            rx,
            _client: client,
            task,
        }
    }

    /// The next message, or panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Received {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no MQTT message within {timeout:?}"))
            .expect("subscriber running")
    }
}

impl Subscriber {
    /// The next message within `timeout`, if any.
    pub async fn try_next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.rx.recv()).await.ok()?
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
