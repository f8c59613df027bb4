//! A tenant who may create DeviceLinks but not read a Secret cannot make
//! the adaptor read it for them: the chart's ValidatingAdmissionPolicy
//! (deploy/manifests/rbac.yaml here) refuses a DeviceLink whose author may
//! not `get` every Secret and ConfigMap its spec.references name, with a
//! message naming who, what and why. Granted access, the same DeviceLink
//! is taken and any change of it too. Once access is withdrawn, any change
//! of the spec is refused (a new server, another `*Ref` item, another node
//! would each send the Secret somewhere its author chose); an update of
//! the metadata alone is still taken. The same for a KafkaBridge, and for
//! the Secrets a DeviceDiscovery names for the DeviceLinks it adopts.

use devicelink_api::{DeviceLink, discovery::DeviceDiscovery, kafka_bridge::KafkaBridge};
use devicelink_e2e::{apply, begin, client_as, device_link, eventually_showing};
use k8s_openapi::api::{
    core::v1::{ConfigMap, Secret},
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use std::time::Duration;

const TENANT: &str = "e2e-tenant";
const WAIT: Duration = Duration::from_secs(30);

/// A fan whose MQTT credentials come from the Secret `secret` (and, with
/// `ca`, its CA from the ConfigMap `ca`).
fn fan(namespace: &str, secret: &str, ca: Option<&str>) -> DeviceLink {
    let mut link = device_link(
        namespace,
        "porch-fan",
        "edge-worker",
        "dummy",
        "DummySpecialDevice",
        json!({"spec": {
            "protocol": {"location": "porch"}, "gear": "slow",
            "extension": {"mqtt": {
                "client": {"server": "tcp://broker.example:1883",
                           "basicAuth": {"usernameRef": {"name": "creds", "item": "username"},
                                         "passwordRef": {"name": "creds", "item": "password"}}},
                "message": {"topic": "porch/fan"},
            }},
        }}),
    );
    let mut references = vec![json!({"name": "creds", "secret": {"name": secret}})];
    if let Some(ca) = ca {
        references.push(json!({"name": "ca", "configMap": {"name": ca}}));
    }
    link.spec.references = serde_json::from_value(Value::Array(references)).unwrap();
    link
}

/// A merge patch that points the fan's MQTT extension at `url`.
fn server(url: &str) -> Value {
    json!({"spec": {"template": {"spec": {"extension": {"mqtt": {"client": {"server": url}}}}}}})
}

/// The API server's refusal of `result`, or a panic if it was taken.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            e.message
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Lets the tenant do anything with `resource` (of edge.cattle.io) in
/// `namespace`, and nothing else; and binds the role `read-plant-mqtt`
/// (made by [`allow_reading_the_secret`]) to them.
async fn tenant_may_write(namespace: &str, admin: &kube::Client, resource: &str) {
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    let author = format!("{resource}-author");
    apply(
        &roles,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": author, "namespace": namespace},
        "rules": [{"apiGroups": ["edge.cattle.io"], "resources": [resource], "verbs": ["*"]}]}),
    )
    .await;
    for role in [author.as_str(), "read-plant-mqtt"] {
        apply(&bindings, &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}]})).await;
    }
}

/// The role `read-plant-mqtt`: `get` of that one Secret, by name.
/// The message of the refusal `attempt` meets for naming a Secret in
/// `spec.references`. RBAC is read as it is at the request, so the first
/// attempts wait for the tenant's Role to be in the authorizer's cache.
async fn refused_for_references<T, F, Fut>(attempt: F) -> String
where
    T: std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    eventually_showing("the tenant's Role to take effect", WAIT, || async {
        match attempt().await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("spec.references") => {
                Ok(e.message)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn allow_reading_the_secret(roles: &Api<Role>, namespace: &str) {
    apply(
        roles,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "read-plant-mqtt", "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                   "resourceNames": ["plant-mqtt"]}]}),
    )
    .await;
}

#[tokio::test]
async fn only_who_may_read_a_secret_may_reference_it() {
    let namespace = "e2e-tenant-references";
    let (_guard, admin) = begin(namespace).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), namespace);
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    let admin_links: Api<DeviceLink> = Api::namespaced(admin.clone(), namespace);
    let _ = admin_links
        .delete("porch-fan", &DeleteParams::default())
        .await;
    let _ = roles
        .delete("read-plant-mqtt", &DeleteParams::default())
        .await;

    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plant-mqtt", "namespace": namespace},
        "stringData": {"username": "plant", "password": "s3cret"}}),
    )
    .await;
    apply(
        &config_maps,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plant-ca", "namespace": namespace},
        "data": {"ca.crt": "not read here"}}),
    )
    .await;
    // The tenant may do anything with DeviceLinks here, and nothing else.
    tenant_may_write(namespace, &admin, "devicelinks").await;
    let tenant_links: Api<DeviceLink> = Api::namespaced(client_as(TENANT).await, namespace);
    let create = PostParams::default();

    // Referencing a Secret the tenant may not read: refused, naming who,
    // which Secret and why.
    let message = refused_for_references(|| async {
        tenant_links
            .create(&create, &fan(namespace, "plant-mqtt", None))
            .await
    })
    .await;
    assert!(
        message.contains(
            "e2e-tenant may not get every Secret this DeviceLink references (plant-mqtt)"
        ) && message.contains("since the adaptor reads it on their behalf"),
        "{message}"
    );

    // Allowed to read that one Secret (by name): the same DeviceLink is taken.
    allow_reading_the_secret(&roles, namespace).await;
    eventually_showing(
        "the DeviceLink to be taken once the Secret may be read",
        WAIT,
        || async {
            tenant_links
                .create(&create, &fan(namespace, "plant-mqtt", None))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;

    // Adding a ConfigMap it may not read: refused, naming the ConfigMap.
    let message = refusal(
        tenant_links
            .patch(
                "porch-fan",
                &PatchParams::apply("e2e-tenant").force(),
                &Patch::Apply(&fan(namespace, "plant-mqtt", Some("plant-ca"))),
            )
            .await,
    );
    assert!(
        message.contains("ConfigMap this DeviceLink references (plant-ca)"),
        "{message}"
    );

    // Who may read the Secret may point the DeviceLink anywhere.
    tenant_links
        .patch(
            "porch-fan",
            &PatchParams::default(),
            &Patch::Merge(server("tcp://other-broker.example:1883")),
        )
        .await
        .expect("a reader of the Secret changes the server");

    // Access withdrawn: each way of sending the Secret somewhere else is
    // refused, naming the Secret and why.
    roles
        .delete("read-plant-mqtt", &DeleteParams::default())
        .await
        .expect("withdraw the tenant's access to the Secret");
    let attacks = [
        ("another server", server("tcp://127.0.0.1:18999")),
        (
            "another key of the Secret",
            json!({"spec": {"template": {"spec": {"extension": {"mqtt": {"client": {
                "basicAuth": {"passwordRef": {"name": "creds", "item": "username"}}}}}}}}}),
        ),
        (
            "another node, whose adaptor would be granted the Secret",
            json!({"spec": {"adaptor": {"node": "other-node"}}}),
        ),
    ];
    for (what, patch) in attacks {
        let message = eventually_showing(
            &format!("{what} to be refused once access is withdrawn"),
            WAIT,
            || async {
                match tenant_links
                    .patch("porch-fan", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Err(kube::Error::Api(e)) if e.code == 403 => Ok(e.message),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert!(
            message.contains(
                "e2e-tenant may not get every Secret this DeviceLink references (plant-mqtt)"
            ) && message.contains("change the spec of a DeviceLink that does"),
            "{what}: {message}"
        );
    }
    let kept = admin_links.get("porch-fan").await.expect("the DeviceLink");
    let kept = serde_json::to_value(&kept.spec).unwrap();
    assert_eq!(
        kept["template"]["spec"]["extension"]["mqtt"]["client"]["server"],
        "tcp://other-broker.example:1883",
        "{kept}"
    );
    assert_eq!(kept["adaptor"]["node"], "edge-worker", "{kept}");

    // An update of the metadata alone (a label) is still taken: it sends
    // nothing anywhere.
    eventually_showing("a label update to be taken", WAIT, || async {
        tenant_links
            .patch(
                "porch-fan",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"room": "porch"}}})),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    admin_links
        .delete("porch-fan", &DeleteParams::default())
        .await
        .expect("delete the DeviceLink");
}

/// The same holds for a KafkaBridge: the bridge reads what its
/// spec.references name on its author's behalf and sends it to the broker
/// its spec names.
#[tokio::test]
async fn only_who_may_read_a_secret_may_reference_it_from_a_kafka_bridge() {
    let namespace = "e2e-tenant-bridge";
    let (_guard, admin) = begin(namespace).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plant-mqtt", "namespace": namespace},
        "stringData": {"password": "s3cret"}}),
    )
    .await;
    tenant_may_write(namespace, &admin, "kafkabridges").await;
    let bridge = |server: &str| -> KafkaBridge {
        serde_json::from_value(json!({
            "apiVersion": "edge.cattle.io/v1alpha1", "kind": "KafkaBridge",
            "metadata": {"name": "plant-data", "namespace": namespace},
            "spec": {
                "references": [{"name": "creds", "secret": {"name": "plant-mqtt"}}],
                "source": {"client": {"server": server, "basicAuth": {"username": "plant",
                    "passwordRef": {"name": "creds", "item": "password"}}}, "topics": ["plant/#"]},
                "sink": {"bootstrapServers": ["kafka.plant:9092"], "topic": "plant"},
            },
        }))
        .unwrap()
    };
    let tenant_bridges: Api<KafkaBridge> = Api::namespaced(client_as(TENANT).await, namespace);
    let message = refused_for_references(|| async {
        tenant_bridges
            .create(&PostParams::default(), &bridge("tcp://broker.example:1883"))
            .await
    })
    .await;
    assert!(
        message.contains(
            "e2e-tenant may not get every Secret this KafkaBridge references (plant-mqtt)"
        ) && message.contains("since the bridge reads it on their behalf"),
        "{message}"
    );
    allow_reading_the_secret(&roles, namespace).await;
    eventually_showing(
        "the KafkaBridge to be taken once the Secret may be read",
        WAIT,
        || async {
            tenant_bridges
                .create(&PostParams::default(), &bridge("tcp://broker.example:1883"))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    roles
        .delete("read-plant-mqtt", &DeleteParams::default())
        .await
        .expect("withdraw the tenant's access to the Secret");
    let message = eventually_showing("another broker to be refused", WAIT, || async {
        match tenant_bridges
            .patch(
                "plant-data",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"spec": {"source": {"client": {"server": "tcp://127.0.0.1:18999"}}}}),
                ),
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 403 => Ok(e.message),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        message.contains("change the spec of a KafkaBridge that does"),
        "{message}"
    );
    Api::<KafkaBridge>::namespaced(admin, namespace)
        .delete("plant-data", &DeleteParams::default())
        .await
        .expect("delete the KafkaBridge");
}

/// The same holds for a DeviceDiscovery: the Secrets its spec.references
/// name go into the DeviceLinks adopted from
/// its finds, at addresses its scans chose. (A DeviceTemplate names no
/// Secret, only an entry a discovery binds: modbus_catalog.rs.)
#[tokio::test]
async fn only_who_may_read_a_secret_may_name_it_for_adopted_devices() {
    let namespace = "e2e-tenant-discovery";
    let (_guard, admin) = begin(namespace).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    let _ = roles
        .delete("read-plant-mqtt", &DeleteParams::default())
        .await;
    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plant-mqtt", "namespace": namespace},
        "stringData": {"username": "plant", "password": "s3cret"}}),
    )
    .await;
    let admin_discoveries: Api<DeviceDiscovery> = Api::namespaced(admin.clone(), namespace);
    let _ = admin_discoveries
        .delete("office", &DeleteParams::default())
        .await;
    tenant_may_write(namespace, &admin, "devicediscoveries").await;
    // A BLE discovery: no address range to allow, only the references.
    let discovery = json!({
        "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
        "metadata": {"name": "office", "namespace": namespace},
        "spec": {"node": "edge-worker", "ble": {"names": ["MJ_HT"]},
                 "references": [{"name": "creds", "secret": {"name": "plant-mqtt"}}],
                 "deviceLinks": {
                     "extension": {"mqtt": {"client": {"server": "tcp://broker.example:1883",
                         "basicAuth": {"usernameRef": {"name": "creds", "item": "username"},
                                       "passwordRef": {"name": "creds", "item": "password"}}},
                         "message": {"topic": "office/:name"}}}}}});
    let tenant_discoveries: Api<DeviceDiscovery> =
        Api::namespaced(client_as(TENANT).await, namespace);
    let apply_as_tenant = || async {
        tenant_discoveries
            .patch(
                "office",
                &PatchParams::apply("e2e-tenant").force(),
                &Patch::Apply(&discovery),
            )
            .await
    };
    let message = refused_for_references(apply_as_tenant).await;
    assert!(
        message.contains(
            "e2e-tenant may not get every Secret this DeviceDiscovery references (plant-mqtt)"
        ) && message.contains(
            "since the adaptor that scans, or of each DeviceLink adopted from its finds, reads it"
        ),
        "{message}"
    );
    allow_reading_the_secret(&roles, namespace).await;
    eventually_showing(
        "the DeviceDiscovery to be taken once the Secret may be read",
        WAIT,
        || async {
            apply_as_tenant()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
}
