//! devicelink-console: what the DeviceLinks of a cluster are doing, for a
//! browser or any HTTP client, behind Kubernetes authentication.
//!
//! The catalog watches DeviceLinks and their devices through the API
//! server; the feed follows the devices' MQTT topics with the DeviceLinks'
//! own broker settings; the hub hands each message to the WebSocket
//! clients that want it; the gate asks the API server who may see what.

pub mod api;
pub mod auth;
pub mod brokers;
pub mod catalog;
pub mod config;
pub mod discovered;
pub mod feed;
pub mod hub;
pub mod names;
