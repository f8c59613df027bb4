//! The broker the operator manages (the chart's, with mosquitto's dynamic
//! security plugin): no one connects without an identity; the operator
//! gives each adaptor pod one that reaches only the topics of its own
//! devices, and rotates it without the devices noticing. Each attack is
//! made before a legitimate message whose arrival proves the attack's
//! message was refused: one connection gets messages in the order the
//! broker took them.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_api::broker_credential::BrokerCredential;
use devicelink_e2e::{
    Broker, LocalKubelet, SYSTEM_NAMESPACE, apply, begin, create_connected, delete_links_and_wait,
    dummy_link, eventually, kwok_node,
    mqtt::{self, Subscriber},
    process::{free_port, operator_sharing},
};
use devicelink_e2e::{client_as, eventually_showing};
use k8s_openapi::api::{
    core::v1::{Node, Secret},
    rbac::v1::{Role, RoleBinding},
};
use kube::{Api, api::PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const ADMIN: (&str, &str) = ("admin", "admin-password");
/// Not the chart's name for it: the Helm test installs the chart in the
/// same namespace later.
const ADMIN_SECRET: &str = "e2e-mqtt-admin";
const LOCAL: &str = "127.0.0.1";
const OTHER_NODE: &str = "e2e-identities-other";

#[tokio::test]
async fn each_adaptor_reaches_only_its_devices_and_its_identity_rotates() {
    let namespace = "e2e-identities";
    let (_guard, client) = begin(namespace).await;
    let (broker, system) = managed_broker(&client).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .create(&PostParams::default(), &kwok_node(OTHER_NODE))
        .await;
    let operator = operator_of(
        &broker,
        &[
            "--broker-identity-rotation",
            "40s",
            "--broker-identity-overlap",
            "5s",
        ],
    );
    let _kubelet = LocalKubelet::start(client.clone());

    // Two fans on two nodes, on the managed broker with no credentials of
    // their own: each adaptor connects with the identity it was given.
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &fan(&broker, namespace, "fan", "edge-worker")).await;
    create_connected(&links, &fan(&broker, namespace, "pump", OTHER_NODE)).await;

    // No anonymous client, nor a wrong password.
    assert!(
        mqtt::admits(LOCAL, broker.port, None).await.is_err(),
        "an anonymous client must be refused"
    );
    assert!(
        mqtt::admits(LOCAL, broker.port, Some(("devicelink-console/a", "guess")))
            .await
            .is_err(),
        "a wrong password must be refused"
    );

    let pump_status = format!("cattle.io/octopus/{namespace}/pump");
    let pump_write = format!("{pump_status}/$write");
    let mut status = Subscriber::start_as(broker.port, &pump_status, Some(ADMIN)).await;
    let first = status.next(WAIT).await;
    assert_eq!(first.payload["gear"], "slow", "{first:?}");
    let mut replies =
        Subscriber::start_as(broker.port, &format!("{pump_write}/$reply"), Some(ADMIN)).await;

    // edge-worker's adaptor identity, as someone who took it from that
    // node would use it: it may not drive, nor speak for, another node's
    // device.
    let stolen = identity(&system, "devicelink-adaptor-dummy-edge-worker-mqtt").await;
    let as_user = |user: &(String, String), topic: &str, payload: &'static [u8]| {
        let (user, topic, port) = (user.clone(), topic.to_string(), broker.port);
        async move { mqtt::publish_as(port, Some((&user.0, &user.1)), &topic, payload).await }
    };
    as_user(&stolen, &pump_write, br#"{"gear": "fast"}"#).await;
    as_user(&stolen, &pump_status, br#"{"gear": "forged"}"#).await;
    let console = identity(&system, "devicelink-console-mqtt").await;
    as_user(&console, &pump_write, br#"{"gear": "middle"}"#).await;
    let answer = replies.next(WAIT).await;
    assert_eq!(
        answer.payload,
        json!({"ok": true, "applied": {"gear": "middle"}}),
        "another node's adaptor identity must not write this device"
    );
    status
        .next_matching_unless(
            WAIT,
            |m| m["gear"] == "middle",
            |m| m["gear"] == "forged",
            "another node's adaptor identity must not publish this device's status",
        )
        .await;

    // Rotation: the Secret moves to the other username with a new password;
    // the adaptor follows and its device still takes writes, and a while
    // later the old password is refused.
    let rotated = eventually("the identity to rotate", Duration::from_secs(120), || {
        let system = system.clone();
        let stolen = stolen.clone();
        async move {
            let now = identity(&system, "devicelink-adaptor-dummy-edge-worker-mqtt").await;
            (now.0 != stolen.0).then_some(now)
        }
    })
    .await;
    assert_ne!(rotated.1, stolen.1, "a rotation gives a new password");
    eventually("the old password to be refused", WAIT, || async {
        mqtt::admits(LOCAL, broker.port, Some((&stolen.0, &stolen.1)))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert_eq!(
        mqtt::admits(LOCAL, broker.port, Some((&rotated.0, &rotated.1))).await,
        Ok(()),
        "the new identity must be taken"
    );
    let fan_write = format!("cattle.io/octopus/{namespace}/fan/$write");
    let mut fan_replies =
        Subscriber::start_as(broker.port, &format!("{fan_write}/$reply"), Some(ADMIN)).await;
    let console = identity(&system, "devicelink-console-mqtt").await;
    as_user(&console, &fan_write, br#"{"gear": "fast"}"#).await;
    let answer = fan_replies.next(WAIT).await;
    assert_eq!(
        answer.payload,
        json!({"ok": true, "applied": {"gear": "fast"}}),
        "the adaptor must work on with its rotated identity"
    );

    delete_links_and_wait(&links, &["fan", "pump"]).await;
    // Identities no DeviceLink needs any more go (the next full pass).
    eventually(
        "the adaptor identities to go",
        Duration::from_secs(120),
        || {
            let system = system.clone();
            async move {
                system
                    .get_opt("devicelink-adaptor-dummy-edge-worker-mqtt")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    operator.stop().await;
    remove_broker_identities(&client).await;
    let _ = nodes.delete(OTHER_NODE, &Default::default()).await;
}

/// Who asks for credentials: Carol may update the DeviceLinks of the first
/// namespace, Dave may only get them; both may create BrokerCredentials in
/// both namespaces (the admission policy, not RBAC, decides).
const CAROL: &str = "e2e-carol";
const DAVE: &str = "e2e-dave";

#[tokio::test]
async fn a_broker_credential_writes_only_where_its_author_may_update_devicelinks() {
    let namespace = "e2e-credentials";
    let other = "e2e-credentials-other";
    let (_guard, client) = begin(namespace).await;
    devicelink_e2e::ensure_namespace(&client, other).await;
    let (broker, system) = managed_broker(&client).await;
    let operator = operator_of(&broker, &[]);
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let other_links: Api<DeviceLink> = Api::namespaced(client.clone(), other);
    create_connected(&links, &fan(&broker, namespace, "fan", "edge-worker")).await;
    create_connected(&other_links, &fan(&broker, other, "boiler", "edge-worker")).await;

    for (ns, user, verbs) in [
        (namespace, CAROL, json!(["get", "list", "watch", "update"])),
        (namespace, DAVE, json!(["get", "list", "watch"])),
    ] {
        let role = format!("{user}-devicelinks");
        apply(
            &Api::<Role>::namespaced(client.clone(), ns),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": role, "namespace": ns},
                "rules": [{"apiGroups": ["edge.cattle.io"], "resources": ["devicelinks"], "verbs": verbs}]}),
        )
        .await;
        apply(
            &Api::<RoleBinding>::namespaced(client.clone(), ns),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": role, "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    }
    for ns in [namespace, other] {
        for user in [CAROL, DAVE] {
            let name = format!("{user}-credentials");
            apply(
                &Api::<RoleBinding>::namespaced(client.clone(), ns),
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "devicelink-broker-credentials-edit"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
            )
            .await;
        }
    }
    let credential = |ns: &str, name: &str, access: &str| -> BrokerCredential {
        serde_json::from_value(
            json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "BrokerCredential",
            "metadata": {"name": name, "namespace": ns}, "spec": {"access": access}}),
        )
        .unwrap()
    };
    let create = PostParams::default();
    let as_user = |user: &'static str, ns: &'static str| async move {
        Api::<BrokerCredential>::namespaced(client_as(user).await, ns)
    };

    // Carol may update the first namespace's DeviceLinks: her writer is
    // taken (once her Roles reach the authorizer). Dave may only get them,
    // and Carol may not update the other namespace's: both are refused,
    // saying why.
    let carols = as_user(CAROL, namespace).await;
    eventually_showing("Carol's writer credential to be taken", WAIT, || async {
        carols
            .create(&create, &credential(namespace, "carol", "Write"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    // (Each user's bindings reach the authorizer a moment after they are
    // made: a refusal counts once it is the policy's.)
    let refused_by_policy = |user: &'static str, ns: &'static str, why: String| async move {
        let credentials = as_user(user, ns).await;
        eventually_showing(
            &format!("{user}'s writer in {ns} refused"),
            WAIT,
            || async {
                match credentials
                    .create(&PostParams::default(), &credential(ns, "writer", "Write"))
                    .await
                {
                    Err(kube::Error::Api(e)) if e.message.contains(&why) => Ok(()),
                    other => Err(format!("{:?}", other.map(|_| ()))),
                }
            },
        )
        .await;
    };
    refused_by_policy(
        DAVE,
        namespace,
        format!("{DAVE} may not update DeviceLinks in namespace {namespace}"),
    )
    .await;
    refused_by_policy(
        CAROL,
        other,
        format!("{CAROL} may not update DeviceLinks in namespace {other}"),
    )
    .await;
    // A reader is Dave's to have.
    as_user(DAVE, namespace)
        .await
        .create(&create, &credential(namespace, "dave", "Read"))
        .await
        .expect("Dave's reader credential");

    // The operator issues Carol's: a Secret in her namespace, named in the
    // status. With it she writes her namespace's fan, not the other's boiler.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let carol = identity(&secrets, "carol-broker-credential").await;
    let boiler_write = format!("cattle.io/octopus/{other}/boiler/$write");
    let mut boiler_replies =
        Subscriber::start_as(broker.port, &format!("{boiler_write}/$reply"), Some(ADMIN)).await;
    let publish = |user: &(String, String), topic: &str, payload: &'static [u8]| {
        let (user, topic, port) = (user.clone(), topic.to_string(), broker.port);
        async move { mqtt::publish_as(port, Some((&user.0, &user.1)), &topic, payload).await }
    };
    let fan_write = format!("cattle.io/octopus/{namespace}/fan/$write");
    // Everything she subscribes to brings her namespace's messages only
    // (the boiler's retained status included, which would come first).
    let mut seen_by_carol = Subscriber::start_as(
        broker.port,
        "cattle.io/octopus/#",
        Some((&carol.0, &carol.1)),
    )
    .await;
    let mut answer_for_carol = async |wanted: serde_json::Value| {
        loop {
            let m = seen_by_carol.next(WAIT).await;
            assert!(
                m.topic
                    .starts_with(&format!("cattle.io/octopus/{namespace}/")),
                "a credential must not receive another namespace's messages: {m:?}"
            );
            if m.topic == format!("{fan_write}/$reply") {
                assert_eq!(m.payload["applied"], wanted, "{m:?}");
                return;
            }
        }
    };
    let console = identity(&system, "devicelink-console-mqtt").await;
    publish(&carol, &boiler_write, br#"{"gear": "fast"}"#).await;
    publish(&console, &boiler_write, br#"{"gear": "middle"}"#).await;
    assert_eq!(
        boiler_replies.next(WAIT).await.payload["applied"],
        json!({"gear": "middle"}),
        "a credential of one namespace must not write another's device"
    );
    publish(&carol, &fan_write, br#"{"gear": "middle"}"#).await;
    answer_for_carol(json!({"gear": "middle"})).await;
    // A reader's write is refused: the next answer is to Carol's after it.
    let dave = identity(&secrets, "dave-broker-credential").await;
    publish(&dave, &fan_write, br#"{"gear": "fast"}"#).await;
    publish(&carol, &fan_write, br#"{"gear": "slow"}"#).await;
    answer_for_carol(json!({"gear": "slow"})).await;
    drop(seen_by_carol);

    // Withdrawn: its Secret and its username go.
    Api::<BrokerCredential>::namespaced(client.clone(), namespace)
        .delete("carol", &Default::default())
        .await
        .expect("delete the credential");
    eventually(
        "Carol's username to be refused",
        Duration::from_secs(120),
        || async {
            mqtt::admits(LOCAL, broker.port, Some((&carol.0, &carol.1)))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;

    delete_links_and_wait(&links, &["fan"]).await;
    delete_links_and_wait(&other_links, &["boiler"]).await;
    operator.stop().await;
    remove_broker_identities(&client).await;
}

/// Removes what the operator made for the broker in the system namespace
/// (it removes identities no DeviceLink needs only while it runs) and the
/// admin's Secret: the Helm test installs the chart there later.
async fn remove_broker_identities(client: &kube::Client) {
    let labels =
        kube::api::ListParams::default().labels("app.kubernetes.io/component=broker-identity");
    let params = kube::api::DeleteParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let _ = secrets.delete_collection(&params, &labels).await;
    let _ = secrets.delete(ADMIN_SECRET, &params).await;
    let roles: Api<Role> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let _ = roles.delete_collection(&params, &labels).await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let _ = bindings.delete_collection(&params, &labels).await;
}

/// mosquitto with the dynamic security plugin, and its admin's Secret where
/// the operator looks for it (the system namespace's Secrets).
async fn managed_broker(client: &kube::Client) -> (Broker, Api<Secret>) {
    let broker = Broker::mosquitto_dynsec(free_port(), ADMIN.1).await;
    let system: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    apply(
        &system,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": ADMIN_SECRET, "namespace": SYSTEM_NAMESPACE},
                "stringData": {"username": ADMIN.0, "password": ADMIN.1}}),
    )
    .await;
    (broker, system)
}

/// An operator managing `broker` (and the console's identity there), with
/// `more` flags.
fn operator_of(broker: &Broker, more: &[&str]) -> devicelink_e2e::process::Operator {
    let url = broker.url();
    let mut args = vec![
        "--managed-broker",
        &url,
        "--managed-broker-admin-secret",
        ADMIN_SECRET,
        "--grant-console",
    ];
    args.extend(more);
    operator_sharing("operator", true, &args)
}

/// A fan on `broker` with no credentials of its own: its adaptor connects
/// with the identity the operator gave it.
fn fan(broker: &Broker, namespace: &str, name: &str, node: &str) -> DeviceLink {
    dummy_link(
        namespace,
        name,
        node,
        json!({"spec": {
            "protocol": {"location": "plant"}, "gear": "slow", "on": false,
            "extension": {"mqtt": {
                "client": {"server": broker.url()},
                "message": {"topic": "cattle.io/octopus/:namespace/:name", "qos": 1},
            }},
        }}),
    )
}

/// The username and password an identity Secret holds now.
async fn identity(secrets: &Api<Secret>, name: &str) -> (String, String) {
    let secret = eventually(&format!("Secret {name}"), WAIT, || async {
        secrets.get_opt(name).await.unwrap()
    })
    .await;
    let item =
        |key: &str| String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).expect("text");
    (item("username"), item("password"))
}
