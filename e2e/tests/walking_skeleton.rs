//! The thinnest complete path, on real parts: a dummy DeviceLink applied to
//! a real API server is reconciled by the operator, its adaptor pod is run,
//! and the device's status reaches a real mosquitto.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, SYSTEM_NAMESPACE, apply, client, ensure_namespace, eventually, exclusive,
    mqtt::Subscriber, process::start_operator, wait_connected,
};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Applies the shipped example into `namespace`, pointing it at `broker`.
async fn apply_example(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    broker: &str,
) -> DeviceLink {
    let text = std::fs::read_to_string(
        devicelink_e2e::repo_root().join("deploy/examples/dummy-special-device.yaml"),
    )
    .expect("read example");
    let mut link: DeviceLink = serde_saphyr::from_str(&text).expect("example is a DeviceLink");
    link.metadata.name = Some(name.into());
    link.metadata.namespace = Some(namespace.into());
    link.spec.adaptor.node = node.into();
    link.spec.template.spec.as_mut().unwrap()["extension"]["mqtt"]["client"]["server"] =
        json!(broker);
    let api: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    apply(&api, &link).await
}

fn conditions(link: &DeviceLink) -> Vec<(String, String, String)> {
    link.conditions()
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn kubectl(args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl on PATH (make test sets it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real parts one scenario runs against; all stop when it is dropped.
struct Scenario {
    _guard: tokio::sync::MutexGuard<'static, ()>,
    client: Client,
    broker: Broker,
    operator: devicelink_e2e::process::Operator,
    kubelet: LocalKubelet,
}

impl Scenario {
    async fn start(namespace: &str) -> Scenario {
        let guard = exclusive().await;
        let client = client().await;
        ensure_namespace(&client, namespace).await;
        Scenario {
            _guard: guard,
            broker: Broker::start().await,
            operator: start_operator(),
            kubelet: LocalKubelet::start(client.clone()),
            client,
        }
    }
}

#[tokio::test]
async fn dummy_device_flows_from_devicelink_to_mqtt_and_away() {
    let namespace = "default";
    let Scenario {
        _guard,
        client,
        broker,
        operator,
        kubelet,
    } = Scenario::start(namespace).await;
    let mut subscriber =
        Subscriber::start(broker.port, &format!("cattle.io/octopus/{namespace}/#")).await;

    let name = "living-room-fan";
    apply_example(&client, namespace, name, "edge-worker", &broker.url()).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);

    // The operator must have created the adaptor pod: the local kubelet only
    // runs what exists in the API server. The scheduler binds it a moment
    // after it exists; wait for that before asking where.
    let pod_name = "devicelink-adaptor-dummy-edge-worker";
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let pod = eventually("the adaptor pod, created and scheduled", WAIT, || async {
        pods.get_opt(pod_name)
            .await
            .ok()?
            .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
    })
    .await;
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("edge-worker"),
        "scheduled onto the DeviceLink's node"
    );
    eventually("the adaptor pod to be started", WAIT, || async {
        kubelet
            .started()
            .contains(&pod_name.to_string())
            .then_some(())
    })
    .await;

    let link = wait_connected(&links, name).await;
    let status = link.status.clone().unwrap();
    assert_eq!(status.node_name, "edge-worker");
    assert_eq!(status.adaptor_name, "adaptors.edge.cattle.io/dummy");

    let table = kubectl(&["get", "dl", name, "-n", namespace]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "KIND", "NODE", "ADAPTOR", "PHASE", "STATUS", "AGE"],
        "{table}"
    );
    let row = table.lines().nth(1).unwrap();
    for expected in [
        "DummySpecialDevice",
        "edge-worker",
        "adaptors.edge.cattle.io/dummy",
        "DeviceConnected",
        "Healthy",
    ] {
        assert!(row.contains(expected), "{expected} missing from: {row}");
    }

    // The status JSON arrives on the rendered topic, and the fan speeds up.
    let topic = format!("cattle.io/octopus/{namespace}/{name}");
    let first = subscriber.next(WAIT).await;
    assert_eq!(first.topic, topic);
    assert_eq!(first.payload["gear"], "slow");
    let start_speed = first.payload["rotatingSpeed"]
        .as_i64()
        .expect("rotatingSpeed is a number");
    let mut slow = vec![first];
    while slow.len() < 3 {
        slow.push(subscriber.next(Duration::from_secs(10)).await);
    }
    let speeds: Vec<i64> = slow
        .iter()
        .map(|m| m.payload["rotatingSpeed"].as_i64().unwrap())
        .collect();
    assert!(
        speeds.windows(2).all(|w| w[1] == w[0] + 1) && speeds[0] >= start_speed,
        "speeds {speeds:?}"
    );
    let slow_gap = slow[2].at - slow[1].at;
    assert!(
        slow_gap >= Duration::from_millis(2500),
        "slow gear ticks every 3 s, saw {slow_gap:?}"
    );

    // The device's status on the API server follows too.
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    eventually("device status to show rotation", WAIT, || async {
        let d = devices.get(name).await.ok()?;
        (d.status?.rotating_speed > 0).then_some(())
    })
    .await;

    // Changing the gear in the DeviceLink changes the pace.
    links
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"gear": "fast"}}}})),
        )
        .await
        .expect("change gear");
    let fast_first = tokio::time::timeout(WAIT, async {
        loop {
            let m = subscriber.next(WAIT).await;
            if m.payload["gear"] == "fast" {
                break m;
            }
        }
    })
    .await
    .expect("a message with the fast gear after changing the DeviceLink");
    let mut fast = vec![fast_first];
    while fast.len() < 4 {
        fast.push(subscriber.next(Duration::from_secs(10)).await);
    }
    let fast_gaps: Vec<Duration> = fast.windows(2).skip(1).map(|w| w[1].at - w[0].at).collect();
    assert!(
        fast_gaps.iter().all(|g| *g < Duration::from_millis(1800)),
        "fast gear ticks every 1 s, saw {fast_gaps:?}"
    );
    assert!(
        fast[1].payload["rotatingSpeed"].as_i64().unwrap() >= 200,
        "fast gear starts at 200"
    );

    // The status is retained: a new subscriber gets it at once.
    let mut late = Subscriber::start(broker.port, &topic).await;
    assert!(
        late.try_next(Duration::from_secs(5)).await.is_some(),
        "the status message is retained"
    );
    drop(late);

    // Deleting the DeviceLink removes the device, then the unneeded adaptor pod.
    links
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete DeviceLink");
    eventually("the device to be removed", WAIT, || async {
        devices.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("the adaptor pod to be removed", WAIT, || async {
        pods.get_opt(pod_name).await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("the DeviceLink to be gone", WAIT, || async {
        links.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    // The adaptor cleared the retained status before it let the device go.
    let mut after = Subscriber::start(broker.port, &topic).await;
    let stale = after.try_next(Duration::from_secs(3)).await;
    assert!(
        stale.is_none(),
        "no retained status of a deleted device, got {stale:?}"
    );

    drop(kubelet);
    operator.stop().await;
}

#[tokio::test]
async fn missing_node_is_reported_and_recovers_when_the_node_appears() {
    let namespace = "e2e-late-node";
    let Scenario {
        _guard,
        client,
        broker,
        operator,
        kubelet: _kubelet,
    } = Scenario::start(namespace).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = "late-node";
    let _ = nodes.delete(node, &DeleteParams::default()).await;

    let name = "porch-fan";
    apply_example(&client, namespace, name, node, &broker.url()).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = eventually("NodeExisted False/NotFound", WAIT, || async {
        let l = links.get(name).await.ok()?;
        (conditions(&l) == [("NodeExisted".into(), "False".into(), "NotFound".into())]).then_some(l)
    })
    .await;
    let message = &link.conditions()[0].message;
    assert!(
        message.contains(node) && message.contains("spec.adaptor.node"),
        "message names the node and field: {message}"
    );

    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    eventually("a NotFound event on the DeviceLink", WAIT, || async {
        let list = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("NotFound") && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;

    // Creating the node later lets it proceed with no manual step.
    let fake_node = devicelink_e2e::kwok_node(node);
    nodes
        .create(&PostParams::default(), &fake_node)
        .await
        .expect("create node");
    wait_connected(&links, name).await;

    links
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete DeviceLink");
    eventually("the DeviceLink to be gone", WAIT, || async {
        links.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    nodes
        .delete(node, &DeleteParams::default())
        .await
        .expect("delete node");
    operator.stop().await;
}
