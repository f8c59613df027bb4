//! The chart installed for real: `helm install` of charts/devicelink onto
//! the test cluster's real node (a kubelet with containerd and runc, pods on
//! a CNI bridge, Services through kube-proxy), from the images `make images`
//! built and `make test` imported into the node's containerd. Nothing here
//! runs a devicelink process beside the cluster: the operator, the broker
//! and the adaptors all run as containers.
//!
//! The operator runs as two replicas with one leader; the chart's broker
//! carries the examples' messages; the operator starts each adaptor pod on
//! the node from its adaptor image, the pod turns Ready, its devices connect,
//! publish and take writes from MQTT; an adaptor that cannot list its devices
//! keeps AdaptorExisted False with the reason; the Kafka bridge delivers a
//! device's status into Kafka with only its references granted; the broker
//! with a password
//! file admits only its users; and uninstalling leaves no pod,
//! ServiceAccount, binding or finalizer behind.

use std::{net::SocketAddr, time::Duration};

use devicelink_api::{DeviceLink, labels, modbus::ModbusDevice};
use devicelink_e2e::{
    NODE_ADDRESS, REAL_NODE, SYSTEM_NAMESPACE, begin, delete_links_and_wait, device_link,
    dummy_link, eventually, eventually_showing,
    helm::helm,
    kafka::{Consumer, Kafka},
    kubectl::{can_i, kubectl},
    log_dir,
    modbus::{AbsentUart, Listen, ModbusServer, SerialCable, holding},
    mqtt::{self, Subscriber},
    process::{http_get_at, http_get_at_as},
    property_field, repo_root, wait_connected, wait_property, wait_reason, yaml_documents,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Pod, Service, ServiceAccount},
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
/// The chart's appVersion, which tags the images `make images` builds.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Users of the chart's broker with the example ACL (deploy/broker/).
const VIEWER: (&str, &str) = ("plant-viewer", "viewer-s3cret");
const OPERATOR: (&str, &str) = ("plant-operator", "operator-s3cret");

/// Values a cluster operator would give: everything on the real node (the
/// kwok nodes beside it run nothing), the chart's broker, adaptor resources,
/// the node's serial ports for the Modbus adaptor and a short release grace.
fn values() -> String {
    format!(
        "operator:
  nodeSelector: {{kubernetes.io/hostname: {REAL_NODE}}}
  deviceReleaseGrace: 5s
  logLevel: info,devicelink_operator=debug
broker:
  enabled: true
  nodeSelector: {{kubernetes.io/hostname: {REAL_NODE}}}
console:
  enabled: true
  nodeSelector: {{kubernetes.io/hostname: {REAL_NODE}}}
bridge:
  enabled: true
  nodeSelector: {{kubernetes.io/hostname: {REAL_NODE}}}
  logLevel: info,devicelink_bridge=debug
metrics:
  serviceMonitor: {{enabled: true, labels: {{release: prometheus}}}}
  podMonitor: {{enabled: true}}
adaptors:
  logLevel: info,devicelink_adaptor_runtime=debug
  settings:
    defaults:
      resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{memory: 96Mi}}}}
    adaptors:
      modbus:
        serialDevices: [{SERIAL_LINE}, {ABSENT_UART}]
      dummy:
        dataClaim: \"dummy-data-{{node}}\"
"
    )
}

/// Where the dummy adaptor's claim keeps its data on the node: a hostPath
/// volume made as a local-path provisioner makes them (mode 0777).
const DATA_ON_NODE: &str = "/tmp/devicelink-e2e-helm-data";

/// A PersistentVolume on the node and the claim the dummy adaptor's
/// settings name (`dummy-data-{node}`), bound to each other.
fn data_claim() -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolume
metadata: {{name: devicelink-e2e-dummy-data}}
spec:
  capacity: {{storage: 64Mi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ''
  hostPath: {{path: {DATA_ON_NODE}, type: Directory}}
  claimRef: {{namespace: {SYSTEM_NAMESPACE}, name: dummy-data-{REAL_NODE}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: dummy-data-{REAL_NODE}, namespace: {SYSTEM_NAMESPACE}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ''
  volumeName: devicelink-e2e-dummy-data
  resources: {{requests: {{storage: 64Mi}}}}
"
    )
}

/// The node's serial ports: a line to a pymodbus RTU server (a pty pair),
/// and a UART with no hardware behind it.
const SERIAL_LINE: &str = "/dev/tty-e2e-helm-device";
const ABSENT_UART: &str = "/dev/tty-e2e-helm-uart";

#[tokio::test]
async fn helm_install_runs_the_examples_on_a_real_node() {
    let namespace = "e2e-helm";
    let (_guard, client) = begin(namespace).await;
    let _rbac = ChartOwnsTheRbac::take();
    // Serial ports exist before the Modbus adaptor pod mounts them.
    let cable = SerialCable::in_dev("helm").await;
    assert_eq!(cable.device_end.to_str(), Some(SERIAL_LINE));
    let uart = AbsentUart::new("helm-uart");
    assert_eq!(uart.path.to_str(), Some(ABSENT_UART));
    // 70000 Wh (32 bits, big-endian words) on unit 7 of the line.
    let _rtu_server = ModbusServer::start(
        Listen::Rtu {
            device: cable.server_end.clone(),
            baud: 19200,
        },
        &[7],
        json!({"7": {"input": {"0": 1, "1": 4464}}}),
    )
    .await;
    // The dummy adaptor's data directory on a claim, so its File stores
    // outlive its pod.
    let _ = std::fs::remove_dir_all(DATA_ON_NODE);
    std::fs::create_dir_all(DATA_ON_NODE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(DATA_ON_NODE, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _claim = DataClaim;
    let out = kubectl(&["apply", "-f", "-"], Some(&data_claim()));
    assert!(out.success, "the data claim: {}", out.text);
    let _monitoring = MonitoringCrds::install();
    let values_file = log_dir().join("helm-values.yaml");
    std::fs::write(&values_file, values()).unwrap();
    // The chart owns the CRDs and keeps them current: installed from a
    // chart whose DeviceLink CRD is older (no printer columns), a `helm
    // upgrade` to this one brings them.
    let crds = ChartOwnsTheCrds::take();
    let older = crds.older_chart();
    release_of(&older, "install", &values_file, &[]);
    let _installed = UninstallOnFailure;
    assert_eq!(
        crds.printer_columns(),
        0,
        "the older chart's DeviceLink CRD"
    );
    release("upgrade", &values_file, &[]);
    assert!(
        crds.printer_columns() >= 5,
        "helm upgrade updates the DeviceLink CRD"
    );

    // Two operator replicas, Ready, on the real node, from the operator
    // image; exactly one holds the lease and says so in its metrics.
    let operators = wait_deployment_ready(&client, "devicelink-operator", 2).await;
    for pod in &operators {
        assert_runs_on_the_node(pod, &format!("ghcr.io/devicelink/operator:{VERSION}"));
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    eventually_showing(
        "one replica holding the lease, and only it saying it leads",
        WAIT,
        || async {
            let lease = leases
                .get_opt("devicelink-operator")
                .await
                .map_err(|e| e.to_string())?;
            let holder = lease
                .and_then(|l| l.spec?.holder_identity)
                .ok_or("no holder yet")?;
            let mut leading = Vec::new();
            for pod in &operators {
                let leader = metric(pod_address(pod, 8080), "devicelink_operator_leader").await;
                if leader == Some(1.0) {
                    leading.push(pod.name_any());
                }
            }
            (leading == [holder.clone()]).then_some(()).ok_or(format!(
                "holder {holder}, leading by their metrics {leading:?}"
            ))
        },
    )
    .await;
    // The metrics Service reaches them through kube-proxy.
    let metrics_service = service_address(&client, "devicelink-operator-metrics", 8080).await;
    eventually("/metrics through the metrics Service", WAIT, || async {
        let (code, body) = http_get_at(metrics_service, "/metrics").await?;
        (code == 200 && body.contains("devicelink_operator_reconciles")).then_some(())
    })
    .await;

    // The chart's broker, reached at its Service's address. It admits no
    // one without an identity (broker.auth=managed by default); its admin
    // is in the release's Secret, and makes a writer for this namespace as
    // docs/operator.md shows.
    wait_deployment_ready(&client, "devicelink-mqtt", 1).await;
    let broker = service_address(&client, "devicelink-mqtt", 1883).await;
    let broker_host = broker.ip().to_string();
    let admin = secret_pair(&client, "devicelink-mqtt-admin").await;
    let admin = (admin.0.as_str(), admin.1.as_str());
    eventually_showing("the broker to admit its admin only", WAIT, || async {
        let anonymous = mqtt::admits(&broker_host, broker.port(), None).await;
        let known = mqtt::admits(&broker_host, broker.port(), Some(admin)).await;
        (anonymous.is_err() && known.is_ok())
            .then_some(())
            .ok_or(format!("anonymous {anonymous:?}, admin {known:?}"))
    })
    .await;
    let writer = ("plant-writer", "writer-s3cret");
    let write_topics = format!("cattle.io/octopus/{namespace}/+/set");
    for command in [
        vec!["createClient", writer.0, "-p", writer.1],
        vec!["createRole", writer.0],
        vec![
            "addRoleACL",
            writer.0,
            "publishClientSend",
            &write_topics,
            "allow",
        ],
        vec!["addClientRole", writer.0, writer.0],
    ] {
        let port = broker.port().to_string();
        let ran = std::process::Command::new("mosquitto_ctrl")
            .args([
                "-h",
                &broker_host,
                "-p",
                &port,
                "-u",
                admin.0,
                "-P",
                admin.1,
                "dynsec",
            ])
            .args(&command)
            .output()
            .expect("run mosquitto_ctrl");
        assert!(ran.status.success(), "mosquitto_ctrl {command:?}: {ran:?}");
    }
    let mut messages = Subscriber::start_at_as(
        &broker_host,
        broker.port(),
        &format!("cattle.io/octopus/{namespace}/#"),
        Some(admin),
    )
    .await;

    // The fan and the thermometer examples as written (their `server` is the
    // chart's broker by its Service name, which the node's cluster DNS
    // resolves), moved to the real node; the thermometer's device listens
    // where pods reach this host.
    let device = ModbusServer::tcp_on(
        NODE_ADDRESS,
        &[1],
        json!({"1": {"input": {"0": 2965, "1": 455}}}),
    )
    .await;
    let mut fan = example("dummy-special-device.yaml", namespace);
    fan["spec"]["template"]["spec"]["extension"]["mqtt"]["client"]["store"] =
        json!({"type": "File"});
    let mut thermometer = example("modbus-thermometer.yaml", namespace);
    thermometer["spec"]["template"]["spec"]["protocol"]["tcp"]["endpoint"] =
        json!(device.endpoint());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    for link in [&fan, &thermometer] {
        let link: DeviceLink = serde_json::from_value(link.clone()).expect("a DeviceLink");
        links
            .create(&PostParams::default(), &link)
            .await
            .expect("create DeviceLink");
    }
    wait_connected(&links, "living-room-fan").await;
    wait_connected(&links, "thermometer").await;

    // The release's notes, as helm prints them: their fan (on a node of
    // the user's; here the real one) gets Healthy on the chart's broker.
    let notes = helm(&["get", "notes", "devicelink", "-n", SYSTEM_NAMESPACE]);
    assert!(notes.success, "helm get notes: {}", notes.text);
    let notes_fan = notes_manifest(&notes.text).replace("$NODE", REAL_NODE);
    let applied = kubectl(&["apply", "-f", "-"], Some(&notes_fan));
    assert!(
        applied.success,
        "the notes' DeviceLink: {}\n{notes_fan}",
        applied.text
    );
    let default_links: Api<DeviceLink> = Api::namespaced(client.clone(), "default");
    wait_connected(&default_links, "living-room-fan").await;
    delete_links_and_wait(&default_links, &["living-room-fan"]).await;

    // The console, from its image on the node: it follows the fan on the
    // chart's broker (by its Service name, as the adaptor does) and serves
    // it, through its own Service, to a user whose token may get it.
    let consoles = wait_deployment_ready(&client, "devicelink-console", 1).await;
    assert_runs_on_the_node(
        &consoles[0],
        &format!("ghcr.io/devicelink/console:{VERSION}"),
    );
    let console = service_address(&client, "devicelink-console", 8080).await;
    let viewer = devicelink_e2e::console::user(namespace, "helm-viewer", &["get"]);
    let fan_path = format!("/api/devicelinks/{namespace}/living-room-fan");
    eventually_showing("the fan through the console's Service", WAIT, || async {
        let (code, body) = http_get_at_as(console, &fan_path, &viewer)
            .await
            .ok_or("no answer")?;
        let shown: Value = serde_json::from_str(&body).map_err(|_| body.clone())?;
        (code == 200 && shown["lastMessage"]["value"].is_object())
            .then_some(())
            .ok_or(format!("{code} {shown}"))
    })
    .await;
    let (code, _) = http_get_at(console, &fan_path).await.expect("an answer");
    assert_eq!(code, 401, "nothing without a token");

    bridge_delivers_into_kafka(&client, namespace).await;

    // Serial devices from the settings: the RTU meter on the pty line is
    // read from inside the container; on the UART the open reaches the
    // driver (ENXIO, no hardware), where an unprivileged container is
    // refused by the device cgroup (EPERM).
    let meter = |name: &str, port: &str| -> DeviceLink {
        device_link(
            namespace,
            name,
            REAL_NODE,
            "modbus",
            "ModbusDevice",
            json!({"spec": {
                "parameters": {"syncInterval": "1s", "timeout": "2s"},
                "protocol": {"rtu": {"endpoint": port, "workerID": 7, "parity": "N"}},
                "properties": [{"name": "energy", "type": "uint32", "readOnly": true,
                    "visitor": {"register": "InputRegister", "offset": 0, "quantity": 2}}],
            }}),
        )
    };
    for link in [meter("meter", SERIAL_LINE), meter("uart", ABSENT_UART)] {
        links
            .create(&PostParams::default(), &link)
            .await
            .expect("create DeviceLink");
    }
    wait_connected(&links, "meter").await;
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, "meter", "energy", "70000").await;
    let refused = wait_reason(&links, "uart", "DeviceConnected", "False", "Unreachable").await;
    assert!(
        refused.message.contains("No such device or address"),
        "{}",
        refused.message
    );

    // Each adaptor pod runs its adaptor image on the node, with the
    // settings' resources, and is Ready (its /readyz passed).
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    for kind in ["dummy", "modbus"] {
        let pod = pods
            .get(&format!("devicelink-adaptor-{kind}-{REAL_NODE}"))
            .await
            .expect("the adaptor pod");
        assert_runs_on_the_node(
            &pod,
            &format!("ghcr.io/devicelink/adaptor-{kind}:{VERSION}"),
        );
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let limits = container.resources.as_ref().and_then(|r| r.limits.clone());
        assert_eq!(limits.unwrap()["memory"].0, "96Mi");
        // Its metrics, straight from the pod.
        let address = pod_address(&pod, 9102);
        eventually_showing("the adaptor's /metrics", WAIT, || async {
            let (code, body) = http_get_at(address, "/metrics").await.ok_or("no answer")?;
            (code == 200 && body.contains("devicelink_adaptor_mqtt"))
                .then_some(())
                .ok_or(format!("{code}"))
        })
        .await;
    }
    // Both adaptors' metrics through the adaptor metrics Service, and the
    // Prometheus Operator's objects the values asked for, taken by the API
    // server against their CRDs.
    let adaptor_metrics = service_address(&client, "devicelink-adaptor-metrics", 9102).await;
    eventually_showing("adaptor /metrics through the Service", WAIT, || async {
        let (code, body) = http_get_at(adaptor_metrics, "/metrics")
            .await
            .ok_or("no answer")?;
        (code == 200 && body.contains("devicelink_adaptor_mqtt"))
            .then_some(())
            .ok_or(format!("{code}"))
    })
    .await;
    for object in [
        "servicemonitor/devicelink",
        "podmonitor/devicelink-operator",
        "podmonitor/devicelink-adaptors",
    ] {
        let got = kubectl(&["get", "-n", SYSTEM_NAMESPACE, object], None);
        assert!(got.success, "{object}: {}", got.text);
    }
    // The fan's File store is on the claim: on the node's volume, written
    // by the adaptor (uid 65532), where a new pod finds it again.
    let store =
        std::path::Path::new(DATA_ON_NODE).join(format!("mqtt/{namespace}/living-room-fan"));
    eventually_showing(
        "the fan's File store on the claimed volume",
        WAIT,
        || async {
            store
                .is_dir()
                .then_some(())
                .ok_or(format!("no {}", store.display()))
        },
    )
    .await;
    let dummy_pod = pods
        .get(&format!("devicelink-adaptor-dummy-{REAL_NODE}"))
        .await
        .unwrap();
    let volume = &dummy_pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    assert_eq!(
        volume
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some(format!("dummy-data-{REAL_NODE}").as_str())
    );

    // The API server reaches the kubelet: logs of a container.
    let logs = kubectl(
        &[
            "logs",
            "-n",
            SYSTEM_NAMESPACE,
            &format!("devicelink-adaptor-dummy-{REAL_NODE}"),
        ],
        None,
    );
    assert!(
        logs.success && logs.text.contains("adaptor starting"),
        "{}",
        logs.text
    );

    // Both devices' status on the chart's broker.
    messages
        .next_matching(WAIT, |m| {
            m["gear"] == "slow" && m["rotatingSpeed"].is_number()
        })
        .await;
    messages
        .next_matching(WAIT, |m| {
            property_field(m, "temperature", "operatedValue") == Some("23.35")
        })
        .await;

    // A write published on the broker (by the writer the admin made; the
    // adaptor's identity is the operator's) reaches the Modbus device.
    mqtt::publish_at_as(
        &broker_host,
        broker.port(),
        Some(writer),
        &format!("cattle.io/octopus/{namespace}/thermometer/set"),
        br#"{"high-temperature-limit": 35}"#,
    )
    .await;
    eventually_showing(
        "the limit written from MQTT in the register",
        WAIT,
        || async {
            let held = holding(&mut device.client(1).await, 0, 1).await;
            (held == [35]).then_some(()).ok_or(format!("{held:?}"))
        },
    )
    .await;

    delete_links_and_wait(&links, &["living-room-fan", "thermometer", "meter", "uart"]).await;
    wait_no_adaptor_pods(&pods).await;

    // An adaptor that cannot list its devices never becomes Ready, and
    // AdaptorExisted says so. Its pod is pointed at a port where no API
    // server listens (settings' env wins over the kubelet's).
    let upgrade_values = log_dir().join("helm-values-unready.yaml");
    std::fs::write(
        &upgrade_values,
        format!(
            "{}      dummy:\n        env:\n          - {{name: KUBERNETES_SERVICE_HOST, value: \"{NODE_ADDRESS}\"}}\n          - {{name: KUBERNETES_SERVICE_PORT, value: \"1\"}}\n",
            values()
        ),
    )
    .unwrap();
    release("upgrade", &upgrade_values, &[]);
    let fan: DeviceLink = serde_json::from_value(fan).unwrap();
    // The operator rolls to the new settings; the DeviceLink waits for it.
    wait_deployment_ready(&client, "devicelink-operator", 2).await;
    links
        .create(&PostParams::default(), &fan)
        .await
        .expect("create DeviceLink");
    let condition = eventually_showing("AdaptorExisted False, NotReady", WAIT, || async {
        let link = links
            .get("living-room-fan")
            .await
            .map_err(|e| e.to_string())?;
        match link
            .conditions()
            .iter()
            .find(|c| c.type_ == "AdaptorExisted")
        {
            Some(c) if c.status == "False" && c.reason == "NotReady" => Ok(c.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        condition
            .message
            .contains("readiness check (GET /readyz) has not passed"),
        "{}",
        condition.message
    );
    let pod = pods
        .get(&format!("devicelink-adaptor-dummy-{REAL_NODE}"))
        .await
        .expect("the adaptor pod");
    let status = pod.status.unwrap();
    let container = &status.container_statuses.unwrap()[0];
    assert!(
        container.state.as_ref().unwrap().running.is_some() && !container.ready,
        "{container:?}"
    );

    delete_links_and_wait(&links, &["living-room-fan"]).await;
    wait_no_adaptor_pods(&pods).await;

    // The broker with a password file admits its users only, and with the
    // example ACL (docs/operator.md) grants each only its topics.
    let passwd = log_dir().join("mqtt-users.passwd");
    let _ = std::fs::remove_file(&passwd);
    for (user, password) in [VIEWER, OPERATOR, ("plant-devices", "devices-s3cret")] {
        let mut made = std::process::Command::new("mosquitto_passwd");
        if !passwd.exists() {
            made.arg("-c");
        }
        let made = made
            .args(["-b", passwd.to_str().unwrap(), user, password])
            .status()
            .expect("run mosquitto_passwd");
        assert!(made.success());
    }
    let acl = repo_root().join("deploy/broker/mosquitto.acl");
    let secret = kubectl(
        &[
            "create",
            "secret",
            "generic",
            "mqtt-users",
            "-n",
            SYSTEM_NAMESPACE,
            &format!("--from-file=passwd={}", passwd.display()),
            &format!("--from-file=acl={}", acl.display()),
        ],
        None,
    );
    assert!(secret.success, "{}", secret.text);
    release(
        "upgrade",
        &values_file,
        &[
            "--set",
            "broker.auth=files",
            "--set",
            "broker.passwordSecret=mqtt-users",
            "--set",
            "broker.aclSecret=mqtt-users",
        ],
    );
    eventually_showing("the broker to admit only its users", WAIT, || async {
        let anonymous = mqtt::admits(&broker_host, broker.port(), None).await;
        let wrong = mqtt::admits(&broker_host, broker.port(), Some((VIEWER.0, "guess"))).await;
        let user = mqtt::admits(&broker_host, broker.port(), Some(VIEWER)).await;
        (anonymous.is_err() && wrong.is_err() && user.is_ok())
            .then_some(())
            .ok_or(format!(
                "anonymous {anonymous:?}, wrong password {wrong:?}, user {user:?}"
            ))
    })
    .await;
    // A viewer's write is dropped by the broker: the first write a writer
    // sees on the write topic is its own, published after the viewer's.
    let write_topic = "cattle.io/octopus/plant/fan/$write";
    let mut writes =
        Subscriber::start_at_as(&broker_host, broker.port(), write_topic, Some(OPERATOR)).await;
    mqtt::publish_at_as(
        &broker_host,
        broker.port(),
        Some(VIEWER),
        write_topic,
        br#"{"on": true}"#,
    )
    .await;
    mqtt::publish_at_as(
        &broker_host,
        broker.port(),
        Some(OPERATOR),
        write_topic,
        br#"{"on": false}"#,
    )
    .await;
    assert_eq!(
        writes.next(WAIT).await.payload,
        json!({"on": false}),
        "the chart's broker takes the ACL: a viewer may not write"
    );
    drop(writes);
    let _ = kubectl(
        &["delete", "secret", "mqtt-users", "-n", SYSTEM_NAMESPACE],
        None,
    );

    // Uninstall: with the DeviceLinks gone first, nothing is left but the
    // CRDs, which the chart keeps (and with them whatever DeviceLinks a
    // user still has).
    let uninstall = helm(&["uninstall", "devicelink", "-n", SYSTEM_NAMESPACE, "--wait"]);
    assert!(uninstall.success, "helm uninstall: {}", uninstall.text);
    std::mem::forget(_installed);
    assert!(
        crds.printer_columns() >= 5,
        "the DeviceLink CRD is kept after helm uninstall"
    );
    wait_nothing_left(&client).await;
}

/// The Kafka bridge, from its image on the node: one KafkaBridge, reading
/// the chart's broker with a BrokerCredential of the namespace (Read), puts
/// the status of the namespace's DeviceLinks into Kafka (on this host,
/// where pods reach it), keyed by UID, with its topic levels as headers. The operator grants the bridge that
/// credential's Secret and nothing else, and takes it back with the
/// KafkaBridge.
async fn bridge_delivers_into_kafka(client: &Client, namespace: &str) {
    // A StatefulSet: its replica is devicelink-bridge-0.
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let bridge_pod = eventually_showing("devicelink-bridge-0 Ready", WAIT, || async {
        match pods.get_opt("devicelink-bridge-0").await {
            Ok(Some(pod)) if is_ready(&pod) => Ok(pod),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_runs_on_the_node(&bridge_pod, &format!("ghcr.io/devicelink/bridge:{VERSION}"));
    let kafka = Kafka::start_on(NODE_ADDRESS).await;
    let credential = format!(
        "apiVersion: edge.cattle.io/v1alpha1
kind: BrokerCredential
metadata: {{name: kafka-bridge, namespace: {namespace}}}
spec: {{access: Read}}
"
    );
    let applied = kubectl(&["apply", "-f", "-"], Some(&credential));
    assert!(applied.success, "the BrokerCredential: {}", applied.text);
    let bridge = format!(
        "apiVersion: edge.cattle.io/v1alpha1
kind: KafkaBridge
metadata: {{name: plant-data, namespace: {namespace}}}
spec:
  references:
    - {{name: broker, secret: {{name: kafka-bridge-broker-credential}}}}
  source:
    client:
      server: tcp://devicelink-mqtt.{SYSTEM_NAMESPACE}:1883
      basicAuth:
        usernameRef: {{name: broker, item: username}}
        passwordRef: {{name: broker, item: password}}
    deviceLinks: {{selector: {{}}}}
  mapping:
    matchIndex: 0
    routes: [{{pattern: cattle.io, policy: devices}}]
    policies:
      - name: devices
        topicIndex: 3
        topics: [{{pattern: \".*-fan\", topic: fans}}]
        headers: {{\"2\": namespace, \"3\": device}}
  sink:
    bootstrapServers: [\"{}\"]
    topic: unrouted
    compression: zstd
",
        kafka.bootstrap()
    );
    let applied = kubectl(&["apply", "-f", "-"], Some(&bridge));
    assert!(applied.success, "the KafkaBridge: {}", applied.text);
    let mut consumer = Consumer::start(&kafka, &["fans"]);
    let fan_topic = format!("cattle.io/octopus/{namespace}/living-room-fan");
    let deadline = std::time::Instant::now() + WAIT;
    let mut others = Vec::new();
    let record = loop {
        match consumer
            .next(deadline.saturating_duration_since(std::time::Instant::now()))
            .await
        {
            Some(r) if r.header("mqtt.topic") == Some(fan_topic.as_str()) => break r,
            Some(r) => others.push(r),
            None => {
                let status = kubectl(
                    &[
                        "get",
                        "-n",
                        namespace,
                        "kafkabridge/plant-data",
                        "-o",
                        "yaml",
                    ],
                    None,
                );
                panic!(
                    "no record of the fan in Kafka within {WAIT:?}; other records: {others:?}\n{}",
                    status.text
                )
            }
        }
    };
    assert_eq!(record.header("namespace"), Some(namespace));
    assert_eq!(record.header("device"), Some("living-room-fan"));
    let uid = kubectl(
        &[
            "get",
            "-n",
            namespace,
            "devicelink/living-room-fan",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    );
    assert!(uid.success, "{}", uid.text);
    assert_eq!(
        record.key.as_deref(),
        Some(uid.text.trim()),
        "keyed by the DeviceLink's UID"
    );
    assert_eq!(record.header("devicelink.name"), Some("living-room-fan"));
    let value: Value = serde_json::from_str(record.value.as_deref().unwrap_or_default())
        .expect("the fan's status as JSON");
    assert!(value["gear"].is_string(), "{value}");
    consumer.stop().await;

    // It may read the credential's Secret, and no other.
    let account = format!("system:serviceaccount:{SYSTEM_NAMESPACE}:devicelink-bridge");
    eventually_showing("the bridge granted its reference", WAIT, || async {
        can_i(
            &account,
            "get",
            "secret/kafka-bridge-broker-credential",
            namespace,
        )
        .then_some(())
        .ok_or_else(|| "not granted".to_string())
    })
    .await;
    for (secret, in_namespace) in [
        ("secrets", namespace),
        ("secret/devicelink-mqtt-admin", SYSTEM_NAMESPACE),
    ] {
        assert!(
            !can_i(&account, "get", secret, in_namespace),
            "the bridge may get {secret} in {in_namespace}"
        );
    }
    let deleted = kubectl(
        &[
            "delete",
            "-n",
            namespace,
            "kafkabridge/plant-data",
            "brokercredential/kafka-bridge",
        ],
        None,
    );
    assert!(deleted.success, "{}", deleted.text);
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    eventually_showing("the bridge's grant taken back", WAIT, || async {
        match roles.get_opt("devicelink-bridge").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The username and password in a Secret of the system namespace.
async fn secret_pair(client: &kube::Client, name: &str) -> (String, String) {
    secret_pair_in(client, SYSTEM_NAMESPACE, name).await
}

/// The username and password of a Secret in `namespace`.
async fn secret_pair_in(client: &kube::Client, namespace: &str, name: &str) -> (String, String) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    let secret = secrets.get(name).await.expect("the Secret");
    let item = |key: &str| {
        String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("text")
    };
    (item("username"), item("password"))
}

/// `helm install` or `upgrade` of the chart as release `devicelink` in the
/// system namespace, with a values file and more arguments.
fn release(verb: &str, values: &std::path::Path, more: &[&str]) {
    release_of(&repo_root().join("charts/devicelink"), verb, values, more)
}

/// Like [`release`], of the chart in `chart`.
fn release_of(chart: &std::path::Path, verb: &str, values: &std::path::Path, more: &[&str]) {
    let mut args = vec![
        verb,
        "devicelink",
        chart.to_str().unwrap(),
        "-n",
        SYSTEM_NAMESPACE,
        "-f",
        values.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let out = helm(&args);
    assert!(out.success, "helm {verb}: {}", out.text);
}

/// The example file as a DeviceLink in `namespace`, on the real node.
fn example(file: &str, namespace: &str) -> Value {
    let mut link = yaml_documents(&repo_root().join("deploy/examples").join(file)).remove(0);
    link["metadata"]["namespace"] = json!(namespace);
    link["spec"]["adaptor"]["node"] = json!(REAL_NODE);
    link
}

/// Waits until the Deployment has `replicas` Ready and returns its pods.
async fn wait_deployment_ready(client: &Client, name: &str, replicas: i32) -> Vec<Pod> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    eventually_showing(
        &format!("{name}: {replicas} replicas ready and up to date"),
        WAIT,
        || async {
            let d = deployments.get(name).await.map_err(|e| e.to_string())?;
            let status = d.status.clone().unwrap_or_default();
            let settled = status.ready_replicas == Some(replicas)
                && status.updated_replicas == Some(replicas)
                && status.replicas == Some(replicas)
                && status.observed_generation == d.metadata.generation;
            if !settled {
                return Err(format!("{status:?}"));
            }
            let selector = format!("app.kubernetes.io/name={name}");
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            let ready: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                .collect();
            if ready.len() == replicas as usize {
                Ok(ready)
            } else {
                Err(format!("{} pods ready", ready.len()))
            }
        },
    )
    .await
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod runs on the real node, as a container of `image` that is
/// running and ready.
fn assert_runs_on_the_node(pod: &Pod, image: &str) {
    let name = pod.name_any();
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(REAL_NODE),
        "{name}"
    );
    let status = pod.status.as_ref().unwrap();
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(container.image, image, "{name}");
    assert!(
        container.ready && container.state.as_ref().unwrap().running.is_some(),
        "{name}: {container:?}"
    );
    // The container runtime reports what it really runs.
    assert!(
        container
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{name}: {:?}",
        container.container_id
    );
}

/// The pod's address on the node's pod network, at `port`.
fn pod_address(pod: &Pod, port: u16) -> SocketAddr {
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// A Service's cluster address, at `port`.
async fn service_address(client: &Client, name: &str, port: u16) -> SocketAddr {
    let services: Api<Service> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let service = services.get(name).await.expect("the Service");
    let ip = service.spec.unwrap().cluster_ip.unwrap();
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// One sample of the /metrics served at `address`.
async fn metric(address: SocketAddr, sample: &str) -> Option<f64> {
    let (_, body) = http_get_at(address, "/metrics").await?;
    body.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn wait_no_adaptor_pods(pods: &Api<Pod>) {
    let selector = format!("{}={}", labels::NODE, labels::node_label_value(REAL_NODE));
    eventually("the real node's adaptor pods to be gone", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
}

/// Waits until devicelink has left nothing behind (pods end a while after
/// `helm uninstall` returns).
async fn wait_nothing_left(client: &Client) {
    eventually_showing("nothing of devicelink left on the node", WAIT, || async {
        let left = leftovers(client).await;
        left.is_empty().then_some(()).ok_or(left.join(", "))
    })
    .await;
}

/// What devicelink left behind for the real node: pods in the release
/// namespace, the adaptors' ServiceAccounts and bindings, objects of the
/// release.
async fn leftovers(client: &Client) -> Vec<String> {
    let mut left = Vec::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    for pod in pods.list(&ListParams::default()).await.unwrap().items {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(REAL_NODE) {
            left.push(format!("pod {}", pod.name_any()));
        }
    }
    let on_node = |name: &str| name.ends_with(&format!("-{REAL_NODE}"));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    for account in accounts.list(&ListParams::default()).await.unwrap().items {
        if on_node(&account.name_any()) {
            left.push(format!("serviceaccount {}", account.name_any()));
        }
    }
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for binding in cluster_bindings
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        if on_node(&binding.name_any()) {
            left.push(format!("clusterrolebinding {}", binding.name_any()));
        }
    }
    let bindings: Api<RoleBinding> = Api::all(client.clone());
    for binding in bindings.list(&ListParams::default()).await.unwrap().items {
        if on_node(&binding.name_any()) {
            left.push(format!("rolebinding {}", binding.name_any()));
        }
    }
    // What the release installed.
    let release = "app.kubernetes.io/instance=devicelink,app.kubernetes.io/managed-by=Helm";
    for kind in [
        "deployments",
        "statefulsets",
        "services",
        "configmaps",
        "serviceaccounts",
        "clusterroles",
        "clusterrolebindings",
    ] {
        let out = kubectl(&["get", kind, "-A", "-l", release, "-o", "name"], None);
        assert!(out.success, "{}", out.text);
        left.extend(out.text.lines().map(str::to_string));
    }
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), "e2e-helm");
    for link in links.list(&ListParams::default()).await.unwrap().items {
        left.push(format!(
            "devicelink {} (finalizers {:?})",
            link.name_any(),
            link.finalizers()
        ));
    }
    left
}

/// The chart owns the operator's and adaptors' RBAC. `make test` applies the
/// same objects, rendered (deploy/manifests/rbac.yaml), for the tests that
/// run the operator as a process; they step aside while the chart is
/// installed and come back afterwards.
struct ChartOwnsTheRbac;

impl ChartOwnsTheRbac {
    fn take() -> ChartOwnsTheRbac {
        let out = kubectl(
            &[
                "delete",
                "--wait",
                "--ignore-not-found",
                "-f",
                &rbac_manifest(),
            ],
            None,
        );
        assert!(out.success, "remove the rendered RBAC: {}", out.text);
        ChartOwnsTheRbac
    }
}

impl Drop for ChartOwnsTheRbac {
    fn drop(&mut self) {
        undo(
            &["apply", "-f", &rbac_manifest()],
            "could not put the rendered RBAC back",
        );
    }
}

fn rbac_manifest() -> String {
    repo_root()
        .join("deploy/manifests/rbac.yaml")
        .to_string_lossy()
        .into_owned()
}

/// The Prometheus Operator's ServiceMonitor and PodMonitor CRDs, from its
/// Go module (fetched once into the module cache), for as long as kept.
struct MonitoringCrds(Vec<String>);

/// The Prometheus Operator release whose CRDs the chart's monitors meet.
const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

impl MonitoringCrds {
    fn install() -> MonitoringCrds {
        let out = std::process::Command::new("go")
            .args(["mod", "download", "-json", PROMETHEUS_OPERATOR])
            .output()
            .expect("go (installed by make test) fetches the Prometheus Operator's module");
        let info: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "go mod download {PROMETHEUS_OPERATOR}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let dir = info["Dir"].as_str().expect("the module's directory");
        let files: Vec<String> = ["servicemonitors", "podmonitors"]
            .iter()
            .map(|k| {
                format!("{dir}/example/prometheus-operator-crd/monitoring.coreos.com_{k}.yaml")
            })
            .collect();
        for file in &files {
            let out = kubectl(&["apply", "--server-side", "-f", file], None);
            assert!(out.success, "{file}: {}", out.text);
        }
        let out = kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "crd/servicemonitors.monitoring.coreos.com",
                "crd/podmonitors.monitoring.coreos.com",
            ],
            None,
        );
        assert!(out.success, "the monitoring CRDs: {}", out.text);
        MonitoringCrds(files)
    }
}

impl Drop for MonitoringCrds {
    fn drop(&mut self) {
        for file in &self.0 {
            let _ = kubectl(
                &["delete", "--ignore-not-found", "--wait=false", "-f", file],
                None,
            );
        }
    }
}

/// While kept, the CRDs are the chart's to install (the control plane's
/// copies, applied for the other tests, are deleted first); the rendered
/// ones come back afterwards.
struct ChartOwnsTheCrds(std::path::PathBuf);

impl ChartOwnsTheCrds {
    fn take() -> ChartOwnsTheCrds {
        let crds = repo_root().join("api/generated");
        let out = kubectl(
            &[
                "delete",
                "--wait",
                "--ignore-not-found",
                "-f",
                crds.to_str().unwrap(),
            ],
            None,
        );
        assert!(out.success, "remove the applied CRDs: {}", out.text);
        ChartOwnsTheCrds(log_dir().join("older-chart"))
    }

    /// A copy of the chart whose DeviceLink CRD has no printer columns, as
    /// an older release would have it.
    fn older_chart(&self) -> std::path::PathBuf {
        let _ = std::fs::remove_dir_all(&self.0);
        let copied = std::process::Command::new("cp")
            .arg("-rL")
            .arg(repo_root().join("charts/devicelink"))
            .arg(&self.0)
            .status()
            .expect("cp");
        assert!(copied.success(), "copy the chart");
        let crd = self.0.join("files/crds/devicelinks.edge.cattle.io.yaml");
        let mut doc = yaml_documents(&crd).remove(0);
        for version in doc["spec"]["versions"].as_array_mut().unwrap() {
            version
                .as_object_mut()
                .unwrap()
                .remove("additionalPrinterColumns");
        }
        std::fs::write(&crd, serde_json::to_string(&doc).unwrap()).unwrap();
        self.0.clone()
    }

    /// The DeviceLink CRD's printer columns (0 if it has none).
    fn printer_columns(&self) -> usize {
        let out = kubectl(
            &["get", "crd", "devicelinks.edge.cattle.io", "-o", "json"],
            None,
        );
        assert!(out.success, "the DeviceLink CRD: {}", out.text);
        let crd: Value = serde_json::from_str(&out.text).unwrap();
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

impl Drop for ChartOwnsTheCrds {
    fn drop(&mut self) {
        let crds = repo_root().join("api/generated");
        undo(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                crds.to_str().unwrap(),
            ],
            "could not put the CRDs back",
        );
        let _ = kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ],
            None,
        );
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The claim and its volume go with the test.
struct DataClaim;

impl Drop for DataClaim {
    fn drop(&mut self) {
        let _ = kubectl(
            &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
            Some(&data_claim()),
        );
        let _ = std::fs::remove_dir_all(DATA_ON_NODE);
    }
}

/// A failed test leaves no release behind for the tests after it.
struct UninstallOnFailure;

impl Drop for UninstallOnFailure {
    fn drop(&mut self) {
        // What the containers said, for whoever reads the failure.
        let pods = kubectl(&["get", "pods", "-n", SYSTEM_NAMESPACE, "-o", "name"], None);
        for pod in pods.text.lines().filter(|l| l.starts_with("pod/")) {
            let logs = kubectl(
                &["logs", "-n", SYSTEM_NAMESPACE, "--all-containers", pod],
                None,
            );
            let file = log_dir().join(format!("helm-{}.log", pod.trim_start_matches("pod/")));
            let _ = std::fs::write(file, logs.text);
        }
        let _ = helm(&["uninstall", "devicelink", "-n", SYSTEM_NAMESPACE, "--wait"]);
    }
}

/// `kubectl apply -f deploy/manifests/` as docs/operator.md gives it: the
/// operator (pinned to the real node, as one pins it to a node of one's
/// own) runs from its image, and a device on the node gets Healthy.
#[tokio::test]
async fn plain_manifests_run_the_operator_on_a_real_node() {
    let namespace = "e2e-manifests";
    let (_guard, client) = begin(namespace).await;
    let manifests = repo_root().join("deploy/manifests");
    let _applied = ManifestsApplied;
    let out = kubectl(&["apply", "-f", manifests.to_str().unwrap()], None);
    assert!(
        out.success,
        "kubectl apply -f deploy/manifests/: {}",
        out.text
    );
    let pin = format!(
        r#"{{"spec":{{"template":{{"spec":{{"nodeSelector":{{"kubernetes.io/hostname":"{REAL_NODE}"}}}}}}}}}}"#
    );
    let out = kubectl(
        &[
            "-n",
            SYSTEM_NAMESPACE,
            "patch",
            "deployment",
            "devicelink-operator",
            "--type=merge",
            "-p",
            &pin,
        ],
        None,
    );
    assert!(out.success, "pin the operator to {REAL_NODE}: {}", out.text);
    let operators = wait_deployment_ready(&client, "devicelink-operator", 2).await;
    for pod in &operators {
        assert_runs_on_the_node(pod, &format!("ghcr.io/devicelink/operator:{VERSION}"));
    }

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let fan = dummy_link(
        namespace,
        "manifest-fan",
        REAL_NODE,
        json!({"spec": {"protocol": {"location": "hall"}, "gear": "slow", "on": true}}),
    );
    links
        .create(&PostParams::default(), &fan)
        .await
        .expect("create DeviceLink");
    wait_connected(&links, "manifest-fan").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let adaptor = pods
        .get(&format!("devicelink-adaptor-dummy-{REAL_NODE}"))
        .await
        .expect("the adaptor pod");
    assert_runs_on_the_node(
        &adaptor,
        &format!("ghcr.io/devicelink/adaptor-dummy:{VERSION}"),
    );
    delete_links_and_wait(&links, &["manifest-fan"]).await;
    wait_no_adaptor_pods(&pods).await;
}

/// The manifest of NOTES.txt's `kubectl apply -f - <<YAML` ... `YAML`.
fn notes_manifest(notes: &str) -> String {
    let start = notes
        .find("<<YAML\n")
        .unwrap_or_else(|| panic!("no manifest in the notes:\n{notes}"))
        + "<<YAML\n".len();
    let end = start
        + notes[start..]
            .find("\n  YAML\n")
            .expect("the manifest's end");
    notes[start..end]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The operator's objects of the plain manifests go with the test (the
/// CRDs, namespace and RBAC stay: the other tests use them).
struct ManifestsApplied;

impl Drop for ManifestsApplied {
    fn drop(&mut self) {
        let operator = repo_root().join("deploy/manifests/operator.yaml");
        undo(
            &[
                "delete",
                "--ignore-not-found",
                "--wait",
                "-f",
                operator.to_str().unwrap(),
            ],
            "removing the manifests' operator",
        );
    }
}

/// Runs kubectl to put back what a test changed; a failure is said, not
/// raised (this runs while a failed test unwinds too).
fn undo(args: &[&str], what: &str) {
    let out = kubectl(args, None);
    if !out.success {
        eprintln!("{what}: {}", out.text);
    }
}

/// docs/quickstart.md as a user with their own cluster follows it: each of
/// its `sh` blocks, as written and in order, on the real node. `docker` is
/// e2e/images/docker: buildah through the Dockerfile's own stages from
/// stand-ins for its public base images, and the node's containerd as the
/// registry. Then what the page says one sees: Healthy devices from the
/// images built so, their status on the chart's broker to the
/// BrokerCredential's user, the console serving them to the token made;
/// and the page's clean-up, which leaves nothing behind.
#[tokio::test]
async fn the_quick_start_runs_as_written() {
    let (_guard, client) = begin("default").await;
    let _rbac = ChartOwnsTheRbac::take();
    let _crds = ChartOwnsTheCrds::take();
    let _only_real = OnlyTheRealNodeSchedules::take();
    let _release = UninstallOnFailure;
    let _left = QuickStartLeftovers;
    let page = std::fs::read_to_string(repo_root().join("docs/quickstart.md")).unwrap();
    let (steps, clean_up) = page
        .split_once("\n## Clean up\n")
        .expect("docs/quickstart.md has a Clean up section");
    // README's install steps are the page's first two, word for word.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let sh_block = |text: &str, n: usize| -> String {
        let block = text.split("```sh\n").nth(n + 1).expect("an sh block");
        block.split("```").next().unwrap().to_string()
    };
    let install = readme
        .split_once("## Install on your cluster\n")
        .expect("README.md has an Install section")
        .1;
    assert_eq!(
        sh_block(install, 0),
        sh_block(steps, 0) + &sh_block(steps, 1),
        "README.md's install steps"
    );
    run_as_written(&shell_blocks(steps), "the quick start");

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), "default");
    for name in QUICK_START_DEVICES {
        wait_connected(&links, name).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let built = |target: &str| format!("registry.example.com/devicelink/{target}:{VERSION}");
    for (pod, target) in [
        ("devicelink-adaptor-dummy", "adaptor-dummy"),
        ("devicelink-adaptor-modbus", "adaptor-modbus"),
        ("devicelink-adaptor-opcua", "adaptor-opcua"),
    ] {
        let pod = pods.get(&format!("{pod}-{REAL_NODE}")).await.expect(pod);
        assert_runs_on_the_node(&pod, &built(target));
    }
    for (deployment, target, replicas) in [
        ("devicelink-operator", "operator", 2),
        ("devicelink-mqtt", "mosquitto", 1),
        ("devicelink-console", "console", 1),
    ] {
        for pod in wait_deployment_ready(&client, deployment, replicas).await {
            assert_runs_on_the_node(&pod, &built(target));
        }
    }
    // The simulators' thermometer, through Modbus: 296.5 K read as 23.35 C
    // give or take the drift the simulator adds.
    let thermometers: Api<ModbusDevice> = Api::namespaced(client.clone(), "default");
    eventually_showing("the thermometer's temperature", WAIT, || async {
        let device = thermometers
            .get("thermometer")
            .await
            .map_err(|e| e.to_string())?;
        let status = serde_json::to_value(&device).unwrap()["status"].clone();
        let value = property_field(&status, "temperature", "operatedValue");
        value
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|c| (20.0..27.0).contains(c))
            .map(|_| ())
            .ok_or(format!("{value:?}"))
    })
    .await;

    // The page's BrokerCredential reads every device's status.
    let broker = service_address(&client, "devicelink-mqtt", 1883).await;
    let (username, password) =
        secret_pair_in(&client, "default", "quickstart-broker-credential").await;
    let mut status = Subscriber::start_at_as(
        &broker.ip().to_string(),
        broker.port(),
        "factory/default/packaging-line",
        Some((&username, &password)),
    )
    .await;
    let line = status.next(WAIT).await;
    assert!(line.payload["properties"].is_array(), "{}", line.payload);

    // The console serves the devices to the token the page made.
    let console = service_address(&client, "devicelink-console", 8080).await;
    let token = std::fs::read_to_string(repo_root().join("quickstart-viewer.token"))
        .expect("the token the quick start wrote");
    let (code, page) = http_get_at(console, "/").await.expect("the console page");
    assert!(code == 200 && page.contains("<html"), "{code} {page}");
    eventually_showing("the thermometer through the console", WAIT, || async {
        let (code, body) = http_get_at_as(
            console,
            "/api/devicelinks/default/thermometer",
            token.trim(),
        )
        .await
        .ok_or("no answer")?;
        (code == 200 && body.contains("temperature"))
            .then_some(())
            .ok_or(format!("{code} {body}"))
    })
    .await;

    run_as_written(&shell_blocks(clean_up), "the quick start's clean-up");
    assert!(
        links
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "the DeviceLinks are gone"
    );
    wait_nothing_left(&client).await;
}

/// The DeviceLinks of deploy/examples/quickstart.yaml.
const QUICK_START_DEVICES: [&str; 3] = ["living-room-fan", "thermometer", "packaging-line"];

/// The `sh` fenced blocks of a Markdown text, in order, as one script.
fn shell_blocks(markdown: &str) -> String {
    let mut script = String::new();
    let mut inside = false;
    for line in markdown.lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, line) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!script.is_empty(), "no sh blocks in:\n{markdown}");
    script
}

/// Runs `script` with bash (exit on the first failure) in the repository,
/// as a user's shell would: kubectl and helm on PATH, and `docker` the
/// stand-in (e2e/images/docker). NODE picks the real node.
fn run_as_written(script: &str, what: &str) {
    let helm = std::path::Path::new(devicelink_e2e::helm::binary());
    let path = format!(
        "{}:{}:{}",
        repo_root().join("e2e/images").display(),
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(repo_root())
        .env("PATH", path)
        .env("NODE", REAL_NODE)
        .output()
        .expect("run bash");
    let log = log_dir().join(format!("{}.log", what.replace(' ', "-")));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(&log, &printed);
    if !out.status.success() {
        // Where each DeviceLink stands says why a wait ran out.
        let stages = kubectl(
            &[
                "get",
                "dl",
                "-A",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}:{range .status.conditions[*]} {.type}={.status} {.reason} {.message};{end}{"\n"}{end}"#,
            ],
            None,
        );
        eprintln!("DeviceLinks:\n{}", stages.text);
    }
    assert!(
        out.status.success(),
        "{what}, as written, failed ({}); the last of what it printed:\n{}",
        out.status,
        printed
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// While kept, the fake (kwok) nodes take no pods: on a cluster of real
/// nodes, as a user's is, the quick start's Deployments land on the real one.
struct OnlyTheRealNodeSchedules;

const FAKE_NODE_TAINT: &str = "e2e.devicelink/fake-node";

impl OnlyTheRealNodeSchedules {
    fn take() -> OnlyTheRealNodeSchedules {
        let out = kubectl(
            &[
                "taint",
                "nodes",
                "-l",
                "type=kwok",
                "--overwrite",
                &format!("{FAKE_NODE_TAINT}=true:NoSchedule"),
            ],
            None,
        );
        assert!(out.success, "taint the fake nodes: {}", out.text);
        OnlyTheRealNodeSchedules
    }
}

impl Drop for OnlyTheRealNodeSchedules {
    fn drop(&mut self) {
        undo(
            &[
                "taint",
                "nodes",
                "-l",
                "type=kwok",
                &format!("{FAKE_NODE_TAINT}-"),
            ],
            "untaint the fake nodes",
        );
    }
}

/// What the quick start makes goes with the test, passed or failed.
struct QuickStartLeftovers;

impl Drop for QuickStartLeftovers {
    fn drop(&mut self) {
        let examples = repo_root().join("deploy/examples");
        for file in ["quickstart.yaml", "simulators.yaml"] {
            let file = examples.join(file);
            let _ = kubectl(
                &[
                    "delete",
                    "--ignore-not-found",
                    "--wait=false",
                    "-f",
                    file.to_str().unwrap(),
                ],
                None,
            );
        }
        let _ = kubectl(
            &[
                "delete",
                "--ignore-not-found",
                "brokercredential/quickstart",
                "rolebinding/quickstart-viewer",
                "role/quickstart-viewer",
                "serviceaccount/quickstart-viewer",
            ],
            None,
        );
        let _ = std::fs::remove_file(repo_root().join("quickstart-viewer.token"));
    }
}
