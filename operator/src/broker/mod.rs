//! The broker the operator manages (the chart's own mosquitto, with its
//! dynamic security plugin): no one connects to it anonymously, and each
//! adaptor pod and the console have an identity of their own there.
//!
//! For every adaptor pod the DeviceLinks call for (and the console, if
//! installed) the operator keeps, on the broker, a role that allows exactly
//! the topics of the devices it serves on that broker (status, will and
//! answers to publish, writes to take; the console writes and watches), and
//! two usernames with that role; in Kubernetes, a Secret in the adaptor
//! namespace with the username and password in use, which only that pod's
//! ServiceAccount may read. Rotation gives the other username a new
//! password and then moves the Secret to it: the holder reconnects with the
//! new one while the old still works, and a while later the old one's
//! password is replaced by one nobody knows (--broker-identity-overlap).
//!
//! A device is created only once its adaptor's role allows its topics, so
//! its first status is not refused. The broker's state is derived: after
//! the broker restarts (its plugin file is made afresh), the next pass puts
//! it all back from the DeviceLinks and the Secrets.

mod dynsec;
mod plan;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use devicelink_api::{
    DeviceLink,
    broker_credential::{BrokerAccessLevel, BrokerCredential, BrokerCredentialStatus},
    labels,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::{
    ByteString,
    api::{
        core::v1::Secret,
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams},
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};
use serde_json::{Value, json};
use sha2::Digest;
use tracing::{info, warn};

use crate::config::Config;
use dynsec::{Dynsec, DynsecError};
pub use plan::Identity;
use plan::{Acl, PREFIX, Roles, Slot};

/// How often the broker is brought in line with the DeviceLinks.
const PASS_EVERY: Duration = Duration::from_secs(2);
/// How often the broker's own account of our names is read again, and the
/// Secrets listed (someone may have changed them by hand).
const FULL_PASS_EVERY: Duration = Duration::from_secs(60);
/// The label value of the Secrets, Roles and RoleBindings made here.
const COMPONENT: &str = "broker-identity";
/// When the Secret's password was made (seconds since the epoch).
const ROTATED_AT: &str = "edge.cattle.io/rotated-at";
const MANAGER: &str = "devicelink-operator";
/// The description of a username whose password nobody knows any more.
const RETIRED: &str = "devicelink: retired";

/// What the broker has granted, for the controller's question "may this
/// DeviceLink's device be created yet?".
#[derive(Clone, Default)]
pub struct BrokerAccess {
    managed: bool,
    granted: Arc<RwLock<Roles>>,
}

impl BrokerAccess {
    pub fn new(config: &Config) -> BrokerAccess {
        BrokerAccess {
            managed: !config.managed_broker.is_empty(),
            granted: Arc::default(),
        }
    }

    /// Why the device of `link` must wait (its adaptor's role on the
    /// managed broker does not allow its topics yet), or None.
    pub fn waiting_for(&self, link: &DeviceLink) -> Option<String> {
        if !self.managed {
            return None;
        }
        let topics = plan::managed_topics(link)?;
        let kind = devicelink_api::adaptor::find(&link.spec.adaptor.name)?;
        let pod = crate::adaptor_pod::pod_name(kind, &link.spec.adaptor.node);
        let granted = self.granted.read().unwrap();
        let role = granted.get(&Identity::Adaptor(pod.clone()));
        let wanted = plan::adaptor_grants(&topics);
        if role.is_some_and(|acls| wanted.iter().all(|a| acls.contains(a))) {
            return None;
        }
        Some(format!(
            "waiting for the managed broker to allow {pod} the topics of this device ({})",
            topics.status
        ))
    }
}

/// Keeps the managed broker in line with the DeviceLinks until aborted.
pub async fn run(client: Client, config: Config, links: Store<DeviceLink>, access: BrokerAccess) {
    if let Err(e) = devicelink_mqtt::identity::set_managed_broker(&config.managed_broker) {
        tracing::error!(error = %e, "--managed-broker");
        return;
    }
    // BrokerCredentials, as they are asked for and withdrawn.
    let (credentials, writer) = reflector::store();
    let watch = reflector(
        writer,
        watcher(
            Api::<BrokerCredential>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(|_| std::future::ready(()));
    let _watching = AbortOnDrop(tokio::spawn(watch));
    let mut sync = Sync::new(client, config, access);
    let mut ticks = tokio::time::interval(PASS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = String::new();
    loop {
        ticks.tick().await;
        let links = links.state();
        let credentials = credentials.state();
        match sync.pass(&links, &credentials).await {
            Ok(()) => last_error.clear(),
            Err(e) => {
                let e = e.to_string();
                if e != last_error {
                    warn!(error = %e, "cannot bring the managed broker in line; retrying");
                    last_error = e;
                }
                // Not knowing what failed, read the broker's state afresh.
                sync.broker = None;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Dynsec(#[from] DynsecError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Admin(String),
}

/// What the broker holds of our names.
#[derive(Default)]
struct BrokerState {
    roles: BTreeMap<String, BTreeSet<Acl>>,
    /// username -> (description, roles)
    clients: BTreeMap<String, (String, Vec<String>)>,
}

/// An identity's Secret as the operator last wrote or read it.
#[derive(Clone)]
struct Credentials {
    slot: Slot,
    password: String,
    rotated_at: u64,
}

struct Sync {
    client: Client,
    config: Config,
    access: BrokerAccess,
    dynsec: Option<Dynsec>,
    connection: u64,
    broker: Option<BrokerState>,
    secrets: Option<BTreeMap<Identity, Credentials>>,
    /// Identities whose Secret's reader Role is in place.
    readable: BTreeSet<Identity>,
    last_full: Option<tokio::time::Instant>,
    /// The roles last planned, and a digest of what they were planned from
    /// (each DeviceLink's and BrokerCredential's identity and generation):
    /// planning renders every device's topics, so it is done only when
    /// something changed.
    planned: Option<(u64, Roles)>,
}

impl Sync {
    fn new(client: Client, config: Config, access: BrokerAccess) -> Sync {
        Sync {
            client,
            config,
            access,
            dynsec: None,
            connection: 0,
            broker: None,
            secrets: None,
            readable: BTreeSet::new(),
            last_full: None,
            planned: None,
        }
    }

    fn namespace_of<'a>(&'a self, identity: &'a Identity) -> &'a str {
        match identity {
            Identity::Adaptor(_) => &self.config.adaptor_namespace,
            Identity::Console => &self.config.lease_namespace,
            Identity::Credential(namespace, _) => namespace,
        }
    }

    async fn pass(
        &mut self,
        links: &[Arc<DeviceLink>],
        credentials: &[Arc<BrokerCredential>],
    ) -> Result<(), SyncError> {
        let full = self
            .last_full
            .is_none_or(|t| t.elapsed() >= FULL_PASS_EVERY);
        if full {
            self.broker = None;
            self.secrets = None;
            self.last_full = Some(tokio::time::Instant::now());
        }
        if self.dynsec.is_none() {
            self.dynsec = Some(self.connect_admin().await?);
        }
        let connection = self
            .dynsec
            .as_mut()
            .unwrap()
            .ready(Duration::from_secs(10))
            .await?;
        if connection != self.connection {
            // A new connection: the broker may have restarted.
            self.broker = None;
            self.connection = connection;
        }
        if self.broker.is_none() {
            self.broker = Some(self.read_broker().await?);
        }
        if self.secrets.is_none() {
            self.secrets = Some(self.read_secrets().await?);
        }
        let wanted = self.plan(links, credentials);
        self.sync_roles(&wanted).await?;
        *self.access.granted.write().unwrap() = wanted.clone();
        self.sync_identities(&wanted, credentials).await?;
        if full {
            self.remove_unwanted(&wanted).await?;
        }
        Ok(())
    }

    /// The roles the DeviceLinks and BrokerCredentials call for.
    fn plan(&mut self, links: &[Arc<DeviceLink>], credentials: &[Arc<BrokerCredential>]) -> Roles {
        use std::hash::{Hash, Hasher};
        // A sum of each object's digest: the caches list them in no set
        // order.
        let digest = links
            .iter()
            .map(|l| &l.metadata)
            .chain(credentials.iter().map(|c| &c.metadata))
            .map(|meta| {
                let mut one = std::collections::hash_map::DefaultHasher::new();
                (
                    &meta.uid,
                    meta.generation,
                    meta.deletion_timestamp.is_some(),
                )
                    .hash(&mut one);
                one.finish()
            })
            .fold(0u64, u64::wrapping_add);
        if let Some((planned, roles)) = &self.planned
            && *planned == digest
        {
            return roles.clone();
        }
        let requests: Vec<plan::CredentialRequest> = credentials
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| {
                (
                    c.namespace().unwrap_or_default(),
                    c.name_any(),
                    c.spec.access == BrokerAccessLevel::Write,
                )
            })
            .collect();
        let roles = plan::roles(
            links.iter().map(|l| l.as_ref()),
            self.config.grant_console,
            &requests,
        );
        self.planned = Some((digest, roles.clone()));
        roles
    }

    async fn connect_admin(&self) -> Result<Dynsec, SyncError> {
        let name = &self.config.managed_broker_admin_secret;
        let namespace = &self.config.lease_namespace;
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| {
                SyncError::Admin(format!(
                    "the managed broker's admin Secret {namespace}/{name} does not exist"
                ))
            })?;
        let item = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .ok_or_else(|| {
                    SyncError::Admin(format!(
                        "the managed broker's admin Secret {namespace}/{name} has no item {key}"
                    ))
                })
        };
        let server = &self.config.managed_broker[0];
        Dynsec::connect(server, &item("username")?, &item("password")?)
            .map_err(|e| SyncError::Admin(format!("--managed-broker {e}")))
    }

    fn dynsec(&mut self) -> &mut Dynsec {
        self.dynsec.as_mut().expect("connected")
    }

    /// Our roles and usernames as the broker has them.
    async fn read_broker(&mut self) -> Result<BrokerState, SyncError> {
        let answers = self
            .dynsec()
            .run(vec![
                json!({"command": "listRoles", "verbose": true, "count": -1, "offset": 0}),
                json!({"command": "listClients", "verbose": true, "count": -1, "offset": 0}),
            ])
            .await?;
        let mut answers = answers.into_iter();
        let roles = answers.next().map(|a| a.ok()).transpose()?.flatten();
        let clients = answers.next().map(|a| a.ok()).transpose()?.flatten();
        let mut state = BrokerState::default();
        for role in list(&roles, "roles") {
            let Some(name) = role["rolename"].as_str().filter(|n| n.starts_with(PREFIX)) else {
                continue;
            };
            let acls = list(&Some(role.clone()), "acls")
                .map(|a| Acl {
                    kind: a["acltype"].as_str().unwrap_or_default().into(),
                    topic: a["topic"].as_str().unwrap_or_default().into(),
                    allow: a["allow"].as_bool().unwrap_or(false),
                    priority: a["priority"].as_i64().unwrap_or(0),
                })
                .collect();
            state.roles.insert(name.to_string(), acls);
        }
        for client in list(&clients, "clients") {
            let Some(name) = client["username"]
                .as_str()
                .filter(|n| n.starts_with(PREFIX))
            else {
                continue;
            };
            let description = client["textdescription"].as_str().unwrap_or_default();
            let roles = list(&Some(client.clone()), "roles")
                .filter_map(|r| r["rolename"].as_str().map(str::to_string))
                .collect();
            state
                .clients
                .insert(name.to_string(), (description.to_string(), roles));
        }
        Ok(state)
    }

    /// The identity Secrets there are, by identity.
    async fn read_secrets(&self) -> Result<BTreeMap<Identity, Credentials>, SyncError> {
        let mut found = BTreeMap::new();
        let selector = format!("{}={COMPONENT}", labels::COMPONENT);
        let api: Api<Secret> = Api::all(self.client.clone());
        for secret in api.list(&ListParams::default().labels(&selector)).await? {
            if let Some((identity, credentials)) = parse_secret(&secret)
                && self.namespace_of(&identity) == secret.namespace().unwrap_or_default()
            {
                found.insert(identity, credentials);
            }
        }
        Ok(found)
    }

    /// Makes each wanted role allow exactly its ACLs.
    async fn sync_roles(&mut self, wanted: &Roles) -> Result<(), SyncError> {
        let broker = self.broker.as_ref().expect("read");
        let mut commands = Vec::new();
        for (identity, acls) in wanted {
            let name = identity.name();
            match broker.roles.get(&name) {
                None => commands.push(json!({"command": "createRole", "rolename": name,
                    "acls": acls.iter().map(Acl::to_json).collect::<Vec<_>>()})),
                Some(have) => {
                    for acl in acls.difference(have) {
                        let mut c = acl.to_json();
                        c["command"] = json!("addRoleACL");
                        c["rolename"] = json!(name);
                        commands.push(c);
                    }
                    for acl in have.difference(acls) {
                        commands.push(json!({"command": "removeRoleACL", "rolename": name,
                            "acltype": acl.kind, "topic": acl.topic}));
                    }
                }
            }
        }
        // An entry whose allow or priority changed is removed (by kind and
        // topic) before it is added again.
        commands.sort_by_key(|c| c["command"] != "removeRoleACL");
        if commands.is_empty() {
            return Ok(());
        }
        for answer in self.dynsec().run(commands).await? {
            answer.ok()?;
        }
        let broker = self.broker.as_mut().expect("read");
        for (identity, acls) in wanted {
            broker.roles.insert(identity.name(), acls.clone());
        }
        Ok(())
    }

    /// Gives every wanted identity a Secret, its username on the broker
    /// (rotating when due), and its reader Role.
    async fn sync_identities(
        &mut self,
        wanted: &Roles,
        credentials: &[Arc<BrokerCredential>],
    ) -> Result<(), SyncError> {
        let now = unix_now();
        let rotation = self.config.broker_identity_rotation.as_secs().max(1);
        for identity in wanted.keys() {
            let current = self.secrets.as_ref().unwrap().get(identity).cloned();
            let next = match &current {
                None => Some(Credentials {
                    slot: Slot::A,
                    password: new_password(),
                    rotated_at: now,
                }),
                Some(c) if now.saturating_sub(c.rotated_at) >= rotation => Some(Credentials {
                    slot: c.slot.other(),
                    password: new_password(),
                    rotated_at: now,
                }),
                Some(_) => None,
            };
            let using = next.clone().or(current.clone()).expect("one of them");
            let mut commands = Vec::new();
            // The broker first: the Secret never names a username the
            // broker does not take.
            commands.extend(self.client_command(identity, &using));
            if now.saturating_sub(using.rotated_at) >= self.config.broker_identity_overlap.as_secs()
            {
                commands.extend(self.retire_command(identity, using.slot.other()));
            }
            if !commands.is_empty() {
                for answer in self.dynsec().run(commands.clone()).await? {
                    answer.ok()?;
                }
                let broker = self.broker.as_mut().unwrap();
                for c in &commands {
                    let username = c["username"].as_str().unwrap_or_default().to_string();
                    let description = c["textdescription"].as_str().unwrap_or_default();
                    broker
                        .clients
                        .insert(username, (description.to_string(), vec![identity.name()]));
                }
            }
            let owner = match identity {
                Identity::Credential(namespace, name) => credentials
                    .iter()
                    .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == *name)
                    .cloned(),
                _ => None,
            };
            if let Some(next) = next {
                self.write_secret(identity, &next, owner.as_deref()).await?;
                if current.is_some() {
                    info!(
                        identity = identity.name(),
                        "rotated the broker identity's password"
                    );
                }
                self.secrets
                    .as_mut()
                    .unwrap()
                    .insert(identity.clone(), next);
            }
            if !self.readable.contains(identity) {
                self.grant_reading(identity).await?;
                self.readable.insert(identity.clone());
            }
            if let Some(owner) = owner {
                report(&self.client, &owner, identity, &using).await?;
            }
        }
        Ok(())
    }

    /// The command that makes the broker take `credentials` for
    /// `identity`, if it does not yet.
    fn client_command(&self, identity: &Identity, credentials: &Credentials) -> Option<Value> {
        let username = identity.username(credentials.slot);
        let description = fingerprint(&credentials.password);
        let role = identity.name();
        let broker = self.broker.as_ref().unwrap();
        let command = match broker.clients.get(&username) {
            None => "createClient",
            Some((d, roles)) if *d == description && roles.as_slice() == [role.clone()] => {
                return None;
            }
            // Changing a password disconnects who used the old one.
            Some(_) => "modifyClient",
        };
        Some(json!({"command": command, "username": username,
            "password": credentials.password, "textdescription": description,
            "roles": [{"rolename": role}]}))
    }

    /// The command that gives the previous username a password nobody
    /// knows (and so disconnects whoever still uses it).
    fn retire_command(&self, identity: &Identity, slot: Slot) -> Option<Value> {
        let username = identity.username(slot);
        let broker = self.broker.as_ref().unwrap();
        match broker.clients.get(&username) {
            Some((d, _)) if d != RETIRED => Some(json!({"command": "modifyClient",
                "username": username, "password": new_password(),
                "textdescription": RETIRED, "roles": [{"rolename": identity.name()}]})),
            _ => None,
        }
    }

    async fn write_secret(
        &self,
        identity: &Identity,
        credentials: &Credentials,
        owner: Option<&BrokerCredential>,
    ) -> Result<(), SyncError> {
        let namespace = self.namespace_of(identity);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(identity.secret()),
                namespace: Some(namespace.to_string()),
                labels: Some(component_labels()),
                // Goes with its BrokerCredential.
                owner_references: owner
                    .and_then(|o| o.controller_owner_ref(&()))
                    .map(|o| vec![o]),
                annotations: Some(
                    [(ROTATED_AT.to_string(), credentials.rotated_at.to_string())].into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/basic-auth".into()),
            data: Some(
                [
                    ("username", identity.username(credentials.slot)),
                    ("password", credentials.password.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
                .collect(),
            ),
            ..Default::default()
        };
        api.patch(
            &identity.secret(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        Ok(())
    }

    /// Lets an adaptor pod's ServiceAccount read its identity's Secret (the
    /// console's is granted by the chart).
    async fn grant_reading(&self, identity: &Identity) -> Result<(), SyncError> {
        let Identity::Adaptor(pod) = identity else {
            return Ok(());
        };
        let namespace = &self.config.adaptor_namespace;
        let name = identity.secret();
        let meta = ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(component_labels()),
            ..Default::default()
        };
        let role = Role {
            metadata: meta.clone(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["secrets".into()]),
                resource_names: Some(vec![name.clone()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                non_resource_urls: None,
            }]),
        };
        let binding = RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: pod.clone(),
                namespace: Some(namespace.clone()),
                api_group: None,
            }]),
        };
        let params = PatchParams::apply(MANAGER).force();
        Api::<Role>::namespaced(self.client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&role))
            .await?;
        Api::<RoleBinding>::namespaced(self.client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&binding))
            .await?;
        Ok(())
    }

    /// Removes the roles, usernames, Secrets and reader Roles of identities
    /// no DeviceLink calls for any more.
    async fn remove_unwanted(&mut self, wanted: &Roles) -> Result<(), SyncError> {
        let names: BTreeSet<String> = wanted.keys().map(Identity::name).collect();
        let broker = self.broker.as_ref().unwrap();
        let mut commands = Vec::new();
        for username in broker.clients.keys() {
            if Identity::of_username(username).is_some_and(|(n, _)| !names.contains(&n)) {
                commands.push(json!({"command": "deleteClient", "username": username}));
            }
        }
        for role in broker.roles.keys() {
            if !names.contains(role) {
                commands.push(json!({"command": "deleteRole", "rolename": role}));
            }
        }
        if !commands.is_empty() {
            info!(
                count = commands.len(),
                "removing broker identities no DeviceLink needs"
            );
            for answer in self.dynsec().run(commands).await? {
                answer.ok()?;
            }
            self.broker = None;
        }
        let unwanted: Vec<Identity> = self
            .secrets
            .as_ref()
            .unwrap()
            .keys()
            .filter(|i| !wanted.contains_key(*i))
            .cloned()
            .collect();
        for identity in unwanted {
            let namespace = self.namespace_of(&identity).to_string();
            let name = identity.secret();
            delete::<RoleBinding>(&self.client, &namespace, &name).await?;
            delete::<Role>(&self.client, &namespace, &name).await?;
            delete::<Secret>(&self.client, &namespace, &name).await?;
            self.secrets.as_mut().unwrap().remove(&identity);
            self.readable.remove(&identity);
        }
        Ok(())
    }
}

/// Tells the BrokerCredential's author where the credential is.
async fn report(
    client: &Client,
    owner: &BrokerCredential,
    identity: &Identity,
    using: &Credentials,
) -> Result<(), kube::Error> {
    let secret_name = identity.secret();
    let username = identity.username(using.slot);
    let status = owner.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready
        && status.secret_name.as_deref() == Some(secret_name.as_str())
        && status.username.as_deref() == Some(username.as_str())
    {
        return Ok(());
    }
    let api: Api<BrokerCredential> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let status = BrokerCredentialStatus {
        secret_name: Some(secret_name.clone()),
        username: Some(username),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Issued".into(),
            message: format!(
                "the broker takes the username and password in Secret {secret_name}; they change every rotation"
            ),
            last_transition_time: devicelink_api::condition::now(),
            observed_generation: owner.metadata.generation,
        }],
    };
    api.patch_status(
        &owner.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match Api::<K>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

fn list<'a>(value: &'a Option<Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .as_ref()
        .and_then(|v| v[key].as_array())
        .into_iter()
        .flatten()
}

fn parse_secret(secret: &Secret) -> Option<(Identity, Credentials)> {
    let item = |key: &str| {
        let bytes = secret.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    };
    let (name, slot) = Identity::of_username(&item("username")?)?;
    let identity = Identity::of_name(&name)?;
    if secret.name_any() != identity.secret() {
        return None;
    }
    let rotated_at = secret.annotations().get(ROTATED_AT)?.parse().ok()?;
    Some((
        identity,
        Credentials {
            slot,
            password: item("password")?,
            rotated_at,
        },
    ))
}

fn component_labels() -> BTreeMap<String, String> {
    [
        (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
        (labels::COMPONENT.to_string(), COMPONENT.to_string()),
    ]
    .into()
}

/// What the broker keeps beside a username to know its password without
/// holding it.
fn fingerprint(password: &str) -> String {
    let digest = sha2::Sha256::digest(password.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("devicelink: sha256 {hex}")
}

/// 192 random bits from the kernel.
fn new_password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the kernel's random numbers (/dev/urandom)");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
