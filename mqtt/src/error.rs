//! Why the MQTT options of a DeviceLink cannot be used, and how their
//! `*Ref` values are looked up.

use devicelink_api::{devicelink::ReferenceItem, mqtt::RESERVED_CLIENT_ID_MESSAGE};

/// Why a connection cannot be made from the options; the text names the
/// field below the options (`client.server ...`), which the caller puts
/// under where the options are (`spec.extension.mqtt.`, `spec.protocol.`).
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("client.server {0:?}: {1}")]
    Server(String, String),
    #[error("message.topic renders to {0:?}, which cannot be published to (empty, or has + or #)")]
    Topic(String),
    #[error("message.qos {0} is not 0, 1 or 2")]
    Qos(i32),
    #[error(
        "client.{0} {1:?} is not a duration it takes (such as 30s or 1m; keepAlive at most 65535s, the others at most 8760h)"
    )]
    Duration(&'static str, String),
    #[error("client.{0}: {1}")]
    Reference(&'static str, String),
    #[error("message.will.content is not base64: {0}")]
    Will(String),
    #[error("client.{0}: {1}")]
    Tls(&'static str, String),
    #[error("client.httpHeaders[{0:?}]: {1}")]
    Header(String, String),
    #[error("client.protocolVersion {0}: set 4 (MQTT 3.1.1, the default) or 5 (MQTT 5)")]
    ProtocolVersion(i32),
    #[error("client.store: {0}")]
    Store(String),
    #[error("client.clientID {0:?} {RESERVED_CLIENT_ID_MESSAGE}")]
    ClientId(String),
    #[error(
        "client.server is the managed broker and basicAuth is not set, so the adaptor connects with its own broker identity, which it cannot read: {0}"
    )]
    Identity(String),
}

/// Looks up the value of a `*Ref` field in the DeviceLink's references.
pub type Resolve<'a> = &'a dyn Fn(&ReferenceItem) -> Result<String, String>;

/// A setting given inline or by reference to `spec.references` (`field`
/// names the reference field in errors).
pub(crate) fn pick(
    field: &'static str,
    inline: &Option<String>,
    by_ref: &Option<ReferenceItem>,
    resolve: Resolve,
) -> Result<Option<String>, PublisherError> {
    match (inline, by_ref) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(r)) => resolve(r)
            .map(Some)
            .map_err(|e| PublisherError::Reference(field, e)),
        (None, None) => Ok(None),
    }
}
