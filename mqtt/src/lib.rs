//! The v1alpha1 MQTT extension as every adaptor uses it: topic templates and
//! a per-device publisher.

pub mod answers;
pub mod budget;
mod connection;
mod delivery;
pub mod error;
pub mod identity;
pub mod inbound;
pub mod message;
pub mod metrics;
pub mod observe;
mod options;
pub mod outbox;
pub mod publisher;
pub mod sharing;
pub mod store;
mod subscriptions;
mod tls;
pub mod topic;
pub mod wire;
pub mod write;

pub use budget::BufferBudget;
pub use metrics::MqttMetrics;
pub use outbox::{Outbox, SharedOutbox};
pub use publisher::{Publisher, PublisherError};
pub use sharing::Connections;
pub use store::FileStore;
pub use topic::{Topic, TopicContext};
