//! Who may do what: the API server decides. A bearer token is authenticated
//! with a TokenReview and each request is authorized with a
//! SubjectAccessReview on the DeviceLinks it touches, so the console grants
//! exactly what `kubectl` would: `get` to read one, `list` to list them,
//! `watch` to stream them, `update` to write to a device.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};

/// What a request does to DeviceLinks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    pub verb: &'static str,
    /// None: in every namespace.
    pub namespace: Option<String>,
    /// None: any DeviceLink (of the namespace).
    pub name: Option<String>,
}

impl Access {
    pub fn new(verb: &'static str, namespace: Option<&str>, name: Option<&str>) -> Access {
        Access {
            verb,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.name {
            Some(name) => format!("devicelinks.edge.cattle.io {name:?}"),
            None => "devicelinks.edge.cattle.io".to_string(),
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {what} in namespace {ns:?}", self.verb),
            None => write!(f, "{} {what} in all namespaces", self.verb),
        }
    }
}

/// Why a request is not served.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    /// The API server could not be asked.
    #[error("cannot check access: {0}")]
    Unavailable(String),
}

/// An authenticated user, as the API server knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

/// Asks the API server, and remembers its answers for a short while so a
/// page polling every second costs no review each time.
pub struct Gate {
    client: Client,
    remember: Duration,
    decisions: Mutex<HashMap<(u64, Access), Decision>>,
}

/// What the API server said about a token and an access, and when.
type Decision = (Instant, Result<User, Refusal>);

/// Remembered decisions at most; beyond that all are forgotten at once.
const MAX_REMEMBERED: usize = 10_000;

impl Gate {
    pub fn new(client: Client, remember: Duration) -> Gate {
        Gate {
            client,
            remember,
            decisions: Mutex::default(),
        }
    }

    /// The console's own client (for what it reads on a user's behalf once
    /// they may).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The user holding `token`, if they may do `access`.
    pub async fn check(&self, token: Option<&str>, access: &Access) -> Result<User, Refusal> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Refusal::Unauthenticated(
                "no bearer token: send Authorization: Bearer <token> (a Kubernetes token, e.g. `kubectl create token`)"
                    .into(),
            ));
        };
        // Keyed by a digest: the map never holds tokens.
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        let key = (hasher.finish(), access.clone());
        if let Some((at, decision)) = self.decisions.lock().unwrap().get(&key)
            && at.elapsed() < self.remember
        {
            return decision.clone();
        }
        let decision = self.ask(token, access).await;
        // The API server being away is not remembered.
        if !matches!(decision, Err(Refusal::Unavailable(_))) {
            let mut decisions = self.decisions.lock().unwrap();
            if decisions.len() >= MAX_REMEMBERED {
                decisions.clear();
            }
            decisions.insert(key, (Instant::now(), decision.clone()));
        }
        decision
    }

    async fn ask(&self, token: &str, access: &Access) -> Result<User, Refusal> {
        let user = self.authenticate(token).await?;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("edge.cattle.io".into()),
                    version: Some("v1alpha1".into()),
                    resource: Some("devicelinks".into()),
                    verb: Some(access.verb.into()),
                    namespace: access.namespace.clone(),
                    name: access.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        if status.allowed {
            return Ok(user);
        }
        let why = status
            .reason
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        Err(Refusal::Forbidden(format!(
            "user {:?} may not {access}{why}",
            user.name
        )))
    }

    async fn authenticate(&self, token: &str) -> Result<User, Refusal> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Ok(User {
                name: user.username.unwrap_or_default(),
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => Err(Refusal::Unauthenticated(format!(
                "the API server did not accept the token{}",
                status
                    .error
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))),
        }
    }
}
