//! Referenced Secrets reach the adaptor, and only they do: each adaptor pod
//! has its own ServiceAccount that may read exactly the Secrets its
//! DeviceLinks reference, and a rotated Secret reaches the running adaptor
//! without anyone touching the DeviceLink.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummySpecialDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, SYSTEM_NAMESPACE, apply, begin, create_connected, delete_link_and_wait,
    dummy_link, eventually, eventually_showing, kubectl::can_i, mqtt::Subscriber,
    process::start_operator,
};
use k8s_openapi::{
    ByteString,
    api::{core::v1::Secret, rbac::v1::Role},
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const ADAPTOR: &str = "devicelink-adaptor-dummy-edge-worker";

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Whether RBAC lets the adaptor pod's ServiceAccount do it.
fn adaptor_can(verb: &str, resource: &str, namespace: &str) -> bool {
    let account = format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{ADAPTOR}");
    can_i(&account, verb, resource, namespace)
}

#[tokio::test]
async fn an_adaptor_reads_only_referenced_secrets_and_follows_their_rotation() {
    let namespace = "e2e-reference-access";
    let (_guard, client) = begin(namespace).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for s in [
        secret("fan-mqtt", &[("username", "fan"), ("password", "first")]),
        secret("unrelated", &[("token", "do-not-read")]),
    ] {
        apply(&secrets, &s).await;
    }

    // The broker admits the fan only with the password in the Secret.
    let port = devicelink_e2e::process::free_port();
    let broker = Broker::start_on(port, &[("fan", "first"), ("watcher", "w")]).await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());

    let name = "cellar-fan";
    let mut link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": "cellar"}, "gear": "fast", "on": true,
            "extension": {"mqtt": {
                "client": {
                    "server": broker.url(),
                    "basicAuth": {
                        "usernameRef": {"name": "auth", "item": "username"},
                        "passwordRef": {"name": "auth", "item": "password"},
                    },
                },
                "message": {"topic": "e2e/references/:name"},
            }},
        }}),
    );
    link.spec.references = serde_json::from_value(json!([
        {"name": "auth", "secret": {"name": "fan-mqtt"}},
    ]))
    .unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    create_connected(&links, &link).await;

    // The adaptor pod's own account may read the referenced Secret, and
    // nothing else: not the other Secret, not the list of all Secrets.
    assert!(adaptor_can("get", "secret/fan-mqtt", namespace));
    assert!(!adaptor_can("get", "secret/unrelated", namespace));
    assert!(!adaptor_can("list", "secrets", namespace));
    assert!(!adaptor_can("get", "secret/fan-mqtt", "default"));

    // The device's status shows the connection in effect, never a secret.
    let devices: Api<DummySpecialDevice> = Api::namespaced(client.clone(), namespace);
    let mqtt_status = |want_connected: bool, error: &'static str| {
        let devices = devices.clone();
        async move {
            let device = devices.get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(&device.status).unwrap();
            let mqtt = &status["extension"]["mqtt"];
            let error_seen = mqtt["lastError"].as_str().unwrap_or_default();
            if mqtt["connected"] == want_connected && error_seen.contains(error) {
                Ok(status)
            } else {
                Err(format!("{mqtt}"))
            }
        }
    };
    let status = eventually_showing("status.extension.mqtt connected", WAIT, || {
        mqtt_status(true, "")
    })
    .await;
    let mqtt = &status["extension"]["mqtt"];
    assert_eq!(mqtt["server"], json!(broker.url()));
    assert_eq!(mqtt["topic"], json!(format!("e2e/references/{name}")));
    assert!(
        mqtt["clientID"]
            .as_str()
            .unwrap()
            .starts_with("devicelink-"),
        "{mqtt}"
    );
    assert!(
        !status.to_string().contains("first"),
        "no password in status"
    );

    let topic = format!("e2e/references/{name}");
    let mut subscriber = Subscriber::start_as(port, &topic, Some(("watcher", "w"))).await;
    subscriber.next(WAIT).await;
    drop(subscriber);

    // Rotate: the Secret gets a new password, then the broker is restarted
    // knowing only the new one. Messages flow again only if the adaptor
    // picked the new password up.
    let rotated = secret("fan-mqtt", &[("username", "fan"), ("password", "second")]);
    apply(&secrets, &rotated).await;
    // The adaptor reconnects at once with the new password, which the
    // running broker does not know yet: refused, and the status says so.
    eventually_showing(
        "the refused password in status.extension.mqtt",
        WAIT,
        || mqtt_status(false, "NotAuthorized"),
    )
    .await;
    broker.stop().await;
    let broker = Broker::start_on(port, &[("fan", "second"), ("watcher", "w")]).await;
    let mut subscriber = Subscriber::start_as(port, &topic, Some(("watcher", "w"))).await;
    let after = subscriber.next(WAIT).await;
    assert_eq!(after.topic, topic);
    eventually_showing("connected again", WAIT, || mqtt_status(true, "")).await;
    assert!(
        links.get(name).await.unwrap().metadata.generation == Some(1),
        "nobody touched the DeviceLink"
    );

    // Gone with its last DeviceLink: the grant, then the account.
    delete_link_and_wait(&links, name).await;
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    eventually("the adaptor's Role to be removed", WAIT, || async {
        roles.get_opt(ADAPTOR).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!adaptor_can("get", "secret/fan-mqtt", namespace));
    drop(broker);
}
