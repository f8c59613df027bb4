//! The Kafka bridge: delivers the MQTT messages a KafkaBridge names into
//! Kafka, at least once, with Kafka topics and headers mapped from the MQTT
//! topic's levels (docs/bridge.md).
//!
//! controller (KafkaBridges -> running pipelines)
//!   -> pipeline (MQTT messages -> records -> acknowledgements)
//!        record (mapping + key + headers), sink (Kafka producer)
//!   -> status (conditions and Events)

pub mod commands;
pub mod controller;
pub mod devices;
pub mod mapping;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod status;
