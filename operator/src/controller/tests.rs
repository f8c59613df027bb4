//! Reconciles against a mocked API server: each scenario fills the caches
//! as the watches would, runs `reconcile`, and answers the requests it
//! makes one by one, checking each (method, path, what it sends). A request
//! the scenario does not expect, or one it expects that never comes, fails
//! the test. No control plane; `cargo test -p devicelink-operator` runs
//! them in well under a second.

use std::time::Duration;

use clap::Parser;
use devicelink_api::{adaptor, labels};
use http::{Request, Response, StatusCode};
use kube::{
    client::Body,
    core::ApiResource,
    runtime::{reflector::store::Writer, watcher},
};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;
use crate::{adaptor_pod, device_watch::DeviceMeta};

type ApiServer = Handle<Request<Body>, Response<Body>>;

const NODE: &str = "edge-1";
const NAMESPACE: &str = "plant";
const NAME: &str = "meter";
const LINK_PATH: &str = "/apis/edge.cattle.io/v1alpha1/namespaces/plant/devicelinks/meter";
const DEVICE_PATH: &str =
    "/apis/devices.edge.cattle.io/v1alpha1/namespaces/plant/modbusdevices/meter";

/// The caches' writers, to put objects where the watches would.
struct Caches {
    links: Writer<DeviceLink>,
    nodes: Writer<Node>,
    crds: Writer<CustomResourceDefinition>,
    pods: Writer<Pod>,
    roles: Writer<PartialObjectMeta<Role>>,
    devices: Writer<DeviceMeta>,
}

fn modbus_model() -> ApiResource {
    crate::device_watch::shipped_models()
        .into_iter()
        .find(|m| m.kind == "ModbusDevice")
        .unwrap()
}

fn fixture() -> (Arc<Context>, ApiServer, Caches) {
    fixture_with(&[])
}

/// The fixture with an operator started with `flags`.
fn fixture_with(flags: &[&str]) -> (Arc<Context>, ApiServer, Caches) {
    let (service, server) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let config = Config::parse_from(std::iter::once(&"devicelink-operator").chain(flags));
    let (links, links_writer) = reflector::store::<DeviceLink>();
    let (nodes, nodes_writer) = reflector::store();
    let (crds, crds_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let (roles, roles_writer) = reflector::store();
    let model = modbus_model();
    let devices_writer = Writer::<DeviceMeta>::new(model.clone());
    let mut devices = crate::device_watch::DeviceCaches::default();
    devices.insert(&model, devices_writer.as_reader());
    let (events, recorder) = Events::new(client.clone(), MANAGER, "test");
    tokio::spawn(recorder.run());
    let ctx = Context {
        events,
        metrics: Metrics::new(links.clone()),
        devices,
        broker: crate::broker::BrokerAccess::default(),
        applied: Mutex::default(),
        granted_to: Mutex::default(),
        scan_granted_to: Mutex::default(),
        written_over: Mutex::default(),
        client,
        config,
        links,
        nodes,
        crds,
        pods,
        discoveries: reflector::store().0,
        discoveries_filled: std::sync::atomic::AtomicBool::new(true),
        roles,
        caches_filled: std::sync::atomic::AtomicBool::new(true),
    };
    let caches = Caches {
        links: links_writer,
        nodes: nodes_writer,
        crds: crds_writer,
        pods: pods_writer,
        roles: roles_writer,
        devices: devices_writer,
    };
    (Arc::new(ctx), server, caches)
}

fn cache<K>(writer: &mut Writer<K>, object: K)
where
    K: kube::Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Apply(object));
}

/// A node, the model's CRD and a ready adaptor pod: everything a DeviceLink
/// needs before its device.
fn world(ctx: &Context, caches: &mut Caches) {
    cache(
        &mut caches.nodes,
        serde_json::from_value(json!({"metadata": {"name": NODE},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap(),
    );
    let mut crd = devicelink_api::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "ModbusDevice")
        .unwrap();
    crd.status = Some(
        serde_json::from_value(json!({"conditions": [{"type": "Established", "status": "True"}]}))
            .unwrap(),
    );
    cache(&mut caches.crds, crd);
    let mut pod = adaptor_pod::desired(&ctx.config, adaptor::find_short("modbus").unwrap(), NODE);
    pod.status = Some(
        serde_json::from_value(json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}))
        .unwrap(),
    );
    cache(&mut caches.pods, pod);
}

fn link(finalized: bool) -> DeviceLink {
    let mut link: DeviceLink = serde_json::from_value(json!({
        "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "link-uid",
                     "resourceVersion": "10", "generation": 1},
        "spec": {
            "adaptor": {"node": NODE, "name": "adaptors.edge.cattle.io/modbus"},
            "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice"},
            "template": {"spec": {
                "protocol": {"tcp": {"endpoint": "10.0.0.9:502", "workerID": 1}},
                "properties": [{"name": "temperature", "type": "uint16", "readOnly": true,
                    "visitor": {"register": "InputRegister", "offset": 0}}],
            }},
        },
    }))
    .unwrap();
    if finalized {
        link.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    }
    link
}

/// The next request: checks its method and path, answers `status` with
/// what `body` makes of what was sent, and returns what was sent.
async fn answer(
    server: &mut ApiServer,
    method: &str,
    path: &str,
    status: u16,
    body: impl FnOnce(&Value) -> Value,
) -> Value {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .unwrap_or_else(|_| panic!("no {method} {path} within 5 s"))
        .expect("the client is alive");
    assert_eq!(
        (request.method().as_str(), request.uri().path()),
        (method, path),
        "the request made"
    );
    let sent = request.into_body().collect_bytes().await.unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap_or(Value::Null);
    respond.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .body(Body::from(serde_json::to_vec(&body(&sent)).unwrap()))
            .unwrap(),
    );
    sent
}

/// The DeviceLink's status written (replaced), stored as `resource_version`;
/// what was sent.
async fn status_written(server: &mut ApiServer, resource_version: &str) -> Value {
    let path = format!("{LINK_PATH}/status");
    answer(server, "PUT", &path, 200, |sent| {
        stored(sent.clone(), resource_version)
    })
    .await
}

/// One Event recorded about the DeviceLink; what was sent.
async fn event_recorded(server: &mut ApiServer) -> Value {
    let path = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
    answer(server, "POST", &path, 201, |_| json!({})).await
}

/// No request comes while the reconcile finishes.
async fn silence(server: &mut ApiServer) {
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), server.next_request()).await
    {
        panic!(
            "unexpected request: {} {}",
            request.method(),
            request.uri().path()
        );
    }
}

fn run(link: &DeviceLink, ctx: &Arc<Context>) -> tokio::task::JoinHandle<Result<Action>> {
    tokio::spawn(reconcile(Arc::new(link.clone()), ctx.clone()))
}

/// The object the API server returns for `sent`, at `resource_version`.
fn stored(mut sent: Value, resource_version: &str) -> Value {
    sent["metadata"]["resourceVersion"] = json!(resource_version);
    sent
}

/// A condition as `conditions` lists it: (type, status, reason).
fn stage(type_: &str, status: &str, reason: &str) -> (String, String, String) {
    (type_.to_string(), status.to_string(), reason.to_string())
}

fn conditions(status: &Value) -> Vec<(String, String, String)> {
    status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_devicelink_gets_the_finalizer_and_goes_on_in_the_same_reconcile() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let new = link(false);
    let task = run(&new, &ctx);
    let sent = answer(&mut server, "PATCH", LINK_PATH, 200, |_| {
        let mut patched = serde_json::to_value(link(true)).unwrap();
        patched["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        stored(patched, "11")
    })
    .await;
    assert_eq!(sent["metadata"]["finalizers"], json!([FINALIZER]), "{sent}");
    answer(&mut server, "PATCH", DEVICE_PATH, 200, |sent| sent.clone()).await;
    // Written over the patched version, not the one the reconcile began
    // with (that would conflict), and without the managed fields the
    // patch's answer carried.
    let status = status_written(&mut server, "12").await;
    assert_eq!(status["metadata"]["resourceVersion"], "11", "{status}");
    assert_eq!(status["metadata"]["finalizers"], json!([FINALIZER]));
    assert!(status["metadata"]["managedFields"].is_null(), "{status}");
    event_recorded(&mut server).await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();

    // Woken again (by its device's watch event, say) before the cache has
    // seen either write, and then with the first: both are stale, and
    // neither asks for anything (a finalizer patched again on the old
    // version would conflict).
    for (finalized, version) in [(false, "10"), (true, "11")] {
        let stale = stored(serde_json::to_value(link(finalized)).unwrap(), version);
        let stale: DeviceLink = serde_json::from_value(stale).unwrap();
        let task = run(&stale, &ctx);
        silence(&mut server).await;
        assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    }
}

/// The applied device as its watch shows it at `generation`.
fn device_as_watched(generation: i64, labels: &Value) -> DeviceMeta {
    serde_json::from_value(json!({
        "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid",
                     "generation": generation, "resourceVersion": format!("2{generation}"),
                     "labels": labels},
    }))
    .unwrap()
}

#[tokio::test]
async fn the_pipeline_creates_the_device_writes_the_status_once_and_then_rests() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let link = link(true);
    let task = run(&link, &ctx);

    // DeviceCreated: the device applied server-side from the template.
    let device = answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| {
        json!({
            "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid",
                         "generation": 1, "resourceVersion": "20"},
            "spec": {},
        })
    })
    .await;
    assert_eq!(device["kind"], "ModbusDevice");
    assert_eq!(
        device["spec"]["protocol"]["tcp"]["endpoint"],
        "10.0.0.9:502"
    );
    assert_eq!(device["metadata"]["labels"][labels::NODE], NODE);
    assert_eq!(device["metadata"]["ownerReferences"][0]["uid"], "link-uid");

    // The status: every stage True, written once, with the node's address.
    let status = status_written(&mut server, "11").await;
    let written = stored(status.clone(), "11");
    assert_eq!(
        conditions(&status),
        [
            ("NodeExisted", "True", "Found"),
            ("ModelExisted", "True", "Found"),
            ("AdaptorExisted", "True", "Found"),
            ("DeviceCreated", "True", "Success"),
            ("DeviceConnected", "Unknown", "Connecting"),
        ]
        .map(|(t, s, r)| stage(t, s, r))
        .to_vec(),
        "{status}"
    );
    assert_eq!(status["status"]["nodeInternalIP"], "10.0.0.7");
    // One Event for the transitions.
    let event = event_recorded(&mut server).await;
    assert_eq!(event["regarding"]["name"], NAME);
    silence(&mut server).await;
    task.await.unwrap().unwrap();

    // At rest: the watches bring back the DeviceLink as written and the
    // device as applied; reconciling again makes no request at all.
    cache(
        &mut caches.devices,
        device_as_watched(1, &device["metadata"]["labels"]),
    );
    let at_rest: DeviceLink = serde_json::from_value(written).unwrap();
    let task = run(&at_rest, &ctx);
    silence(&mut server).await;
    task.await.unwrap().unwrap();

    // A device edited by hand (a new generation): applied again, once; the
    // status stays as it was, so nothing else is written.
    cache(
        &mut caches.devices,
        device_as_watched(2, &device["metadata"]["labels"]),
    );
    let task = run(&at_rest, &ctx);
    answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| {
        json!({
            "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid",
                         "generation": 3, "resourceVersion": "22"},
        })
    })
    .await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_conflict_on_the_status_write_is_retried_soon_and_loses_nothing() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let link = link(true);
    let task = run(&link, &ctx);
    answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| json!({
        "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid", "generation": 1},
    }))
    .await;
    // The adaptor wrote DeviceConnected meanwhile: our replace conflicts.
    answer(
        &mut server,
        "PUT",
        &format!("{LINK_PATH}/status"),
        409,
        |_| {
            json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
                "message": "the object has been modified", "code": 409,
            })
        },
    )
    .await;
    silence(&mut server).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(error.is_conflict(), "{error}");
    assert_eq!(
        error_policy(Arc::new(link), &error, ctx),
        Action::requeue(Duration::from_millis(500)),
        "run again soon, on fresh data"
    );
}

#[tokio::test]
async fn a_missing_node_stops_the_pipeline_and_says_so() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    caches.nodes.apply_watcher_event(&watcher::Event::Delete(
        serde_json::from_value(json!({"metadata": {"name": NODE}})).unwrap(),
    ));
    let task = run(&link(true), &ctx);
    let status = status_written(&mut server, "11").await;
    assert_eq!(
        conditions(&status),
        [stage("NodeExisted", "False", "NotFound"),].to_vec(),
        "{status}"
    );
    let event = event_recorded(&mut server).await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "NotFound");
    silence(&mut server).await;
    // No device was touched; looked at again in a while.
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(FAILED_CHECK));
}

#[tokio::test]
async fn without_an_adaptor_pod_its_identity_and_pod_are_made_and_the_device_waits() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let pod = adaptor_pod::desired(&ctx.config, adaptor::find_short("modbus").unwrap(), NODE);
    caches
        .pods
        .apply_watcher_event(&watcher::Event::Delete(pod.clone()));
    let task = run(&link(true), &ctx);
    let name = pod.name_any();
    let account = answer(
        &mut server,
        "PATCH",
        &format!("/api/v1/namespaces/devicelink-system/serviceaccounts/{name}"),
        200,
        |_| json!({"metadata": {"name": name}}),
    )
    .await;
    assert_eq!(account["kind"], "ServiceAccount");
    let binding = answer(
        &mut server,
        "PATCH",
        &format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"),
        200,
        |_| json!({"metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devicelink-adaptor-modbus"}}),
    )
    .await;
    assert_eq!(binding["roleRef"]["name"], "devicelink-adaptor-modbus");
    let created = answer(
        &mut server,
        "PATCH",
        &format!("/api/v1/namespaces/devicelink-system/pods/{name}"),
        200,
        |_| json!({"metadata": {"name": name}, "spec": {"containers": []}}),
    )
    .await;
    assert_eq!(created["spec"]["serviceAccountName"], name);
    let status = status_written(&mut server, "11").await;
    assert_eq!(
        conditions(&status)[2],
        stage("AdaptorExisted", "Unknown", "Confirming"),
        "{status}"
    );
    assert_eq!(conditions(&status).len(), 3, "the device waits for the pod");
    event_recorded(&mut server).await;
    silence(&mut server).await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(ON_ITS_WAY_CHECK)
    );
}

#[test]
fn a_condition_type_not_ours_is_not_taken_for_a_stage() {
    assert_eq!(parse_type("Ready"), None);
    assert_eq!(parse_type(""), None);
    for stage in ConditionType::PIPELINE {
        assert_eq!(parse_type(stage.as_str()), Some(stage));
    }
}

/// The DeviceLink being deleted.
fn deleting() -> DeviceLink {
    let mut link = link(true);
    link.metadata.deletion_timestamp = Some(condition::now());
    link
}

/// The device as its cache shows it; `deleted_ago` puts it in deletion
/// that long ago, with the adaptor's finalizer on it.
fn cached_device(caches: &mut Caches, deleted_ago: Option<Duration>) {
    let mut device = json!({
        "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid",
                     "generation": 1, "resourceVersion": "20"},
    });
    if let Some(ago) = deleted_ago {
        let at = k8s_openapi::jiff::Timestamp::now() - ago;
        device["metadata"]["deletionTimestamp"] = json!(
            at.round(k8s_openapi::jiff::Unit::Second)
                .unwrap()
                .to_string()
        );
        device["metadata"]["finalizers"] = json!([finalizer::DEVICE_FINALIZER]);
    }
    cache(&mut caches.devices, serde_json::from_value(device).unwrap());
}

/// The operator removes the device's finalizer itself, and nothing more.
async fn expect_device_released(server: &mut ApiServer) {
    let patch = answer(server, "PATCH", DEVICE_PATH, 200, |_| {
        json!({"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
               "metadata": {"name": NAME, "namespace": NAMESPACE}})
    })
    .await;
    assert_eq!(patch["metadata"]["finalizers"], json!([]), "{patch}");
    silence(server).await;
}

#[tokio::test]
async fn deleting_a_devicelink_deletes_its_device_first_and_waits() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    cached_device(&mut caches, None);
    let task = run(&deleting(), &ctx);
    answer(&mut server, "DELETE", DEVICE_PATH, 200, |_| json!({})).await;
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RELEASE_CHECK));
}

#[tokio::test]
async fn a_live_adaptor_gets_the_grace_to_release_the_device_and_then_no_more() {
    // Within the grace: the ready adaptor releases it; the operator waits.
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    cached_device(&mut caches, Some(Duration::from_secs(1)));
    let task = run(&deleting(), &ctx);
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RELEASE_CHECK));

    // Past the grace (30 s by default): the operator removes the finalizer.
    cached_device(&mut caches, Some(Duration::from_secs(60)));
    let task = run(&deleting(), &ctx);
    expect_device_released(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_ready_adaptor_the_device_is_released_at_once() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let pod = adaptor_pod::desired(&ctx.config, adaptor::find_short("modbus").unwrap(), NODE);
    caches
        .pods
        .apply_watcher_event(&watcher::Event::Delete(pod));
    cached_device(&mut caches, Some(Duration::from_secs(1)));
    let task = run(&deleting(), &ctx);
    expect_device_released(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn once_the_device_is_gone_the_unneeded_adaptor_goes_and_then_the_finalizer() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let name = adaptor_pod::pod_name(adaptor::find_short("modbus").unwrap(), NODE);
    let task = run(&deleting(), &ctx);
    for path in [
        format!("/api/v1/namespaces/devicelink-system/pods/{name}"),
        format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"),
        format!("/api/v1/namespaces/devicelink-system/serviceaccounts/{name}"),
    ] {
        answer(&mut server, "DELETE", &path, 200, |_| json!({})).await;
    }
    let patch = answer(&mut server, "PATCH", LINK_PATH, 200, |_| {
        serde_json::to_value(deleting()).unwrap()
    })
    .await;
    assert_eq!(patch["metadata"]["finalizers"], json!([]), "{patch}");
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

/// A DeviceLink whose MQTT password comes from item `password` of the
/// Secret plant-mqtt.
fn referencing() -> DeviceLink {
    let mut value = serde_json::to_value(link(true)).unwrap();
    value["spec"]["references"] = json!([{"name": "broker", "secret": {"name": "plant-mqtt"}}]);
    value["spec"]["template"]["spec"]["extension"] = json!({"mqtt": {
        "client": {"server": "tcp://broker:1883",
                   "basicAuth": {"username": "plant", "passwordRef": {"name": "broker", "item": "password"}}},
        "message": {"topic": "plant/:name"},
    }});
    serde_json::from_value(value).unwrap()
}

/// Answers the GET of the Secret plant-mqtt: there is none.
async fn plant_mqtt_missing(server: &mut ApiServer) {
    answer(
        server,
        "GET",
        "/api/v1/namespaces/plant/secrets/plant-mqtt",
        404,
        |_| {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "secrets \"plant-mqtt\" not found"})
        },
    )
    .await;
}

/// Answers the apply of grant `name` in plant (its Role, then its
/// RoleBinding) with what was sent, and returns both.
async fn grant_applied(server: &mut ApiServer, name: &str) -> (Value, Value) {
    let path =
        |kind: &str| format!("/apis/rbac.authorization.k8s.io/v1/namespaces/plant/{kind}/{name}");
    let role = answer(server, "PATCH", &path("roles"), 200, |sent| sent.clone()).await;
    let binding = answer(server, "PATCH", &path("rolebindings"), 200, |sent| {
        sent.clone()
    })
    .await;
    (role, binding)
}

#[tokio::test]
async fn references_grant_the_adaptor_exactly_their_secret_and_must_resolve() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let grant = adaptor_pod::pod_name(adaptor::find_short("modbus").unwrap(), NODE);
    // The grant is made from the DeviceLinks in the cache.
    cache(&mut caches.links, referencing());
    let task = run(&referencing(), &ctx);

    // The adaptor pod may read plant-mqtt, and nothing else, in plant.
    let (role, binding) = grant_applied(&mut server, &grant).await;
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["plant-mqtt"],
                "verbs": ["get", "list", "watch"]}])
    );
    assert_eq!(binding["subjects"][0]["name"], grant);

    // The Secret lacks the item the password names: DeviceCreated says
    // which item, of which reference, and what the Secret has.
    answer(
        &mut server,
        "GET",
        "/api/v1/namespaces/plant/secrets/plant-mqtt",
        200,
        |_| {
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "plant-mqtt", "namespace": NAMESPACE},
                   "data": {"pass": "c2VjcmV0"}})
        },
    )
    .await;
    let status = status_written(&mut server, "11").await;
    let created = &status["status"]["conditions"][3];
    assert_eq!(
        (
            created["type"].as_str(),
            created["status"].as_str(),
            created["reason"].as_str()
        ),
        (
            Some("DeviceCreated"),
            Some("False"),
            Some("ReferenceNotFound")
        ),
        "{status}"
    );
    assert_eq!(
        created["message"],
        "spec.template.spec.extension.mqtt.client.basicAuth.passwordRef uses item \"password\" of reference \"broker\", but secret \"plant-mqtt\" has no such item; it has: pass"
    );
    event_recorded(&mut server).await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();

    // The Secret gone altogether: named with its field, and the DeviceLink
    // proceeds once it exists. The grant Role is back from its watch, as
    // made: no write.
    cache(
        &mut caches.roles,
        serde_json::from_value(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": role["metadata"].clone()}),
        )
        .unwrap(),
    );
    // (As the API server stored it; the version it was written over would
    // be a stale cache, which waits for the watch instead.)
    let written: DeviceLink = serde_json::from_value(stored(status, "11")).unwrap();
    let task = run(&written, &ctx);
    plant_mqtt_missing(&mut server).await;
    let status = status_written(&mut server, "12").await;
    assert_eq!(
        status["status"]["conditions"][3]["message"],
        "secret \"plant-mqtt\" (spec.references[0].secret.name) does not exist in namespace \"plant\"; the DeviceLink proceeds as soon as it does"
    );
    // The same reason as before: no new Event.
    silence(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_console_is_granted_only_what_the_mqtt_extensions_reference() {
    let (ctx, mut server, mut caches) = fixture_with(&["--grant-console"]);
    world(&ctx, &mut caches);
    let adaptor_grant = adaptor_pod::pod_name(adaptor::find_short("modbus").unwrap(), NODE);
    // A second reference the MQTT extension does not use: the adaptor reads
    // it, the console has no business with it.
    let mut value = serde_json::to_value(referencing()).unwrap();
    value["spec"]["references"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "site", "configMap": {"name": "plant-site"}}));
    let link: DeviceLink = serde_json::from_value(value).unwrap();
    cache(&mut caches.links, link.clone());
    let task = run(&link, &ctx);

    let (adaptor_role, _) = grant_applied(&mut server, &adaptor_grant).await;
    assert_eq!(
        adaptor_role["rules"].as_array().unwrap().len(),
        2,
        "the adaptor reads the Secret and the ConfigMap: {adaptor_role}"
    );
    let (console_role, console_binding) = grant_applied(&mut server, "devicelink-console").await;
    assert_eq!(
        console_role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["plant-mqtt"],
                "verbs": ["get", "list", "watch"]}])
    );
    assert_eq!(
        console_binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "devicelink-console", "namespace": "devicelink-system"}])
    );
    assert_eq!(console_binding["roleRef"]["name"], "devicelink-console");
    // The references are checked as always; the rest is another scenario's.
    plant_mqtt_missing(&mut server).await;
    let status = status_written(&mut server, "11").await;
    event_recorded(&mut server).await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();

    // The MQTT extension no longer uses the Secret: the console's grant is
    // revoked, the adaptor's stays as it was (its Role is in the cache).
    for made in [&adaptor_role, &console_role] {
        cache(
            &mut caches.roles,
            serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role", "metadata": made["metadata"].clone()}))
            .unwrap(),
        );
    }
    let mut value = stored(status, "11");
    value["spec"]["template"]["spec"]["extension"]["mqtt"]["client"]["basicAuth"] =
        json!({"username": "plant", "password": "inline"});
    let inline: DeviceLink = serde_json::from_value(value).unwrap();
    cache(&mut caches.links, inline.clone());
    let task = run(&inline, &ctx);
    let grant = |kind: &str| {
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/plant/{kind}/devicelink-console")
    };
    answer(&mut server, "DELETE", &grant("rolebindings"), 200, |_| {
        json!({})
    })
    .await;
    answer(&mut server, "DELETE", &grant("roles"), 200, |_| json!({})).await;
    plant_mqtt_missing(&mut server).await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_adaptor_pod_that_is_not_ready_says_why_and_the_device_waits() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let mut pod = adaptor_pod::desired(&ctx.config, adaptor::find_short("modbus").unwrap(), NODE);
    pod.status = Some(
        serde_json::from_value(json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "adaptor", "image": "x", "imageID": "", "ready": false,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s restarting failed container"}}}]}))
        .unwrap(),
    );
    cache(&mut caches.pods, pod);
    let task = run(&link(true), &ctx);
    let status = status_written(&mut server, "11").await;
    let adaptor = &status["status"]["conditions"][2];
    assert_eq!(
        (adaptor["status"].as_str(), adaptor["reason"].as_str()),
        (Some("False"), Some("NotReady")),
        "{status}"
    );
    assert_eq!(
        adaptor["message"],
        "adaptor pod devicelink-system/devicelink-adaptor-modbus-edge-1 is not ready: CrashLoopBackOff: back-off 40s restarting failed container"
    );
    assert_eq!(
        status["status"]["conditions"].as_array().unwrap().len(),
        3,
        "no device while its adaptor cannot run"
    );
    event_recorded(&mut server).await;
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(FAILED_CHECK));
}

/// The Modbus device as the API server answers its apply.
fn device_applied(resource_version: &str) -> Value {
    json!({
        "apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "ModbusDevice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "device-uid",
                     "generation": 1, "resourceVersion": resource_version},
    })
}

#[tokio::test]
async fn a_node_that_is_not_ready_is_shown_as_a_warning_and_the_rest_is_made_ready_for_it() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    cache(
        &mut caches.nodes,
        serde_json::from_value(json!({"metadata": {"name": NODE},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown",
                "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]}}))
        .unwrap(),
    );
    let task = run(&link(true), &ctx);
    // The device is applied all the same: it is there when the node is back.
    answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| {
        device_applied("20")
    })
    .await;
    let status = status_written(&mut server, "11").await;
    assert_eq!(
        conditions(&status)[0],
        stage("NodeExisted", "True", "NotReady"),
        "{status}"
    );
    assert_eq!(
        status["status"]["conditions"][0]["message"],
        "node \"edge-1\" exists but is not Ready (Ready is Unknown: NodeStatusUnknown: Kubelet stopped posting node status.); its adaptor runs there once it is"
    );
    let event = event_recorded(&mut server).await;
    assert_eq!(event["type"], "Warning", "{event}");
    silence(&mut server).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_pending_adaptor_pod_is_waited_for_and_an_image_it_cannot_pull_is_named() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let mut pod = adaptor_pod::desired(&ctx.config, adaptor::find_short("modbus").unwrap(), NODE);
    let pending = |waiting: Value| -> k8s_openapi::api::core::v1::PodStatus {
        serde_json::from_value(json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "adaptor", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": waiting}}]}))
        .unwrap()
    };
    pod.status = Some(pending(json!({"reason": "ContainerCreating"})));
    cache(&mut caches.pods, pod.clone());
    let task = run(&link(true), &ctx);
    let status = status_written(&mut server, "11").await;
    assert_eq!(
        conditions(&status)[2..],
        [stage("AdaptorExisted", "Unknown", "Confirming")],
        "on its way, and no device yet: {status}"
    );
    event_recorded(&mut server).await;
    silence(&mut server).await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(ON_ITS_WAY_CHECK)
    );

    // The kubelet cannot pull the image: that is not on its way any more.
    pod.status = Some(pending(json!({"reason": "ImagePullBackOff",
        "message": "Back-off pulling image \"devicelink/adaptor:0.9\""})));
    cache(&mut caches.pods, pod);
    let written: DeviceLink = serde_json::from_value(stored(status, "11")).unwrap();
    let task = run(&written, &ctx);
    let status = status_written(&mut server, "12").await;
    assert_eq!(
        status["status"]["conditions"][2]["message"],
        "adaptor pod devicelink-system/devicelink-adaptor-modbus-edge-1 is not ready: ImagePullBackOff: Back-off pulling image \"devicelink/adaptor:0.9\""
    );
    let event = event_recorded(&mut server).await;
    assert_eq!(event["type"], "Warning");
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(FAILED_CHECK));
}

/// Runs the whole pipeline once (device applied, status and Event
/// written) and returns the DeviceLink as stored, with its device cached
/// as its watch would show it.
async fn settled(ctx: &Arc<Context>, server: &mut ApiServer, caches: &mut Caches) -> DeviceLink {
    let task = run(&link(true), ctx);
    let device = answer(server, "PATCH", DEVICE_PATH, 200, |_| device_applied("20")).await;
    let status = status_written(server, "11").await;
    event_recorded(server).await;
    task.await.unwrap().unwrap();
    cache(
        &mut caches.devices,
        device_as_watched(1, &device["metadata"]["labels"]),
    );
    serde_json::from_value(stored(status, "11")).unwrap()
}

#[tokio::test]
async fn a_device_deleted_by_hand_is_made_again_and_nothing_else_changes() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let at_rest = settled(&ctx, &mut server, &mut caches).await;
    let device = ctx
        .devices
        .get(&modbus_model(), NAMESPACE, NAME)
        .expect("cached");
    caches
        .devices
        .apply_watcher_event(&watcher::Event::Delete((*device).clone()));

    let task = run(&at_rest, &ctx);
    let again = answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| {
        device_applied("30")
    })
    .await;
    assert_eq!(
        again["spec"]["protocol"]["tcp"]["endpoint"], "10.0.0.9:502",
        "from the template"
    );
    // DeviceCreated was True and is True again: no status write, no Event.
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_device_being_deleted_while_its_devicelink_lives_is_released_and_made_again() {
    let (ctx, mut server, mut caches) = fixture();
    world(&ctx, &mut caches);
    let at_rest = settled(&ctx, &mut server, &mut caches).await;

    // Deleted by hand a moment ago: the ready adaptor has its grace to
    // release it; DeviceCreated says the device comes back once gone.
    cached_device(&mut caches, Some(Duration::from_secs(1)));
    let task = run(&at_rest, &ctx);
    let status = status_written(&mut server, "12").await;
    let created = &status["status"]["conditions"][3];
    assert_eq!(
        (created["status"].as_str(), created["reason"].as_str()),
        (Some("Unknown"), Some("Creating")),
        "{status}"
    );
    assert_eq!(
        created["message"],
        "ModbusDevice plant/meter is being deleted; it is created again once gone"
    );
    event_recorded(&mut server).await;
    silence(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RELEASE_CHECK));

    // Past the grace the operator releases it itself.
    cached_device(&mut caches, Some(Duration::from_secs(60)));
    let written: DeviceLink = serde_json::from_value(stored(status, "12")).unwrap();
    let task = run(&written, &ctx);
    expect_device_released(&mut server).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(RELEASE_CHECK));

    // Gone: made again from the template, DeviceCreated True again.
    let device = ctx
        .devices
        .get(&modbus_model(), NAMESPACE, NAME)
        .expect("cached");
    caches
        .devices
        .apply_watcher_event(&watcher::Event::Delete((*device).clone()));
    let task = run(&written, &ctx);
    answer(&mut server, "PATCH", DEVICE_PATH, 200, |_| {
        device_applied("40")
    })
    .await;
    let status = status_written(&mut server, "13").await;
    assert_eq!(
        conditions(&status)[3],
        stage("DeviceCreated", "True", "Success")
    );
    event_recorded(&mut server).await;
    silence(&mut server).await;
    task.await.unwrap().unwrap();
}
