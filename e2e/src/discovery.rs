//! Discovery's tests' common steps (docs/discovery.md): letting
//! discovery scan loopback ranges, a DeviceDiscovery of one, and waiting
//! for its finds and scans.

use std::{net::SocketAddr, time::Duration};

use devicelink_api::{
    catalog::DeviceTemplate,
    discovery::{DeviceDiscovery, DiscoveredDevice},
};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use kube::{Api, api::ListParams};
use serde_json::json;

use crate::{apply, client_as, eventually_showing, repo_root, yaml_documents};

const WAIT: Duration = Duration::from_secs(90);

/// An address on loopback: 127.0.0.`last`:`port`.
pub fn at(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

/// Lets discovery scan `ranges` (comma-separated), as an administrator
/// who installed the plain manifests would: the policy
/// devicelink-discovery-ranges holds them in its first variable (none in
/// deploy/manifests/rbac.yaml). Waits until the API server takes a
/// discovery of the first (it reads policies through a cache of its own).
/// Tests leave them allowed: the tests of a file run at once, and one
/// test's narrowing would refuse another's discovery.
pub async fn allow_ranges(client: &kube::Client, ranges: &str) {
    let listed: Vec<&str> = ranges.split(',').filter(|r| !r.is_empty()).collect();
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let mut policy = policies
        .get("devicelink-discovery-ranges")
        .await
        .expect("the discovery ranges policy (deploy/manifests/rbac.yaml)");
    let variables = policy
        .spec
        .as_mut()
        .and_then(|s| s.variables.as_mut())
        .expect("the policy's variables");
    assert_eq!(variables[0].name, "allowed");
    variables[0].expression = format!("{}.map(r, string(r))", json!(listed));
    policies
        .replace("devicelink-discovery-ranges", &Default::default(), &policy)
        .await
        .expect("replace the discovery ranges policy");
    let Some(first) = listed.first() else {
        return;
    };
    let probe = discovery("default", "e2e-ranges-probe", first, 502);
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), "default");
    eventually_showing(&format!("the policy to allow {first}"), WAIT, || async {
        discoveries
            .create(
                &kube::api::PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &serde_json::from_value(probe.clone()).unwrap(),
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
}

/// The example (deploy/examples/modbus-discovery.yaml) on `cidr` and
/// `port`, scanning every 10 s, without its MQTT extension (no broker
/// here).
pub fn discovery(namespace: &str, name: &str, cidr: &str, port: u16) -> serde_json::Value {
    let mut d =
        yaml_documents(&repo_root().join("deploy/examples/modbus-discovery.yaml")).remove(0);
    d["metadata"] = json!({"name": name, "namespace": namespace});
    d["spec"]["interval"] = json!("10s");
    d["spec"]["modbus"]["targets"] = json!([{"cidr": cidr, "ports": [port]}]);
    d["spec"]["modbus"]["requestsPerSecond"] = json!(100);
    d["spec"]["modbus"]["timeout"] = json!("500ms");
    d["spec"]["deviceLinks"] = json!({"syncInterval": "1s"});
    d
}

/// The finds of discovery `name`, by address, once there are `count`.
pub async fn finds(api: &Api<DiscoveredDevice>, name: &str, count: usize) -> Vec<DiscoveredDevice> {
    eventually_showing(&format!("{count} finds of {name}"), WAIT, || async {
        let list = api
            .list(&ListParams::default().fields(&format!("spec.discovery={name}")))
            .await
            .map_err(|e| e.to_string())?;
        let mut found = list.items;
        found.sort_by(|a, b| a.spec.address.cmp(&b.spec.address));
        let seen: Vec<&str> = found.iter().map(|f| f.spec.address.as_str()).collect();
        (found.len() == count && found.iter().all(|f| f.status.is_some()))
            .then_some(found.clone())
            .ok_or(format!("{seen:?}"))
    })
    .await
}

/// When the discovery's latest scan ended, once it has one.
pub async fn last_scan(api: &Api<DeviceDiscovery>, name: &str) -> (String, i64) {
    eventually_showing(&format!("a scan of {name}"), WAIT, || async {
        let d = api.get(name).await.map_err(|e| e.to_string())?;
        let scan = d
            .status
            .and_then(|s| s.last_scan)
            .ok_or("no scan yet".to_string())?;
        Ok((scan.finished.0.to_string(), scan.found))
    })
    .await
}

/// The shipped catalog, in `namespace`.
pub fn catalog(namespace: &str) -> Vec<serde_json::Value> {
    let dir = repo_root().join("deploy/catalog");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| yaml_documents(f))
        .map(|mut t| {
            t["metadata"]["namespace"] = json!(namespace);
            t
        })
        .collect()
}

/// Adopts find `name` as a person does: the `edge.cattle.io/adopt`
/// annotation.
pub async fn adopt(api: &Api<DiscoveredDevice>, name: &str) {
    let annotation = json!({"metadata": {"annotations": {"edge.cattle.io/adopt": "true"}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(annotation),
    )
    .await
    .unwrap_or_else(|e| panic!("annotate {name} to adopt it: {e}"));
}

/// Applies the shipped catalog (deploy/catalog/) in `namespace`.
pub async fn apply_catalog(client: &kube::Client, namespace: &str) {
    let templates: Api<DeviceTemplate> = Api::namespaced(client.clone(), namespace);
    for template in catalog(namespace) {
        crate::apply::<DeviceTemplate>(&templates, &template).await;
    }
}

/// Applies `object` (named `name`) as the e2e field manager, which the API
/// server must refuse with `code` and a message holding each of `words`.
pub async fn apply_refused<K>(
    api: &Api<K>,
    name: &str,
    object: &serde_json::Value,
    code: u16,
    words: &[&str],
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let params = kube::api::PatchParams::apply("e2e");
    match api
        .patch(name, &params, &kube::api::Patch::Apply(object))
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, code, "{e:?}");
            for word in words {
                assert!(e.message.contains(word), "{word:?} in {}", e.message);
            }
        }
        other => panic!("{name} was taken, where a refusal ({code}) was due: {other:?}"),
    }
}

/// A client as the adaptor of `protocol` (`modbus`, `ble`, ...) on
/// `node`: its ServiceAccount, bound to the adaptor's ClusterRole as the
/// operator binds it (the binding is named `e2e-<account>`).
pub async fn adaptor_of(client: &kube::Client, protocol: &str, node: &str) -> kube::Client {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let account = format!("devicelink-adaptor-{protocol}-{node}");
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    apply::<ClusterRoleBinding>(&bindings, &json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding", "metadata": {"name": format!("e2e-{account}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": format!("devicelink-adaptor-{protocol}")},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "devicelink-system"}]}))
    .await;
    client_as(&format!(
        "system:serviceaccount:devicelink-system:{account}"
    ))
    .await
}
