//! The operator's own rights are no wider than what it does: with its
//! ServiceAccount's token one can manage adaptor identities and nothing
//! else. RBAC cannot name objects before they exist, so the chart's
//! `devicelink-operator-writes` policy does that part; RBAC names the rest
//! (the leader Lease, no plain updates of DeviceLinks).

use std::time::Duration;

use devicelink_e2e::{
    SYSTEM_NAMESPACE, apply, begin, client_as, eventually_showing, kubectl::can_i,
};
use k8s_openapi::api::{
    core::v1::{Pod, Secret, ServiceAccount},
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NAMESPACE: &str = "e2e-operator-rights";
const WAIT: Duration = Duration::from_secs(30);

fn operator_account() -> String {
    format!("system:serviceaccount:{SYSTEM_NAMESPACE}:devicelink-operator")
}

fn typed<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a well-formed object")
}

fn owned_meta(name: &str, namespace: Option<&str>) -> Value {
    json!({"name": name, "namespace": namespace,
           "labels": {"app.kubernetes.io/managed-by": "devicelink-operator"}})
}

/// The ServiceAccount `name` in the operator's namespace (an adaptor pod's,
/// or the console's).
fn adaptor_subject(name: &str) -> Value {
    json!([{"kind": "ServiceAccount", "name": name, "namespace": SYSTEM_NAMESPACE}])
}

/// The API server's refusal of `result`: its message, which must come from
/// admission (the operator policy), not from RBAC.
fn refusal<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> String {
    refusal_by("devicelink-operator-writes", what, result)
}

/// The API server's refusal of a pod by the adaptor pod policy: its message.
fn pod_refusal<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> String {
    refusal_by("devicelink-adaptor-pods", what, result)
}

fn refusal_by<T: std::fmt::Debug>(policy: &str, what: &str, result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
            assert!(
                e.message.contains(policy),
                "{what}: refused, but not by {policy}: {}",
                e.message
            );
            e.message
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// An adaptor pod of the dummy kind as the operator makes it, in the shape
/// the chart's default settings allow.
fn adaptor_pod(name: &str) -> Value {
    let mut meta = owned_meta(name, Some(SYSTEM_NAMESPACE));
    meta["labels"]["edge.cattle.io/adaptor"] = json!("dummy");
    json!({"metadata": meta, "spec": {
        "serviceAccountName": name,
        "containers": [{"name": "adaptor",
            "image": format!("ghcr.io/devicelink/adaptor-dummy:{}", env!("CARGO_PKG_VERSION")),
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/devicelink"}]}],
        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
    }})
}

/// Whether RBAC lets the operator's ServiceAccount do it.
fn operator_can(verb: &str, resource: &str, namespace: &str) -> bool {
    can_i(&operator_account(), verb, resource, namespace)
}

#[tokio::test]
async fn the_operator_account_manages_adaptor_identities_and_nothing_else() {
    let (_guard, admin) = begin(NAMESPACE).await;
    let operator = client_as(&operator_account()).await;
    let create = PostParams::default();

    // Someone else's binding, which the operator's RBAC alone would let it
    // delete or rewrite (it may bind this ClusterRole).
    let admin_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let foreign = "e2e-plant-viewers";
    let _ = admin_bindings
        .delete(foreign, &DeleteParams::default())
        .await;
    admin_bindings
        .create(
            &create,
            &typed(json!({"metadata": {"name": foreign},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devicelink-adaptor-dummy"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]})),
        )
        .await
        .expect("the admin creates a binding");

    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(operator.clone());
    // Policies reach the API server's admission a moment after they are
    // installed; the first refusal shows that this one is in force.
    let message = eventually_showing("the operator policy to refuse", WAIT, || async {
        match cluster_bindings
            .delete(foreign, &DeleteParams::default())
            .await
        {
            Err(kube::Error::Api(e)) if e.message.contains("devicelink-operator-writes") => {
                Ok(e.message)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        message.contains(
            "devicelink-operator may create, change and delete only adaptor identities (named devicelink-adaptor-<kind>-<node>) and the console and bridge grants (Roles and RoleBindings named devicelink-console or devicelink-bridge), not clusterrolebindings e2e-plant-viewers"
        ),
        "{message}"
    );
    refusal(
        "rewriting a foreign binding",
        cluster_bindings
            .patch(
                foreign,
                &PatchParams::default(),
                &Patch::Merge(json!({"subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]})),
            )
            .await,
    );
    assert!(admin_bindings.get_opt(foreign).await.unwrap().is_some());

    // An adaptor-named binding that binds someone else: refused.
    let name = "devicelink-adaptor-dummy-e2e-rights";
    let message = refusal(
        "binding a user to an adaptor ClusterRole",
        cluster_bindings
            .create(
                &create,
                &typed(json!({"metadata": owned_meta(name, None),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devicelink-adaptor-dummy"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]})),
            )
            .await,
    );
    assert!(
        message.contains("clusterrolebindings devicelink-adaptor-dummy-e2e-rights may bind only the adaptor ServiceAccount of the same name to an adaptor kind's ClusterRole"),
        "{message}"
    );
    // The shape the operator makes is admitted, and it can remove it again.
    cluster_bindings
        .create(
            &create,
            &typed(json!({"metadata": owned_meta(name, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devicelink-adaptor-dummy"},
                "subjects": adaptor_subject(name)})),
        )
        .await
        .expect("an adaptor identity binding is admitted");
    cluster_bindings
        .delete(name, &DeleteParams::default())
        .await
        .expect("the operator removes its own binding");

    // Handing a tenant's Secrets to another subject: RBAC would allow it
    // (the operator holds get on Secrets); the policy does not.
    let roles: Api<Role> = Api::namespaced(operator.clone(), NAMESPACE);
    let bindings: Api<RoleBinding> = Api::namespaced(operator.clone(), NAMESPACE);
    let _ = roles.delete(name, &DeleteParams::default()).await;
    let message = refusal(
        "a Role reading every Secret",
        roles
            .create(
                &create,
                &typed(json!({"metadata": owned_meta(name, Some(NAMESPACE)),
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})),
            )
            .await,
    );
    assert!(
        message.contains("roles devicelink-adaptor-dummy-e2e-rights may grant only get, list and watch of Secrets and ConfigMaps named in resourceNames"),
        "{message}"
    );
    roles
        .create(
            &create,
            &typed(json!({"metadata": owned_meta(name, Some(NAMESPACE)),
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["plant-mqtt"], "verbs": ["get", "list", "watch"]}]})),
        )
        .await
        .expect("a grant of named Secrets is admitted");
    let message = refusal(
        "binding the grant to a user",
        bindings
            .create(
                &create,
                &typed(json!({"metadata": owned_meta(name, Some(NAMESPACE)),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]})),
            )
            .await,
    );
    assert!(
        message.contains("rolebindings devicelink-adaptor-dummy-e2e-rights may bind only the ServiceAccount of the same name to the Role of the same name"),
        "{message}"
    );
    let message = refusal(
        "an unlabelled binding under another name",
        bindings
            .create(
                &create,
                &typed(json!({"metadata": {"name": "secret-readers"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                    "subjects": adaptor_subject(name)})),
            )
            .await,
    );
    assert!(
        message.contains("not rolebindings secret-readers"),
        "{message}"
    );
    roles
        .delete(name, &DeleteParams::default())
        .await
        .expect("the operator removes its own Role");

    // The console's grant: a Role of named Secrets bound to the console's
    // ServiceAccount is admitted; bound to anyone else, or under the
    // console's name cluster-wide, it is not.
    let console = "devicelink-console";
    let _ = bindings.delete(console, &DeleteParams::default()).await;
    let _ = roles.delete(console, &DeleteParams::default()).await;
    roles
        .create(
            &create,
            &typed(json!({"metadata": owned_meta(console, Some(NAMESPACE)),
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["plant-mqtt"], "verbs": ["get", "list", "watch"]}]})),
        )
        .await
        .expect("the console's grant of named Secrets is admitted");
    let message = refusal(
        "binding the console's grant to a user",
        bindings
            .create(
                &create,
                &typed(json!({"metadata": owned_meta(console, Some(NAMESPACE)),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": console},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]})),
            )
            .await,
    );
    assert!(
        message.contains(
            "rolebindings devicelink-console may bind only the ServiceAccount of the same name"
        ),
        "{message}"
    );
    bindings
        .create(
            &create,
            &typed(json!({"metadata": owned_meta(console, Some(NAMESPACE)),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": console},
                "subjects": adaptor_subject(console)})),
        )
        .await
        .expect("the console's grant bound to the console's ServiceAccount is admitted");
    let message = refusal(
        "a cluster-wide binding under the console's name",
        cluster_bindings
            .create(
                &create,
                &typed(json!({"metadata": owned_meta(console, None),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "devicelink-adaptor-dummy"},
                    "subjects": adaptor_subject(console)})),
            )
            .await,
    );
    assert!(
        message.contains("not clusterrolebindings devicelink-console"),
        "{message}"
    );
    bindings
        .delete(console, &DeleteParams::default())
        .await
        .expect("the operator removes the console's binding");
    roles
        .delete(console, &DeleteParams::default())
        .await
        .expect("the operator removes the console's Role");

    // A pod in the operator's namespace running as the operator (or any
    // account but its own adaptor one): refused.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
    apply(
        &accounts,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(operator.clone(), SYSTEM_NAMESPACE);
    // (What a failed run may have left.)
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
    let _ = admin_pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
    eventually_showing("no pod left by an earlier run", WAIT, || async {
        match admin_pods.get_opt(name).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let mut as_operator = adaptor_pod(name);
    as_operator["spec"]["serviceAccountName"] = json!("devicelink-operator");
    let message = refusal(
        "a pod running as the operator",
        pods.create(&create, &typed(as_operator)).await,
    );
    assert!(
        message.contains("pods devicelink-adaptor-dummy-e2e-rights must run as the adaptor ServiceAccount of the same name"),
        "{message}"
    );

    // Pods of another shape than an adaptor's (the chart's
    // devicelink-adaptor-pods policy, from the adaptor settings): the
    // attack a stolen operator token would try first, a privileged pod
    // mounting the host's / on a node of its choice; then each way out
    // of an adaptor pod's bounds alone.
    let mut escape = adaptor_pod(name);
    escape["spec"]["nodeName"] = json!("far-node");
    escape["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    escape["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "host", "mountPath": "/host"}]);
    escape["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/"}}]);
    pod_refusal(
        "a privileged pod mounting / on another node",
        pods.create(&create, &typed(escape)).await,
    );
    // What is changed, how, and what the refusal says.
    type Shape = (&'static str, fn(&mut Value), &'static str);
    let shapes: [Shape; 6] = [
        (
            "the host's /",
            |p| {
                p["spec"]["containers"][0]["volumeMounts"] =
                    json!([{"name": "host", "mountPath": "/host"}]);
                p["spec"]["volumes"] =
                    json!([{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}]);
            },
            "may mount only its data volume, its token and, from the host, the dummy adaptor's serial devices []",
        ),
        (
            "privileged",
            |p| p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true}),
            "may be privileged only when the dummy adaptor has serial devices",
        ),
        (
            "the node's network",
            |p| p["spec"]["hostNetwork"] = json!(true),
            "may not share the node's network, process or IPC namespace",
        ),
        (
            "another image",
            |p| p["spec"]["containers"][0]["image"] = json!("example.com/miner:1"),
            "must run one container of the dummy adaptor image",
        ),
        (
            "a Secret in its environment",
            |p| {
                p["spec"]["containers"][0]["env"] = json!([{"name": "TOKEN", "valueFrom":
                    {"secretKeyRef": {"name": "mqtt-users", "key": "passwd"}}}]);
            },
            "may not take Secrets into its environment",
        ),
        (
            "an added capability",
            |p| {
                p["spec"]["containers"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["SYS_ADMIN"]}});
            },
            "may not add capabilities",
        ),
    ];
    for (what, change, expected) in shapes {
        let mut pod = adaptor_pod(name);
        change(&mut pod);
        let message = pod_refusal(what, pods.create(&create, &typed(pod)).await);
        assert!(message.contains(expected), "{what}: {message}");
    }
    // The shape the operator makes is admitted.
    pods.create(&create, &typed(adaptor_pod(name)))
        .await
        .expect("an adaptor pod is admitted");
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .expect("the operator removes its adaptor pod");
    accounts
        .delete(name, &DeleteParams::default())
        .await
        .expect("the admin removes the account");

    // What RBAC names: the leader Lease by name, no plain DeviceLink updates,
    // no Secret writes.
    assert!(operator_can(
        "patch",
        "lease/devicelink-operator",
        SYSTEM_NAMESPACE
    ));
    assert!(!operator_can(
        "get",
        "lease/other-controller",
        SYSTEM_NAMESPACE
    ));
    assert!(!operator_can("list", "leases", SYSTEM_NAMESPACE));
    assert!(!operator_can(
        "update",
        "devicelinks.edge.cattle.io",
        NAMESPACE
    ));
    assert!(operator_can(
        "patch",
        "devicelinks.edge.cattle.io",
        NAMESPACE
    ));
    // It makes the Secrets of broker identities and BrokerCredentials in
    // any namespace; devicelink-operator-secrets holds it to those (the
    // next test).
    assert!(!operator_can("update", "secrets", NAMESPACE));
    assert!(!operator_can("get", "pods", NAMESPACE));

    admin_bindings
        .delete(foreign, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_operator_account_writes_only_the_secrets_of_broker_identities() {
    let (_guard, admin) = begin(NAMESPACE).await;
    let operator = client_as(&operator_account()).await;
    let create = PostParams::default();
    // A tenant's Secret, which RBAC alone would let the operator rewrite or
    // delete (it makes broker identities' Secrets in any namespace).
    let admin_secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let _ = admin_secrets
        .delete("plant-mqtt", &DeleteParams::default())
        .await;
    admin_secrets
        .create(
            &create,
            &typed(
                json!({"metadata": {"name": "plant-mqtt"}, "stringData": {"password": "s3cret"}}),
            ),
        )
        .await
        .expect("the admin creates a Secret");
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), NAMESPACE);
    let message = eventually_showing("the operator secrets policy to refuse", WAIT, || async {
        match secrets
            .patch(
                "plant-mqtt",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": "mallory"}})),
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.message.contains("devicelink-operator-secrets") => {
                Ok(e.message)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        message.contains("may write only the Secrets of broker identities and BrokerCredentials it made, not secret plant-mqtt"),
        "{message}"
    );
    refusal_by(
        "devicelink-operator-secrets",
        "deleting a tenant's Secret",
        secrets.delete("plant-mqtt", &DeleteParams::default()).await,
    );
    // Taking it over by labelling it as its own: the old object decides.
    let mut labels = owned_meta("plant-mqtt", Some(NAMESPACE));
    labels["labels"]["app.kubernetes.io/component"] = json!("broker-identity");
    refusal_by(
        "devicelink-operator-secrets",
        "labelling a tenant's Secret as its own",
        secrets
            .patch(
                "plant-mqtt",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": labels})),
            )
            .await,
    );
    // A Secret of its own shape is made and removed.
    let mut meta = owned_meta("e2e-ops-broker-credential", Some(NAMESPACE));
    meta["labels"]["app.kubernetes.io/component"] = json!("broker-identity");
    secrets
        .create(
            &create,
            &typed(json!({"metadata": meta, "stringData": {"password": "x"}})),
        )
        .await
        .expect("a broker identity's Secret is admitted");
    secrets
        .delete("e2e-ops-broker-credential", &DeleteParams::default())
        .await
        .expect("and removed");
    assert_eq!(
        admin_secrets.get("plant-mqtt").await.unwrap().data.unwrap()["password"].0,
        b"s3cret"
    );
}
