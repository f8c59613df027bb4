//! One device's session: the endpoint chosen by policy and mode, the
//! server's certificate checked, the user signed in, and one subscription
//! with a monitored item per watched property.
//!
//! async-opcua's own reconnection is switched off: a lost session is given
//! up and the device task opens a new one (with a new subscription), so
//! every way of failing passes through one place that names its reason.

use std::{sync::Arc, time::Duration};

use devicelink_adaptor_runtime::{Reason, access::ReadMode};
use devicelink_api::{
    Outcome,
    opcua::{SecurityMode, SecurityPolicy},
};
use futures::StreamExt;
use opcua::{
    client::{
        ClientBuilder, DataChangeCallback, IdentityToken, Session as OpcuaSession,
        SessionPollResult,
    },
    crypto::{PrivateKey, SecurityPolicy as CryptoPolicy, X509},
    types::{
        AttributeId, ByteString, DataValue, EndpointDescription, MessageSecurityMode,
        MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, NumericRange,
        ReadValueId, StatusCode, TimestampsToReturn, UserTokenType, WriteValue,
    },
};
use tokio::{sync::mpsc, task::JoinHandle, time::timeout};

use crate::{
    item::{Item, NodeRef},
    settings::{Identity, Settings},
    trust::{self, APPLICATION_URI, Pki},
};

/// Why a session could not be opened or was lost: a DeviceConnected reason
/// and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
    pub fn settings(message: String) -> Failure {
        Failure::new(Reason::InvalidSettings, message)
    }
    pub fn untrusted(message: String) -> Failure {
        Failure::new(Reason::UntrustedServerCertificate, message)
    }
    pub fn outcome(&self) -> Outcome {
        self.reason.outcome(self.message.clone())
    }

    /// A failure reported by the stack, by its status code.
    fn status(status: StatusCode, doing: &str) -> Failure {
        let name = status.sub_code().name();
        let (reason, hint) = match name {
            "BadCertificateUntrusted" => (Reason::UntrustedServerCertificate, ""),
            "BadCertificateHostNameInvalid"
            | "BadCertificateUriInvalid"
            | "BadCertificateTimeInvalid"
            | "BadCertificateIssuerTimeInvalid"
            | "BadCertificateInvalid"
            | "BadCertificateUseNotAllowed" => (Reason::InvalidServerCertificate, ""),
            "BadSecurityChecksFailed" | "BadSecurityPolicyRejected" | "BadCertificateRevoked" => (
                Reason::SecurityRejected,
                ": the server may not trust the adaptor's certificate",
            ),
            "BadUserAccessDenied"
            | "BadIdentityTokenInvalid"
            | "BadIdentityTokenRejected"
            | "BadUserSignatureInvalid" => (Reason::AuthenticationFailed, ""),
            "BadTimeout" | "BadRequestTimeout" => (Reason::Timeout, ""),
            "BadConnectionClosed"
            | "BadCommunicationError"
            | "BadNotConnected"
            | "BadTcpInternalError"
            | "BadServerNotConnected"
            | "BadConnectionRejected"
            | "BadServerHalted"
            | "BadSecureChannelClosed"
            | "BadResourceUnavailable" => (Reason::Unreachable, ""),
            _ => (Reason::SessionFailed, ""),
        };
        Failure::new(reason, format!("{doing}: {name}{hint}"))
    }
}

/// A data change: the monitored item's client handle (the property's index
/// plus one) and the value.
pub type Notification = (u32, DataValue);

/// An open session with its subscription. Dropping it ends the session.
pub struct Session {
    session: Arc<OpcuaSession>,
    pub events: Events,
    driver: JoinHandle<()>,
    pub notifications: mpsc::UnboundedReceiver<Notification>,
    /// The node of each item (index as in the items), once resolved.
    nodes: Vec<Option<NodeId>>,
}

/// What the event loop tells of the connection.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Result<SessionPollResult, StatusCode>>,
    endpoint: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Events {
    /// Waits for the session to be created and activated, at most `limit`.
    async fn opened(&mut self, limit: Duration) -> Result<(), Failure> {
        let wait = async {
            loop {
                match self.rx.recv().await {
                    Some(Ok(SessionPollResult::Reconnected(_))) => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(status)) => {
                        let doing = format!("opening a session with {}", self.endpoint);
                        return Err(Failure::status(status, &doing));
                    }
                    None => {
                        return Err(Failure::new(
                            Reason::SessionFailed,
                            "the session ended while opening",
                        ));
                    }
                }
            }
        };
        timeout(limit, wait).await.unwrap_or_else(|_| {
            Err(Failure::new(
                Reason::Timeout,
                format!(
                    "no session with {} within connectTimeout {limit:?}",
                    self.endpoint
                ),
            ))
        })
    }

    /// Waits for the session to be lost; the failure says how.
    pub async fn lost(&mut self) -> Failure {
        loop {
            match self.rx.recv().await {
                Some(Ok(SessionPollResult::ConnectionLost(status))) => {
                    return Failure::new(
                        Reason::SessionLost,
                        format!(
                            "the session with {} was lost ({}); reconnecting",
                            self.endpoint,
                            status.sub_code().name()
                        ),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Failure::status(status, "the session failed"),
                None => {
                    return Failure::new(
                        Reason::SessionLost,
                        format!("the session with {} ended; reconnecting", self.endpoint),
                    );
                }
            }
        }
    }
}

/// What `open` found wrong with single properties, while the rest flow.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemProblem {
    pub property: String,
    pub message: String,
}

impl Session {
    /// Opens a session and subscribes to the items that are read.
    pub async fn open(
        settings: &Settings,
        items: &[Item],
        pki: &Pki,
        device: &str,
        pinned: &mut Option<X509>,
    ) -> Result<(Session, Vec<ItemProblem>), Failure> {
        let endpoint = choose_endpoint(settings, pki).await?;
        accepts_identity(&endpoint, &settings.identity)?;
        let server = if settings.secured() {
            let cert = X509::from_byte_string(&endpoint.server_certificate).map_err(|_| {
                Failure::new(
                    Reason::InvalidServerCertificate,
                    "the endpoint's server certificate does not parse",
                )
            })?;
            let trusted = match &settings.trusted {
                Some(pem) => trust::certificates(pem, "protocol.tlsConfig.caFilePEM")
                    .map_err(Failure::settings)?,
                None => Vec::new(),
            };
            trust::check(&cert, &trusted, settings.trust_on_first_use, pinned)?;
            trust::check_application_uri(&cert, endpoint.server.application_uri.as_ref())?;
            trust::check_host(&cert, settings.endpoint.as_str())?;
            Some(cert)
        } else {
            None
        };
        let store = pki.prepare(
            device,
            settings.client_certificate.as_ref(),
            server.as_ref(),
        )?;
        let mut client = client(settings.request_timeout, &store, |b| {
            b.trust_server_certs(false)
                .verify_server_certs(true)
                .keep_alive_interval(
                    Duration::from_secs(5).min(settings.sync_interval.max(Duration::from_secs(1))),
                )
                .max_failed_keep_alive_count(2)
                .session_timeout(settings.session_timeout.as_millis().min(u32::MAX as u128) as u32)
                .session_name(format!("devicelink {device}"))
        })?;
        let identity = identity_token(&settings.identity)?;
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint, identity)
            .map_err(|e| Failure::status(e.status(), "connecting"))?;

        // The event loop drives the connection; it runs beside the device
        // task, which hears of it through `events`.
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let stream = event_loop.enter();
            tokio::pin!(stream);
            while let Some(event) = stream.next().await {
                if events_tx.send(event).is_err() {
                    break;
                }
            }
        });
        let (notify_tx, notifications) = mpsc::unbounded_channel();
        // Built before the session opens, so that a failure drops it and
        // with it the event loop.
        let mut opened = Session {
            session,
            events: Events {
                rx: events_rx,
                endpoint: settings.endpoint.clone(),
            },
            driver,
            notifications,
            nodes: Vec::new(),
        };
        opened.events.opened(settings.connect_timeout).await?;
        let problems = opened.subscribe(settings, items, notify_tx).await?;
        Ok((opened, problems))
    }

    /// Resolves the items' nodes and creates the subscription with a
    /// monitored item for each item that is read on change.
    async fn subscribe(
        &mut self,
        settings: &Settings,
        items: &[Item],
        notify: mpsc::UnboundedSender<Notification>,
    ) -> Result<Vec<ItemProblem>, Failure> {
        let mut problems = Vec::new();
        self.nodes = Vec::with_capacity(items.len());
        for item in items {
            let node = match &item.node {
                NodeRef::Id(id) => Some(id.clone()),
                NodeRef::InNamespace { uri, id } => {
                    match self.session.get_namespace_index(uri).await {
                        Ok(ns) => {
                            let mut id = id.clone();
                            id.namespace = ns;
                            Some(id)
                        }
                        Err(_) => {
                            problems.push(ItemProblem {
                                property: item.name.clone(),
                                message: format!("the server has no namespace {uri:?}"),
                            });
                            None
                        }
                    }
                }
            };
            self.nodes.push(node);
        }
        let watched: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].read == ReadMode::Every && self.nodes[i].is_some())
            .collect();
        if watched.is_empty() {
            return Ok(problems);
        }
        let lifetime = 60u32;
        let subscription = self
            .session
            .create_subscription(
                settings.publishing_interval,
                lifetime,
                10,
                0,
                0,
                true,
                DataChangeCallback::new(move |value, item| {
                    let _ = notify.send((item.client_handle(), value));
                }),
            )
            .await
            .map_err(|e| Failure::status(e.status(), "creating the subscription"))?;
        let sampling = settings.sync_interval.as_secs_f64() * 1000.0;
        let requests = watched
            .iter()
            .map(|&i| {
                MonitoredItemCreateRequest::new(
                    ReadValueId::new_value(
                        self.nodes[i].clone().expect("watched items have nodes"),
                    ),
                    MonitoringMode::Reporting,
                    MonitoringParameters {
                        client_handle: i as u32 + 1,
                        sampling_interval: sampling,
                        queue_size: 1,
                        discard_oldest: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let created = self
            .session
            .create_monitored_items(subscription, TimestampsToReturn::Source, requests)
            .await
            .map_err(|e| Failure::status(e.status(), "creating the monitored items"))?;
        for (&i, result) in watched.iter().zip(created) {
            let status = result.result.status_code;
            if status.is_bad() {
                problems.push(ItemProblem {
                    property: items[i].name.clone(),
                    message: format!("node {} {}", items[i].node_spelled, node_status(status)),
                });
            }
        }
        Ok(problems)
    }

    /// Reads the items once (ReadOnce); values by item index.
    pub async fn read(&self, indexes: &[usize]) -> Result<Vec<(usize, DataValue)>, Failure> {
        let (wanted, ids): (Vec<usize>, Vec<ReadValueId>) = indexes
            .iter()
            .filter_map(|&i| Some((i, ReadValueId::new_value(self.nodes.get(i)?.clone()?))))
            .unzip();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let values = self
            .session
            .read(&ids, TimestampsToReturn::Source, 0.0)
            .await
            .map_err(|e| Failure::status(e.status(), "reading"))?;
        Ok(wanted.into_iter().zip(values).collect())
    }

    /// Writes values to items (by index); the result of each, in order.
    pub async fn write(
        &self,
        values: &[(usize, opcua::types::Variant)],
    ) -> Result<Vec<Result<(), String>>, Failure> {
        let mut results = vec![Ok(()); values.len()];
        let mut requests = Vec::new();
        let mut sent = Vec::new();
        for (n, (i, variant)) in values.iter().enumerate() {
            match self.nodes.get(*i).cloned().flatten() {
                Some(node_id) => {
                    requests.push(WriteValue {
                        node_id,
                        attribute_id: AttributeId::Value as u32,
                        index_range: NumericRange::None,
                        value: DataValue::value_only(variant.clone()),
                    });
                    sent.push(n);
                }
                None => results[n] = Err("its node is not known to the server".to_string()),
            }
        }
        if requests.is_empty() {
            return Ok(results);
        }
        let statuses = self
            .session
            .write(&requests)
            .await
            .map_err(|e| Failure::status(e.status(), "writing"))?;
        for (n, status) in sent.into_iter().zip(statuses) {
            if status.is_bad() {
                results[n] = Err(write_status(status));
            }
        }
        Ok(results)
    }

    /// Closes the session politely (the server frees its subscription now
    /// rather than at its timeout).
    pub async fn close(self) {
        let _ = timeout(Duration::from_secs(2), self.session.disconnect()).await;
    }
}

/// A client as every connection of the adaptor makes it (a device's
/// session, a discovery's scan): its own identity and PKI, no reconnection
/// of its own (see the module's comment), then what `more` adds.
pub(crate) fn client(
    request_timeout: Duration,
    store: &trust::DeviceStore,
    more: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Result<opcua::client::Client, Failure> {
    more(
        ClientBuilder::new()
            .application_name("devicelink OPC-UA adaptor")
            .application_uri(APPLICATION_URI)
            .product_uri(APPLICATION_URI)
            .create_sample_keypair(false)
            .session_retry_limit(0)
            .request_timeout(request_timeout)
            .pki_dir(&store.dir)
            .certificate_path(&store.certificate)
            .private_key_path(&store.key),
    )
    .client()
    .map_err(|e| Failure::settings(format!("client settings: {}", e.join("; "))))
}

/// Asks the server for its endpoints and picks the one of the policy and
/// mode asked for, reached at the address the spec gives.
async fn choose_endpoint(settings: &Settings, pki: &Pki) -> Result<EndpointDescription, Failure> {
    let store = pki.discovery().map_err(Failure::settings)?;
    let client = client(settings.request_timeout, &store, |b| b)?;
    let endpoints = timeout(
        settings.connect_timeout,
        client.get_server_endpoints_from_url(settings.endpoint.as_str()),
    )
    .await
    .map_err(|_| {
        Failure::new(
            Reason::Timeout,
            format!(
                "{} did not list its endpoints within connectTimeout {:?}",
                settings.endpoint, settings.connect_timeout
            ),
        )
    })?
    .map_err(|e| {
        Failure::status(
            e.status(),
            &format!("asking {} for its endpoints", settings.endpoint),
        )
    })?;
    let policy_uri = crypto_policy(settings.policy).to_uri();
    let mode = match settings.mode {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    };
    let offered = |e: &EndpointDescription| {
        format!(
            "{}/{:?}",
            CryptoPolicy::from_uri(e.security_policy_uri.as_ref()),
            e.security_mode
        )
    };
    let mut chosen = endpoints
        .iter()
        .find(|e| e.security_policy_uri.as_ref() == policy_uri && e.security_mode == mode)
        .cloned()
        .ok_or_else(|| Failure::new(Reason::NoMatchingEndpoint, format!(
                "the server offers no endpoint with securityPolicy {:?} and securityMode {:?}; it offers {}",
                settings.policy,
                settings.mode,
                endpoints.iter().map(offered).collect::<Vec<_>>().join(", ")
            )))?;
    // Servers often advertise a host name of their own; the address the
    // spec gives is the one that reaches them (and the one the server's
    // certificate is checked against).
    chosen.endpoint_url = settings.endpoint.as_str().into();
    Ok(chosen)
}

/// Fails early, and clearly, when the endpoint takes no user of the kind
/// the spec gives (the server would only say which check failed).
fn accepts_identity(endpoint: &EndpointDescription, identity: &Identity) -> Result<(), Failure> {
    let wanted = match identity {
        Identity::Anonymous => UserTokenType::Anonymous,
        Identity::UserName { .. } => UserTokenType::UserName,
        Identity::Certificate { .. } => UserTokenType::Certificate,
        Identity::IssuedToken(_) => UserTokenType::IssuedToken,
    };
    let offered: Vec<UserTokenType> = endpoint
        .user_identity_tokens
        .iter()
        .flatten()
        .map(|t| t.token_type)
        .collect();
    if offered.is_empty() || offered.contains(&wanted) {
        return Ok(());
    }
    let kind = |t: &UserTokenType| match t {
        UserTokenType::Anonymous => "anonymous (no basicAuth, certificateAuth or issuedTokenAuth)",
        UserTokenType::UserName => "username and password (basicAuth)",
        UserTokenType::Certificate => "X.509 certificate (certificateAuth)",
        UserTokenType::IssuedToken => "issued token (issuedTokenAuth)",
    };
    Err(Failure::new(
        Reason::AuthenticationFailed,
        format!(
            "the endpoint does not take {} users; it takes {}",
            kind(&wanted),
            offered.iter().map(kind).collect::<Vec<_>>().join(", ")
        ),
    ))
}

fn crypto_policy(policy: SecurityPolicy) -> CryptoPolicy {
    match policy {
        SecurityPolicy::None => CryptoPolicy::None,
        SecurityPolicy::Basic128Rsa15 => CryptoPolicy::Basic128Rsa15,
        SecurityPolicy::Basic256 => CryptoPolicy::Basic256,
        SecurityPolicy::Basic256Sha256 => CryptoPolicy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep => CryptoPolicy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss => CryptoPolicy::Aes256Sha256RsaPss,
    }
}

fn identity_token(identity: &Identity) -> Result<IdentityToken, Failure> {
    Ok(match identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName { user, password } => {
            IdentityToken::new_user_name(user.clone(), password.clone())
        }
        Identity::Certificate { certificate, key } => {
            let cert = X509::from_pem(certificate.as_bytes()).map_err(|_| {
                Failure::settings(
                    "protocol.certificateAuth.certFilePEM is not a PEM certificate".into(),
                )
            })?;
            let key = PrivateKey::from_pem(key.as_bytes()).map_err(|_| {
                Failure::settings(
                    "protocol.certificateAuth.keyFilePEM is not a PEM RSA private key".into(),
                )
            })?;
            IdentityToken::new_x509(cert, key)
        }
        Identity::IssuedToken(token) => {
            IdentityToken::new_issued_token(ByteString::from(token.as_bytes().to_vec()))
        }
    })
}

/// Why a node cannot be watched, for people.
fn node_status(status: StatusCode) -> String {
    match status.sub_code().name() {
        "BadNodeIdUnknown" => "does not exist on the server (BadNodeIdUnknown)".into(),
        "BadNodeIdInvalid" => "is not a valid node ID for the server (BadNodeIdInvalid)".into(),
        "BadAttributeIdInvalid" => "is not a variable (BadAttributeIdInvalid)".into(),
        "BadNotReadable" | "BadUserAccessDenied" => {
            format!("may not be read ({})", status.sub_code().name())
        }
        other => format!("cannot be watched ({other})"),
    }
}

/// Why a write was refused, for people.
fn write_status(status: StatusCode) -> String {
    match status.sub_code().name() {
        "BadTypeMismatch" => "the server refused the value's type (BadTypeMismatch): the node's data type differs from the property's type".into(),
        "BadNotWritable" | "BadUserAccessDenied" => format!("the server does not allow writing it ({})", status.sub_code().name()),
        "BadOutOfRange" => "the server refused the value as out of range (BadOutOfRange)".into(),
        "BadNodeIdUnknown" => "its node does not exist on the server (BadNodeIdUnknown)".into(),
        other => format!("the server refused the write ({other})"),
    }
}
