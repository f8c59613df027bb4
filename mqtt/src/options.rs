//! The MQTT extension's client options as a connection's settings: the
//! server's address and transport, TLS, credentials (inline, by
//! reference, or the adaptor's own broker identity), keep-alive, client ID
//! and websocket headers.

use std::{sync::Arc, time::Duration};

use devicelink_api::mqtt::{MqttClientOptions, MqttOptions, RESERVED_CLIENT_ID_PREFIX};

use crate::{
    error::{PublisherError, Resolve, pick},
    topic::TopicContext,
    wire::{Dial, Version},
};

pub(crate) fn client_options(
    options: &MqttOptions,
    link: &TopicContext,
    resolve: Resolve,
) -> Result<Dial, PublisherError> {
    let client = &options.client;
    let version = match client.protocol_version.unwrap_or(4) {
        4 => Version::V4,
        5 => Version::V5,
        // 3 (MQTT 3.1) is refused by the API server already.
        other => return Err(PublisherError::ProtocolVersion(other)),
    };
    let (address, port, transport) = endpoint(client)?;
    // Stored before the API server refused them, or on a cluster whose CRDs
    // are older: a reserved ID could take over another connection.
    if let Some(id) = client.client_id.as_deref()
        && id.starts_with(RESERVED_CLIENT_ID_PREFIX)
    {
        return Err(PublisherError::ClientId(id.to_string()));
    }
    // Stable across restarts, unique per DeviceLink.
    let client_id = client
        .client_id
        .clone()
        .unwrap_or_else(|| format!("{RESERVED_CLIENT_ID_PREFIX}{}", link.uid));
    let keep_alive = match &client.keep_alive {
        Some(k) => Some(
            k.to_std()
                // MQTT carries it in 16 bits of seconds.
                .filter(|d| d.as_secs() <= u64::from(u16::MAX))
                .ok_or_else(|| PublisherError::Duration("keepAlive", k.as_str().to_string()))?
                .max(Duration::from_secs(1)),
        ),
        None => None,
    };
    let credentials = credentials(client, resolve)?;
    let transport = rumqttc_transport(transport, client, resolve)?;
    let headers = if matches!(
        transport,
        rumqttc::Transport::Ws | rumqttc::Transport::Wss(_)
    ) {
        http_headers(&client.http_headers)?
    } else {
        Vec::new()
    };
    Ok(Dial {
        version,
        client_id,
        address,
        port,
        transport,
        clean: client.clean_session.unwrap_or(true),
        keep_alive,
        credentials,
        headers,
        will: None,
        manual_acks: false,
        inflight: 100,
        connect_timeout: Duration::from_secs(10),
    })
}

/// Where `client.server` is: address (a unix socket's is its path), port
/// and how to reach it.
fn endpoint(client: &MqttClientOptions) -> Result<(String, u16, Transport), PublisherError> {
    let bad = |why: &str| PublisherError::Server(client.server.clone(), why.to_string());
    let url = url::Url::parse(&client.server).map_err(|e| bad(&e.to_string()))?;
    let host =
        || Ok::<_, PublisherError>(url.host_str().ok_or_else(|| bad("no host"))?.to_string());
    Ok(match url.scheme() {
        "tcp" => (host()?, url.port().unwrap_or(1883), Transport::Tcp),
        "ssl" | "tls" | "tcps" => (host()?, url.port().unwrap_or(8883), Transport::Tls),
        "unix" if !url.path().is_empty() => (url.path().to_string(), 0, Transport::Unix),
        // Websockets dial the whole URL (its path is the broker's endpoint).
        "ws" => (
            client.server.clone(),
            url.port_or_known_default().unwrap_or(80),
            Transport::Ws,
        ),
        "wss" => (
            client.server.clone(),
            url.port_or_known_default().unwrap_or(443),
            Transport::Wss,
        ),
        "unix" => return Err(bad("no socket path; write unix:///path/to/socket")),
        other => {
            return Err(bad(&format!(
                "scheme {other} is not supported; use tcp, ssl, tls, tcps, ws, wss or unix"
            )));
        }
    })
}

/// The username and password to connect with: `basicAuth`'s, or the
/// adaptor's own identity on the managed broker.
fn credentials(
    client: &MqttClientOptions,
    resolve: Resolve,
) -> Result<Option<(String, String)>, PublisherError> {
    match &client.basic_auth {
        None if crate::identity::uses_identity(client) => {
            Ok(Some(crate::identity::credentials(resolve)?))
        }
        Some(auth) => {
            // The API server requires one of each pair.
            let user = pick(
                "basicAuth.usernameRef",
                &auth.username,
                &auth.username_ref,
                resolve,
            )?;
            let password = pick(
                "basicAuth.passwordRef",
                &auth.password,
                &auth.password_ref,
                resolve,
            )?;
            Ok(Some((
                user.unwrap_or_default(),
                password.unwrap_or_default(),
            )))
        }
        None => Ok(None),
    }
}

/// rumqttc's transport, with TLS as `tlsConfig` says where it is used.
fn rumqttc_transport(
    transport: Transport,
    client: &MqttClientOptions,
    resolve: Resolve,
) -> Result<rumqttc::Transport, PublisherError> {
    let tls = || -> Result<rumqttc::TlsConfiguration, PublisherError> {
        let config = crate::tls::client_config(client.tls_config.as_deref(), resolve)?;
        Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
    };
    Ok(match transport {
        Transport::Tcp => rumqttc::Transport::Tcp,
        Transport::Tls => rumqttc::Transport::tls_with_config(tls()?),
        Transport::Unix => rumqttc::Transport::unix(),
        Transport::Ws => rumqttc::Transport::Ws,
        Transport::Wss => rumqttc::Transport::wss_with_config(tls()?),
    })
}

/// How the publisher reaches its broker.
enum Transport {
    Tcp,
    Tls,
    Unix,
    Ws,
    Wss,
}

/// `httpHeaders`, checked: added to the websocket handshake request.
fn http_headers(
    headers: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, PublisherError> {
    let mut out = Vec::new();
    for (name, values) in headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PublisherError::Header(name.clone(), e.to_string()))?;
        for value in values {
            let value = http::HeaderValue::from_str(value)
                .map_err(|e| PublisherError::Header(name.clone(), e.to_string()))?;
            out.push((header.clone(), value));
        }
    }
    Ok(out)
}
