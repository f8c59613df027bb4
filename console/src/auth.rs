//! Who may do what: the API server decides. A bearer token is authenticated
//! with a TokenReview and each request is authorized with a
//! SubjectAccessReview on the DeviceLinks it touches, so the console grants
//! exactly what `kubectl` would: `get` to read one, `list` to list them,
//! `watch` to stream them, `update` to write to a device.

use std::{
    collections::{BTreeMap, HashMap, hash_map::RandomState},
    hash::BuildHasher,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};
use tracing::{debug, warn};

/// What a request does to DeviceLinks (or to another resource of
/// `edge.cattle.io`, such as the DiscoveredDevices a person adopts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// The resource's plural name in `edge.cattle.io`.
    pub resource: &'static str,
    pub verb: &'static str,
    /// None: in every namespace.
    pub namespace: Option<String>,
    /// None: any DeviceLink (of the namespace).
    pub name: Option<String>,
}

impl Access {
    pub fn new(verb: &'static str, namespace: Option<&str>, name: Option<&str>) -> Access {
        Access::to("devicelinks", verb, namespace, name)
    }

    /// `verb` on `resource` of `edge.cattle.io`.
    pub fn to(
        resource: &'static str,
        verb: &'static str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Access {
        Access {
            resource,
            verb,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.name {
            Some(name) => format!("{}.edge.cattle.io {name:?}", self.resource),
            None => format!("{}.edge.cattle.io", self.resource),
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {what} in namespace {ns:?}", self.verb),
            None => write!(f, "{} {what} in all namespaces", self.verb),
        }
    }
}

/// Why a request is not served. What a client is told says nothing of the
/// API server's own words (a client without a good token learns nothing
/// of the cluster); the log has them.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    /// The API server could not be asked.
    #[error("cannot check access now: the API server did not answer; try again")]
    Unavailable,
    /// This client asked for too many token reviews.
    #[error("too many new tokens from this client; try again in {0} s")]
    TooMany(u64),
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
    /// The audience tokens must be minted for (`kubectl create token
    /// --audience`): a token for the API server, or for another service,
    /// is refused.
    audience: String,
    /// Keys tokens in the caches (randomly seeded: a digest nobody can aim at).
    hashing: RandomState,
    /// Answers that let a user in, apart from refusals: a flood of bad
    /// tokens fills only the refusals and never pushes these out.
    granted: Answers<User>,
    refused: Answers<Refusal>,
    /// Tokens the API server accepted lately, by digest: asking about them
    /// again (answers expire) costs their client nothing.
    known: Mutex<HashMap<u64, Instant>>,
    /// Reviews of new tokens per client address.
    reviews: Mutex<HashMap<IpAddr, Bucket>>,
    reviews_per_minute: u32,
}

/// How long a token the API server accepted counts as known.
const KNOWN_FOR: Duration = Duration::from_secs(3600);

/// Answers by token digest and access, with when they were given.
type Answers<V> = Mutex<HashMap<(u64, Access), (Instant, V)>>;

/// Remembered decisions of each kind at most.
const MAX_REMEMBERED: usize = 10_000;
/// Client addresses whose review budget is tracked at most.
const MAX_CLIENTS: usize = 10_000;

/// A token bucket: `reviews_per_minute` at once, refilled over a minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Gate {
    /// `reviews_per_minute`: token reviews a client address may cause a
    /// minute (answers remembered cost none).
    pub fn new(
        client: Client,
        remember: Duration,
        audience: String,
        reviews_per_minute: u32,
    ) -> Gate {
        Gate {
            client,
            remember,
            audience,
            hashing: RandomState::new(),
            granted: Mutex::default(),
            refused: Mutex::default(),
            known: Mutex::default(),
            reviews: Mutex::default(),
            reviews_per_minute: reviews_per_minute.max(1),
        }
    }

    /// The console's own client (for what it reads on a user's behalf once
    /// they may).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The user holding `token`, if they may do `access`; `from` is the
    /// client's address, whose reviews of tokens not known yet are limited.
    pub async fn check(
        &self,
        token: Option<&str>,
        access: &Access,
        from: IpAddr,
    ) -> Result<User, Refusal> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Refusal::Unauthenticated(format!(
                "no bearer token: send Authorization: Bearer <token> (a Kubernetes token for the audience {0:?}, e.g. `kubectl create token NAME --audience {0}`)",
                self.audience
            )));
        };
        // Keyed by a digest: the caches never hold tokens.
        let key = (self.hashing.hash_one(token), access.clone());
        if let Some((at, user)) = self.granted.lock().unwrap().get(&key)
            && at.elapsed() < self.remember
        {
            return Ok(user.clone());
        }
        if let Some((at, refusal)) = self.refused.lock().unwrap().get(&key)
            && at.elapsed() < self.remember
        {
            return Err(refusal.clone());
        }
        let digest = key.0;
        let known = self
            .known
            .lock()
            .unwrap()
            .get(&digest)
            .is_some_and(|at| at.elapsed() < KNOWN_FOR);
        if !known {
            self.take_review(from)?;
        }
        let decision = self.ask(token, access).await;
        if matches!(decision, Ok(_) | Err(Refusal::Forbidden(_))) {
            remember_token(&self.known, digest);
        }
        match &decision {
            Ok(user) => remember(&self.granted, self.remember, key, user.clone()),
            // The API server being away is not remembered.
            Err(Refusal::Unavailable | Refusal::TooMany(_)) => {}
            Err(refusal) => remember(&self.refused, self.remember, key, refusal.clone()),
        }
        decision
    }

    /// Takes one review from `from`'s budget, or says when there is one.
    fn take_review(&self, from: IpAddr) -> Result<(), Refusal> {
        let per_minute = f64::from(self.reviews_per_minute);
        let mut reviews = self.reviews.lock().unwrap();
        if reviews.len() >= MAX_CLIENTS {
            // Full buckets are as good as none.
            reviews.retain(|_, b| b.at.elapsed() < Duration::from_secs(60));
        }
        let now = Instant::now();
        let bucket = reviews.entry(from).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_minute / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(per_minute);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) * 60.0 / per_minute).ceil() as u64;
        Err(Refusal::TooMany(wait.max(1)))
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
                    resource: Some(access.resource.into()),
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
            .map_err(unavailable)?;
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
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(unavailable)?;
        let status = answer.status.unwrap_or_default();
        let for_us = status
            .audiences
            .as_ref()
            .is_some_and(|a| a.contains(&self.audience));
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) if for_us => Ok(User {
                name: user.username.unwrap_or_default(),
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => {
                // The API server's reason stays here: it may say more of
                // the cluster than a stranger should learn.
                debug!(error = ?status.error, "a token was not accepted");
                Err(Refusal::Unauthenticated(format!(
                    "the token is not accepted: send a valid Kubernetes token minted for the audience {0:?} (`kubectl create token NAME --audience {0}`)",
                    self.audience
                )))
            }
        }
    }
}

fn unavailable(e: kube::Error) -> Refusal {
    warn!(error = %e, "cannot ask the API server about access");
    Refusal::Unavailable
}

/// Notes that the token of `digest` was accepted, making room first if
/// the map is full (tokens known longest go).
fn remember_token(known: &Mutex<HashMap<u64, Instant>>, digest: u64) {
    let mut known = known.lock().unwrap();
    if known.len() >= MAX_REMEMBERED && !known.contains_key(&digest) {
        known.retain(|_, at| at.elapsed() < KNOWN_FOR);
        if known.len() >= MAX_REMEMBERED
            && let Some(oldest) = known.iter().min_by_key(|(_, at)| **at).map(|(d, _)| *d)
        {
            known.remove(&oldest);
        }
    }
    known.insert(digest, Instant::now());
}

/// Remembers `value` under `key`, making room first if the map is full:
/// answers past their time go, and if none has, all of them.
fn remember<V>(map: &Answers<V>, lifetime: Duration, key: (u64, Access), value: V) {
    let mut map = map.lock().unwrap();
    if map.len() >= MAX_REMEMBERED {
        map.retain(|_, (at, _)| at.elapsed() < lifetime);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
    }
    map.insert(key, (Instant::now(), value));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (In a runtime: a client needs one.)
    fn gate(reviews_per_minute: u32) -> Gate {
        // A client that is never used: these tests ask nobody.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Gate::new(
            Client::try_from(config).unwrap(),
            Duration::from_secs(60),
            "devicelink-console".into(),
            reviews_per_minute,
        )
    }

    #[tokio::test]
    async fn a_client_gets_so_many_reviews_a_minute_and_others_keep_theirs() {
        let gate = gate(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            gate.take_review(a).unwrap();
        }
        assert_eq!(gate.take_review(a), Err(Refusal::TooMany(20)));
        gate.take_review(b)
            .expect("another client has its own budget");
    }

    #[tokio::test]
    async fn a_flood_of_refusals_never_pushes_out_an_accepted_answer() {
        let gate = gate(1);
        let access = Access::new("get", Some("plant"), Some("fan"));
        let key = (gate.hashing.hash_one("good"), access.clone());
        let user = User {
            name: "alice".into(),
            uid: None,
            groups: vec![],
            extra: BTreeMap::new(),
        };
        remember(&gate.granted, gate.remember, key.clone(), user.clone());
        for i in 0..MAX_REMEMBERED * 2 {
            let junk = (gate.hashing.hash_one(format!("junk-{i}")), access.clone());
            remember(
                &gate.refused,
                gate.remember,
                junk,
                Refusal::Unauthenticated("no".into()),
            );
        }
        assert_eq!(
            gate.granted.lock().unwrap().get(&key).map(|v| &v.1),
            Some(&user)
        );
        assert!(gate.refused.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
