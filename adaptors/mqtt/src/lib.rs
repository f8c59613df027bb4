//! The v1alpha1 MQTT extension as every adaptor uses it: topic templates and
//! a per-device publisher.

pub mod publisher;
mod tls;
pub mod topic;

pub use publisher::{Publisher, PublisherError};
pub use topic::{Topic, TopicContext};
