//! The end-to-end harness: real parts, started and stopped by the tests.
//!
//! The control plane is started once by `make test` (it exports KUBECONFIG);
//! each test starts its own mosquitto and operator, and a [`LocalKubelet`]
//! that runs the adaptor pods the operator creates as local processes, with
//! the command, environment and service account of the pod spec.

pub mod ble;
pub mod broker;
pub mod browser;
pub mod certs;
pub mod console;
pub mod discovery;
pub mod helm;
pub mod kafka;
pub mod kubectl;
pub mod kubelet;
pub mod modbus;
pub mod mqtt;
pub mod mqtt_device;
pub mod opcua;
pub mod process;

use std::{path::PathBuf, time::Duration};

use kube::Client;

pub use broker::Broker;
pub use kubelet::LocalKubelet;
pub use process::Process;

/// Namespace the operator runs adaptor pods in.
pub const SYSTEM_NAMESPACE: &str = "devicelink-system";

/// The real node `make test` starts beside the kwok nodes: a kubelet with
/// containerd, runc, a CNI bridge and kube-proxy (e2e/controlplane/node.sh),
/// running the images `make images` built.
pub const REAL_NODE: &str = "real-node";

/// The node's address on its pod network: pods reach this host (and the
/// device servers a test starts on it) there.
pub const NODE_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 201, 0, 1);

/// A client for the test control plane. Fails clearly if there is none.
pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the end-to-end tests with `make test`, which starts the control plane"
    );
    Client::try_default()
        .await
        .expect("connect to the test control plane (KUBECONFIG)")
}

/// A client that acts as `user` (the test's admin may impersonate), for
/// what a tenant or an adaptor's ServiceAccount may and may not do.
pub async fn client_as(user: &str) -> Client {
    let mut config = kube::Config::infer().await.expect("the test kubeconfig");
    config.auth_info.impersonate = Some(user.into());
    Client::try_from(config).unwrap_or_else(|e| panic!("a client as {user}: {e}"))
}

/// Applies `object` server-side as the tests' field manager (taking over
/// fields others set) and returns what the API server made of it.
pub async fn apply<K>(api: &kube::Api<K>, object: &impl serde::Serialize) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let value = serde_json::to_value(object).expect("an object serializes");
    let name = value["metadata"]["name"]
        .as_str()
        .expect("the object has a name")
        .to_string();
    api.patch(
        &name,
        &kube::api::PatchParams::apply("e2e").force(),
        &kube::api::Patch::Apply(&value),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

/// The cargo target directory (`CARGO_TARGET_DIR` if set, as `make` does).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where logs of the processes a test starts go: `DEVICELINK_E2E_LOG_DIR`
/// (one per control plane when test files run side by side), else
/// `<target>/e2e-logs`.
pub fn log_dir() -> PathBuf {
    let dir = std::env::var_os("DEVICELINK_E2E_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("e2e-logs"));
    std::fs::create_dir_all(&dir).expect("create e2e log directory");
    dir
}

/// The cache `make test` fills outside the repository (the device servers'
/// virtualenv, node-opcua, HiveMQ): `$DEVICELINK_CACHE` or
/// `~/.cache/devicelink`, as e2e/prereqs.sh has it.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("DEVICELINK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/devicelink"))
}

/// Where the workspace's binaries are (built by `make test` before the tests).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("DEVICELINK_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// The repository root. Read at run time (cargo test sets
/// `CARGO_MANIFEST_DIR`; the benchmarks' scripts run them from the root):
/// the build cache is shared between checkouts, so a path compiled in may
/// name another.
pub fn repo_root() -> PathBuf {
    if let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        return PathBuf::from(manifest_dir).join("..");
    }
    let here = std::env::current_dir().expect("a current directory");
    assert!(
        here.join("e2e/devices").is_dir(),
        "run this from the repository root (as e2e/bench-*.sh do), or by cargo test"
    );
    here
}

/// The device programs and their sources (`e2e/devices/`), found at run
/// time as [`repo_root`] is.
pub fn devices_dir() -> PathBuf {
    repo_root().join("e2e/devices")
}

/// A kubeconfig for the test control plane that authenticates as a
/// ServiceAccount of the system namespace (a fresh token from `kubectl
/// create token`), written to the log directory as `<file>.kubeconfig`.
pub fn kubeconfig_as(service_account: &str, file: &str) -> anyhow::Result<PathBuf> {
    kubeconfig_with_token(&token_for(service_account, None)?, file)
}

/// A token of the ServiceAccount `service_account` of the system namespace,
/// bound to the pod `bound_pod` if given, as a kubelet's tokens are: the
/// API server then names the pod and its node in the token's user
/// (`authentication.kubernetes.io/node-name`), and the token dies with the pod.
pub fn token_for(service_account: &str, bound_pod: Option<&str>) -> anyhow::Result<String> {
    let mut args = vec![
        "create",
        "token",
        service_account,
        "-n",
        SYSTEM_NAMESPACE,
        "--duration=2h",
    ];
    if let Some(pod) = bound_pod {
        args.extend(["--bound-object-kind", "Pod", "--bound-object-name", pod]);
    }
    let token = kubectl::kubectl(&args, None);
    anyhow::ensure!(token.success, "token for {service_account}: {}", token.text);
    Ok(token.text.trim().to_string())
}

/// A kubeconfig for the test control plane that authenticates with `token`,
/// written to the log directory as `<file>.kubeconfig`.
pub fn kubeconfig_with_token(token: &str, file: &str) -> anyhow::Result<PathBuf> {
    let mut config = kube::config::Kubeconfig::read()?;
    for user in config.auth_infos.iter_mut() {
        user.auth_info = Some(kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        });
    }
    let path = log_dir().join(format!("{file}.kubeconfig"));
    std::fs::write(&path, serde_saphyr::to_string(&config)?)?;
    Ok(path)
}

/// A client that authenticates with `token` (no impersonation: the API
/// server sees the token's own user, extra fields included).
pub async fn client_with_token(token: &str) -> Client {
    let mut config = kube::Config::infer().await.expect("the test kubeconfig");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("a client with a token")
}

/// While kept, the chart's adaptor pod policy (`devicelink-adaptor-pods`)
/// allows adaptor pods of `kind` to run `image`, as it would after a
/// `helm upgrade` with that image in the adaptor settings; the images it
/// allowed before are put back when dropped, even by a failing test.
pub struct AllowedAdaptorImage {
    /// The policy's `images` variable: its index and expression before.
    index: usize,
    before: String,
}

const POD_POLICY: &str = "devicelink-adaptor-pods";

impl AllowedAdaptorImage {
    pub fn set(kind: &str, image: &str) -> AllowedAdaptorImage {
        let read = kubectl::kubectl(
            &["get", "validatingadmissionpolicy", POD_POLICY, "-o", "json"],
            None,
        );
        assert!(read.success, "the adaptor pod policy: {}", read.text);
        let policy: serde_json::Value = serde_json::from_str(&read.text).expect("JSON");
        let variables = policy["spec"]["variables"].as_array().expect("variables");
        let index = variables
            .iter()
            .position(|v| v["name"] == "images")
            .expect("the policy's images variable");
        let before = variables[index]["expression"].as_str().unwrap().to_string();
        // The chart renders the map as JSON, which is also CEL.
        let mut images: serde_json::Value = serde_json::from_str(&before).expect("a JSON map");
        images[kind] = serde_json::json!(image);
        let allowed = AllowedAdaptorImage { index, before };
        let out = allowed.write(&images.to_string());
        assert!(out.success, "allow {image}: {}", out.text);
        // The API server takes a changed policy within a moment.
        std::thread::sleep(std::time::Duration::from_secs(2));
        allowed
    }

    fn write(&self, expression: &str) -> kubectl::Output {
        let patch = serde_json::json!([{"op": "replace",
            "path": format!("/spec/variables/{}/expression", self.index),
            "value": expression}])
        .to_string();
        kubectl::kubectl(
            &[
                "patch",
                "validatingadmissionpolicy",
                POD_POLICY,
                "--type=json",
                "-p",
                &patch,
            ],
            None,
        )
    }
}

impl Drop for AllowedAdaptorImage {
    fn drop(&mut self) {
        // (No panic here: this may run while a failed test unwinds.)
        let out = self.write(&self.before.clone());
        if !out.success {
            eprintln!("putting back the adaptor pod policy's images: {}", out.text);
        }
    }
}

/// End-to-end tests share one control plane and one operator at a time.
/// Each starts on a control plane without devices: what a failed test left
/// (its operator gone, finalizers never removed) would otherwise be served
/// by the next test's adaptors and fail that test too.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    clear_leftovers(&client().await).await;
    guard
}

/// Removes every DeviceLink and device object (finalizers and all), saying
/// which: at the start of a test there should be none.
async fn clear_leftovers(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{
        Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams,
    };
    let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
    let Ok(definitions) = definitions.list(&ListParams::default()).await else {
        return; // No CRDs installed yet: nothing to clear.
    };
    for crd in definitions {
        let spec = &crd.spec;
        if !spec.group.ends_with("edge.cattle.io") {
            continue;
        }
        let Some(version) = spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let resource = ApiResource {
            group: spec.group.clone(),
            version: version.name.clone(),
            api_version: format!("{}/{}", spec.group, version.name),
            kind: spec.names.kind.clone(),
            plural: spec.names.plural.clone(),
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let Ok(objects) = all.list(&ListParams::default()).await else {
            continue;
        };
        for object in objects {
            let (Some(namespace), Some(name)) = (&object.metadata.namespace, &object.metadata.name)
            else {
                continue;
            };
            eprintln!(
                "a {} {namespace}/{name} left by an earlier test: removed",
                resource.kind
            );
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&no_finalizers))
                .await;
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
    // Broker identities an operator made (their Secrets and readers' Roles):
    // a test that stopped early leaves them; the next operator makes its own.
    let ours = ListParams::default().labels("app.kubernetes.io/component=broker-identity");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    if let Ok(left) = secrets.list_metadata(&ours).await {
        for secret in left {
            if let (Some(namespace), Some(name)) =
                (&secret.metadata.namespace, &secret.metadata.name)
            {
                let api: Api<k8s_openapi::api::core::v1::Secret> =
                    Api::namespaced(client.clone(), namespace);
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
    }
}

/// The start of an end-to-end test: this test alone on the control plane,
/// a client, and its namespace.
pub async fn begin(namespace: &str) -> (tokio::sync::MutexGuard<'static, ()>, Client) {
    let guard = exclusive().await;
    let client = client().await;
    ensure_namespace(&client, namespace).await;
    (guard, client)
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after
/// `timeout` with `what`. (A wait bound, not a performance assertion.)
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_showing(what, timeout, || {
        let next = check();
        async move { next.await.ok_or_else(String::new) }
    })
    .await
}

/// Like [`eventually`], but `check` says what it saw when it is not yet
/// satisfied, and the last of that is in the panic message.
pub async fn eventually_showing<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() > deadline {
            let seen = if seen.is_empty() {
                String::new()
            } else {
                format!("; last seen: {seen}")
            };
            panic!("timed out after {timeout:?} waiting for {what}{seen}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The YAML documents of a file, each as JSON.
pub fn yaml_documents(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_multiple::<serde_json::Value>(&text)
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Creates a namespace if it is not there yet.
pub async fn ensure_namespace(client: &Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    let _ = api.create(&Default::default(), &ns).await;
}

/// A node that kwok runs (it marks it Ready and its pods Running).
pub fn kwok_node(name: &str) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok"},
        },
    }))
    .expect("a Node")
}

/// A dummy-fan DeviceLink on `node` with the given template spec.
pub fn dummy_link(
    namespace: &str,
    name: &str,
    node: &str,
    template: serde_json::Value,
) -> devicelink_api::DeviceLink {
    device_link(
        namespace,
        name,
        node,
        "dummy",
        "DummySpecialDevice",
        template,
    )
}

/// A DeviceLink for adaptor `adaptor` (short name) and model `kind` on
/// `node`, with the given template.
pub fn device_link(
    namespace: &str,
    name: &str,
    node: &str,
    adaptor: &str,
    kind: &str,
    template: serde_json::Value,
) -> devicelink_api::DeviceLink {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "DeviceLink",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "adaptor": {"node": node, "name": format!("adaptors.edge.cattle.io/{adaptor}")},
            "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": kind},
            "template": template
        }
    }))
    .expect("a DeviceLink")
}

/// Creates a DeviceLink and waits until its device is connected.
pub async fn create_connected(
    links: &kube::Api<devicelink_api::DeviceLink>,
    link: &devicelink_api::DeviceLink,
) -> devicelink_api::DeviceLink {
    links
        .create(&Default::default(), link)
        .await
        .expect("create DeviceLink");
    wait_connected(links, &link.metadata.name.clone().unwrap_or_default()).await
}

/// Deletes a DeviceLink and waits until the operator has let it go.
pub async fn delete_link_and_wait(links: &kube::Api<devicelink_api::DeviceLink>, name: &str) {
    delete_links_and_wait(links, &[name]).await
}

/// Deletes DeviceLinks (all at once) and waits until they are all gone.
pub async fn delete_links_and_wait(links: &kube::Api<devicelink_api::DeviceLink>, names: &[&str]) {
    for name in names {
        match links.delete(name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("delete DeviceLink {name}: {e}"),
        }
    }
    for name in names {
        eventually(
            &format!("the DeviceLink {name} to be gone"),
            Duration::from_secs(60),
            || async { links.get_opt(name).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }
}

/// Waits for an Event with `reason` and `type_` about the named object.
pub async fn wait_event(client: &Client, namespace: &str, object: &str, reason: &str, type_: &str) {
    eventually(
        &format!("a {type_} event {reason} on {object}"),
        Duration::from_secs(60),
        || async {
            events_of(client, namespace, object)
                .await
                .iter()
                .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
                .then_some(())
        },
    )
    .await;
}

/// The Events about `object` in `namespace` (none if they cannot be read).
pub async fn events_of(
    client: &Client,
    namespace: &str,
    object: &str,
) -> Vec<k8s_openapi::api::core::v1::Event> {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), namespace);
    let fields = format!("involvedObject.name={object}");
    events
        .list(&kube::api::ListParams::default().fields(&fields))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

/// Waits until the DeviceLink shows the whole pipeline True, NodeExisted
/// through DeviceConnected, and returns it.
pub async fn wait_connected(
    api: &kube::Api<devicelink_api::DeviceLink>,
    name: &str,
) -> devicelink_api::DeviceLink {
    use devicelink_api::condition::ConditionType;
    eventually_showing(
        &format!("{name}: all five conditions True"),
        Duration::from_secs(60),
        || async {
            let link = api.get(name).await.map_err(|e| e.to_string())?;
            let seen: Vec<(&str, &str)> = link
                .conditions()
                .iter()
                .map(|c| (c.type_.as_str(), c.status.as_str()))
                .collect();
            let want: Vec<(&str, &str)> = ConditionType::PIPELINE
                .iter()
                .map(|t| (t.as_str(), "True"))
                .collect();
            if seen == want {
                Ok(link.clone())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await
}

/// Waits until the DeviceLink's condition `type_` has `status`, and returns it.
pub async fn wait_condition(
    api: &kube::Api<devicelink_api::DeviceLink>,
    name: &str,
    type_: &str,
    status: &str,
) -> devicelink_api::DeviceLinkCondition {
    eventually_showing(
        &format!("{name}: {type_} {status}"),
        Duration::from_secs(60),
        || async {
            let link = api.get(name).await.map_err(|e| e.to_string())?;
            match link.conditions().iter().find(|c| c.type_ == type_) {
                Some(c) if c.status == status => Ok(c.clone()),
                _ => Err(format!("{:?}", link.conditions())),
            }
        },
    )
    .await
}

/// Waits until the DeviceLink's condition `type_` has `status` and
/// `reason`, and returns it.
pub async fn wait_reason(
    api: &kube::Api<devicelink_api::DeviceLink>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> devicelink_api::DeviceLinkCondition {
    eventually_showing(
        &format!("{name}: {type_} {status} {reason}"),
        Duration::from_secs(60),
        || async {
            let link = api.get(name).await.map_err(|e| e.to_string())?;
            match link.conditions().iter().find(|c| c.type_ == type_) {
                Some(c) if c.status == status && c.reason == reason => Ok(c.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// A benchmark's `--flag number` arguments: the value given for each of
/// `defaults`' flags, or its default. A flag not listed, or without a
/// number, stops it with a message listing them.
pub fn flags<const N: usize>(defaults: [(&str, u64); N]) -> [u64; N] {
    let mut values = defaults.map(|(_, v)| v);
    let known: Vec<&str> = defaults.iter().map(|(f, _)| *f).collect();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(at) = known.iter().position(|k| *k == flag) else {
            panic!("unknown flag {flag}; use {}", known.join(", "));
        };
        values[at] = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
    }
    values
}

/// How long a benchmark's DeviceLinks took to be created and connected.
pub struct Onboarded {
    /// From the first create until the last create returned.
    pub created: Duration,
    /// From the first create until all were DeviceConnected True.
    pub all_connected: Duration,
    /// Each DeviceLink's own wait, from its creationTimestamp to its
    /// DeviceConnected lastTransitionTime.
    pub connected: Spread,
    /// The operator's part of it: until DeviceCreated (the rest is the
    /// adaptor's).
    pub device_created: Spread,
}

/// The median, the 99th percentile and the slowest of some waits (whole
/// seconds, as the API server keeps times), and how many took longer than
/// two minutes (issue 32's target for DeviceConnected).
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread {
    pub median: u64,
    pub p99: u64,
    pub slowest: u64,
    pub over_two_minutes: usize,
}

impl Spread {
    fn of(mut waits: Vec<u64>) -> Spread {
        waits.sort_unstable();
        let at = |share: f64| {
            let i = ((waits.len() as f64 * share) as usize).min(waits.len().saturating_sub(1));
            waits.get(i).copied().unwrap_or_default()
        };
        Spread {
            median: at(0.5),
            p99: at(0.99),
            slowest: waits.last().copied().unwrap_or_default(),
            over_two_minutes: waits.iter().filter(|w| **w > 120).count(),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {} s, p99 {} s, slowest {} s, {} over 120 s",
            self.median, self.p99, self.slowest, self.over_two_minutes
        )
    }
}

impl std::fmt::Display for Onboarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created in {:.1}s, all DeviceConnected {:.1}s after the first create; \
             each from its own creation: DeviceCreated {}, DeviceConnected {}",
            self.created.as_secs_f64(),
            self.all_connected.as_secs_f64(),
            self.device_created,
            self.connected,
        )
    }
}

/// Creates DeviceLinks, 16 requests in flight, and waits until the
/// operator counts all of them DeviceConnected True (benchmarks: the
/// operator must run with its metrics port). Returns how long it took,
/// overall and for each DeviceLink from its own creation.
pub async fn create_all_connected(
    links: &kube::Api<devicelink_api::DeviceLink>,
    all: Vec<devicelink_api::DeviceLink>,
    operator: &process::Operator,
) -> Onboarded {
    use futures::StreamExt;
    let n = all.len();
    let start = std::time::Instant::now();
    let start_wall = k8s_openapi::jiff::Timestamp::now();
    futures::stream::iter(all)
        .map(|link| async move {
            links
                .create(&Default::default(), &link)
                .await
                .expect("create DeviceLink");
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created = start.elapsed();
    let connected = "devicelink_operator_devicelinks{phase=\"DeviceConnected\",status=\"True\"}";
    let all_connected = loop {
        let seen = operator.metric(connected).await.unwrap_or(0.0) as usize;
        if seen >= n {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "only {seen} of {n} devices connected after 15 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let list = links
        .list(&Default::default())
        .await
        .expect("list DeviceLinks");
    late_ones(&list.items, start_wall);
    let waits = |stage: &str| {
        Spread::of(
            list.items
                .iter()
                .filter_map(|link| became_true_after_creation(link, stage))
                .collect(),
        )
    };
    Onboarded {
        created,
        all_connected,
        connected: waits("DeviceConnected"),
        device_created: waits("DeviceCreated"),
    }
}

/// Says when the DeviceLinks that took over two minutes to connect were
/// created, counted from the first create: whether they were the first
/// (waiting for the adaptor to start) or came in a crowd.
fn late_ones(links: &[devicelink_api::DeviceLink], start: k8s_openapi::jiff::Timestamp) {
    let mut created: Vec<i64> = links
        .iter()
        .filter(|l| became_true_after_creation(l, "DeviceConnected").is_none_or(|w| w > 120))
        .filter_map(|l| l.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.as_second() - start.as_second())
        .collect();
    created.sort_unstable();
    if let (Some(first), Some(last)) = (created.first(), created.last()) {
        eprintln!(
            "{} DeviceLinks took over 120 s to connect; created {first} s to {last} s after the first create",
            created.len()
        );
    }
}

/// Seconds from a DeviceLink's creation until condition `stage` last
/// became True, if it is.
fn became_true_after_creation(link: &devicelink_api::DeviceLink, stage: &str) -> Option<u64> {
    let created = link.metadata.creation_timestamp.as_ref()?.0;
    let at = link
        .conditions()
        .iter()
        .find(|c| c.type_ == stage && c.status == "True")?
        .last_transition_time
        .as_ref()?
        .0;
    Some((at.as_second() - created.as_second()).max(0) as u64)
}

/// A property's field in a device's status JSON (`properties[]` by name),
/// as on MQTT or in `status`.
pub fn property_field<'a>(
    status: &'a serde_json::Value,
    property: &str,
    field: &str,
) -> Option<&'a str> {
    status["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == property)?[field]
        .as_str()
}

/// Waits until the device's status (any model) shows `want` for `property`.
pub async fn wait_property<K>(devices: &kube::Api<K>, name: &str, property: &str, want: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    wait_property_field(devices, name, property, "value", want).await
}

/// Waits until `field` of the status of property `property` of device
/// `name` is `want` (`value` as read, `operatedValue` after arithmetic).
pub async fn wait_property_field<K>(
    devices: &kube::Api<K>,
    name: &str,
    property: &str,
    field: &str,
    want: &str,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    eventually_showing(
        &format!("{name}.{property}.{field} = {want}"),
        Duration::from_secs(60),
        || async {
            let d = devices.get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(&d).unwrap()["status"].clone();
            let value = property_field(&status, property, field);
            (value == Some(want))
                .then_some(())
                .ok_or(format!("{value:?}"))
        },
    )
    .await
}

/// Runs openssl in `dir` (certificates for the tests); fails the test with
/// openssl's own words when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed by make test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
