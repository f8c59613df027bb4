//! How to reach and sign in to a device's server, resolved from its spec and
//! the values its `*Ref` fields point at.

use std::time::Duration;

use devicelink_adaptor_runtime::References;
use devicelink_api::{
    duration::Duration as SpecDuration,
    opcua::{OpcuaDeviceSpec, OpcuaParameters, SecurityMode, SecurityPolicy},
};

/// Everything a session needs. Compared on a spec change: a session is
/// re-opened only when these differ.
#[derive(Clone, PartialEq)]
pub struct Settings {
    pub endpoint: String,
    pub policy: SecurityPolicy,
    pub mode: SecurityMode,
    pub identity: Identity,
    /// The client's own certificate and key, PEM; the adaptor's generated
    /// one when not given.
    pub client_certificate: Option<(String, String)>,
    /// Trusted server certificates, PEM (one or more).
    pub trusted: Option<String>,
    pub trust_on_first_use: bool,
    /// Sampling interval of the monitored items.
    pub sync_interval: Duration,
    /// How often the server sends what changed.
    pub publishing_interval: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// The session timeout asked of the server.
    pub session_timeout: Duration,
}

/// Who the adaptor signs in as.
#[derive(Clone, PartialEq)]
pub enum Identity {
    Anonymous,
    UserName { user: String, password: String },
    Certificate { certificate: String, key: String },
    IssuedToken(String),
}

impl Identity {
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::UserName { .. } => "username and password",
            Identity::Certificate { .. } => "X.509 certificate",
            Identity::IssuedToken(_) => "issued token",
        }
    }
}

impl Settings {
    /// Resolves the settings; the error names the field and says why.
    pub fn new(spec: &OpcuaDeviceSpec, refs: &References) -> Result<Settings, String> {
        let p = &spec.protocol;
        let params = spec.parameters.as_ref();
        let text = |field: &str, inline: &Option<String>, by_ref| {
            refs.inline_or_ref(inline, by_ref)
                .map_err(|e| format!("protocol.{field}: {e}"))
        };
        if (p.basic_auth.is_some() || p.issued_token_auth.is_some())
            && p.security_policy.unwrap_or(SecurityPolicy::None) == SecurityPolicy::None
            && p.allow_insecure_credentials != Some(true)
        {
            return Err("protocol.securityPolicy: None would send the credentials to a server whose certificate is not checked; use a securityPolicy such as Basic256Sha256, or set allowInsecureCredentials: true".into());
        }
        let identity = if let Some(auth) = &p.basic_auth {
            Identity::UserName {
                user: text("basicAuth.username", &auth.username, &auth.username_ref)?
                    .unwrap_or_default(),
                password: text("basicAuth.password", &auth.password, &auth.password_ref)?
                    .unwrap_or_default(),
            }
        } else if let Some(auth) = &p.certificate_auth {
            Identity::Certificate {
                certificate: text(
                    "certificateAuth.certFilePEM",
                    &auth.cert_file_pem,
                    &auth.cert_file_pem_ref,
                )?
                .ok_or("protocol.certificateAuth: needs certFilePEM or certFilePEMRef")?,
                key: text(
                    "certificateAuth.keyFilePEM",
                    &auth.key_file_pem,
                    &auth.key_file_pem_ref,
                )?
                .ok_or("protocol.certificateAuth: needs keyFilePEM or keyFilePEMRef")?,
            }
        } else if let Some(token) = &p.issued_token_auth {
            Identity::IssuedToken(
                text("issuedTokenAuth.token", &token.token, &token.token_ref)?
                    .ok_or("protocol.issuedTokenAuth: needs token or tokenRef")?,
            )
        } else {
            Identity::Anonymous
        };
        let tls = p.tls_config.clone().unwrap_or_default();
        let client_certificate = match (
            text(
                "tlsConfig.certFilePEM",
                &tls.cert_file_pem,
                &tls.cert_file_pem_ref,
            )?,
            text(
                "tlsConfig.keyFilePEM",
                &tls.key_file_pem,
                &tls.key_file_pem_ref,
            )?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("protocol.tlsConfig: the client certificate needs its key".into()),
        };
        let sync_interval = devicelink_api::duration::sync_interval(
            &[
                p.sync_interval.as_ref(),
                params.and_then(|p| p.sync_interval.as_ref()),
            ],
            OpcuaParameters::DEFAULT_SYNC_INTERVAL,
        );
        let request_timeout = duration("protocol.requestTimeout", p.request_timeout.as_ref())?
            .or(duration(
                "parameters.timeout",
                params.and_then(|p| p.timeout.as_ref()),
            )?)
            .unwrap_or(Duration::from_secs(10));
        Ok(Settings {
            endpoint: p.endpoint.trim().to_string(),
            policy: p.security_policy.unwrap_or(SecurityPolicy::None),
            mode: p.security_mode.unwrap_or(SecurityMode::None),
            identity,
            client_certificate,
            trusted: text(
                "tlsConfig.caFilePEM",
                &tls.ca_file_pem,
                &tls.ca_file_pem_ref,
            )?,
            trust_on_first_use: tls.trust_on_first_use.unwrap_or(false),
            sync_interval,
            publishing_interval: p.publishing_interval_in_seconds.map_or(sync_interval, |s| {
                Duration::from_secs(s.clamp(1, 60) as u64)
            }),
            request_timeout,
            connect_timeout: duration("protocol.connectTimeout", p.connect_timeout.as_ref())?
                .unwrap_or(Duration::from_secs(10)),
            session_timeout: duration("protocol.renewInterval", p.renew_interval.as_ref())?
                .unwrap_or(Duration::from_secs(3600)),
        })
    }

    /// Whether the endpoint signs (and perhaps encrypts) its messages.
    pub fn secured(&self) -> bool {
        self.policy != SecurityPolicy::None
    }
}

fn duration(field: &str, d: Option<&SpecDuration>) -> Result<Option<Duration>, String> {
    match d {
        None => Ok(None),
        Some(d) => d
            .to_std()
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| format!("{field} {:?} is not a positive duration", d.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(protocol: serde_json::Value, parameters: serde_json::Value) -> OpcuaDeviceSpec {
        serde_json::from_value(json!({"protocol": protocol, "parameters": parameters})).unwrap()
    }

    #[test]
    fn the_protocol_overrides_the_parameters_and_defaults_fill_the_rest() {
        let s = Settings::new(
            &spec(
                json!({"endpoint": " opc.tcp://plc:4840 ", "syncInterval": "250ms"}),
                json!({"syncInterval": "5s", "timeout": "2s"}),
            ),
            &References::default(),
        )
        .unwrap();
        assert_eq!(s.endpoint, "opc.tcp://plc:4840");
        assert_eq!(s.sync_interval, Duration::from_millis(250));
        assert_eq!(s.publishing_interval, Duration::from_millis(250));
        assert_eq!(s.request_timeout, Duration::from_secs(2));
        assert_eq!(s.connect_timeout, Duration::from_secs(10));
        assert!(s.identity == Identity::Anonymous && !s.secured() && !s.trust_on_first_use);
    }

    #[test]
    fn a_reference_that_does_not_resolve_names_the_field() {
        let e = Settings::new(
            &spec(
                json!({"endpoint": "opc.tcp://plc:4840", "allowInsecureCredentials": true,
                       "basicAuth": {"username": "u", "passwordRef": {"name": "creds", "item": "p"}}}),
                json!({}),
            ),
            &References::default(),
        )
        .err()
        .unwrap();
        assert!(e.starts_with("protocol.basicAuth.password:"), "{e}");
    }

    #[test]
    fn a_password_over_no_security_needs_an_opt_in() {
        let over_none = |allow: serde_json::Value| {
            Settings::new(
                &spec(
                    json!({"endpoint": "opc.tcp://plc:4840", "allowInsecureCredentials": allow,
                           "basicAuth": {"username": "u", "password": "p"}}),
                    json!({}),
                ),
                &References::default(),
            )
        };
        let e = over_none(json!(false)).err().unwrap();
        assert!(
            e.starts_with("protocol.securityPolicy: None")
                && e.contains("allowInsecureCredentials"),
            "{e}"
        );
        assert!(over_none(json!(true)).is_ok());
    }
}
