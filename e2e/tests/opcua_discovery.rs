//! OPC-UA discovery end to end (docs/discovery.md), on loopback addresses
//! the test makes (never any other): a local discovery server (asyncua,
//! 127.0.0.6) with a press line's server registered with it (asyncua, same
//! host), an oven's server asked directly (node-opcua, 127.0.0.7: the
//! second stack), and a server registered from another address (127.0.0.8),
//! which the scan must not follow there. Each server found becomes a
//! DiscoveredDevice with what it says it is, its endpoints and the
//! variables its browse found (types, writability, units); the press, which
//! the shipped catalog knows, becomes a connected DeviceLink by itself
//! (`adoption: Matched`), the oven once a person adopts it. A discovery
//! URL outside the allowed ranges, or naming a host, is refused by the API
//! server. A server that lets in only its operator is adopted with the
//! credentials its discovery names from a Secret.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    catalog::{DeviceTemplate, TEMPLATE_LABEL},
    discovery::{DeviceDiscovery, DiscoveredDevice},
    opcua::OPCUADevice,
};
use devicelink_e2e::{
    LocalKubelet, apply, begin,
    discovery::{adopt, allow_ranges, apply_catalog, apply_refused, finds},
    eventually_showing,
    opcua::{Implementation, OpcuaServer, ServerOptions},
    process::start_operator,
    repo_root, wait_connected, wait_property, yaml_documents,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

fn press_variables() -> serde_json::Value {
    json!([
        {"name": "force", "type": "Double", "value": 182.5, "unit": "kN", "writable": false},
        {"name": "strokes", "type": "UInt32", "value": 40112, "writable": false},
        {"name": "recipe", "type": "String", "value": "bracket-7"},
    ])
}

#[tokio::test]
async fn servers_found_through_a_discovery_server_are_browsed_and_adopted() {
    let namespace = "e2e-opcua-discovery";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    apply_catalog(&client, namespace).await;

    let lds = OpcuaServer::start(ServerOptions {
        host: Some("127.0.0.6"),
        app_uri: Some("urn:devicelink:test:lds".into()),
        discovery_server: true,
        implementation: Some(Implementation::Asyncua),
        ..Default::default()
    })
    .await;
    let lds_url = format!("opc.tcp://127.0.0.6:{}", lds.port);
    let press = OpcuaServer::start(ServerOptions {
        host: Some("127.0.0.6"),
        app_uri: Some("urn:acme:press-line".into()),
        product_uri: Some("urn:acme:press".into()),
        register_to: Some(lds_url.clone()),
        variables: press_variables(),
        implementation: Some(Implementation::Asyncua),
        ..Default::default()
    })
    .await;
    let oven = OpcuaServer::start(ServerOptions {
        host: Some("127.0.0.7"),
        app_uri: Some("urn:initech:oven".into()),
        variables: json!([
            {"name": "temperature", "type": "Double", "value": 212.5, "unit": "°C", "writable": false},
            {"name": "setpoint", "type": "Double", "value": 215.0},
        ]),
        implementation: Some(Implementation::NodeOpcua),
        ..Default::default()
    })
    .await;
    let elsewhere = OpcuaServer::start(ServerOptions {
        host: Some("127.0.0.8"),
        app_uri: Some("urn:devicelink:test:elsewhere".into()),
        register_to: Some(lds_url.clone()),
        variables: press_variables(),
        implementation: Some(Implementation::Asyncua),
        ..Default::default()
    })
    .await;

    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    // The example (deploy/examples/opcua-discovery.yaml) on the test's
    // addresses, scanning every 10 s.
    let mut hall =
        yaml_documents(&repo_root().join("deploy/examples/opcua-discovery.yaml")).remove(0);
    hall["metadata"] = json!({"name": "hall", "namespace": namespace});
    hall["spec"]["interval"] = json!("10s");
    hall["spec"]["opcua"]["discoveryUrls"] = json!([lds_url, oven.endpoint()]);
    hall["spec"]["opcua"]["requestsPerSecond"] = json!(100);
    hall["spec"]["deviceLinks"]["syncInterval"] = json!("1s");
    apply::<DeviceDiscovery>(&discoveries, &hall).await;

    // Two finds: the press (through the discovery server) and the oven.
    // The server registered from 127.0.0.8 is not followed there (nor
    // found at 127.0.0.6, where nothing of it listens).
    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let all = finds(&found, "hall", 2).await;
    let (press_find, oven_find) = (&all[0], &all[1]);
    assert_eq!(press_find.spec.address, press.endpoint());
    assert_eq!(oven_find.spec.address, oven.endpoint());
    assert!(
        all.iter().all(|f| !f.spec.address.contains("127.0.0.8")),
        "{:?}",
        all.iter().map(|f| &f.spec.address).collect::<Vec<_>>()
    );
    let status = press_find.status.clone().unwrap();
    assert_eq!(status.identity["applicationUri"], "urn:acme:press-line");
    assert_eq!(status.identity["productUri"], "urn:acme:press");
    assert!(
        status
            .endpoints
            .iter()
            .any(|e| e.security_policy == "None" && e.security_mode == "None"),
        "{:?}",
        status.endpoints
    );
    let force = status
        .variables
        .iter()
        .find(|v| v.node_id == "ns=2;s=force")
        .unwrap_or_else(|| panic!("force among {:?}", status.variables));
    assert_eq!(force.browse_path, "devicelink/force");
    assert_eq!(force.data_type, "Double");
    assert!(!force.writable);
    assert_eq!(force.engineering_units.as_deref(), Some("kN"));
    let recipe = status
        .variables
        .iter()
        .find(|v| v.node_id == "ns=2;s=recipe")
        .unwrap();
    assert_eq!(
        (recipe.data_type.as_str(), recipe.writable),
        ("String", true)
    );
    // The second stack's answers, read the same way.
    let oven_status = oven_find.status.clone().unwrap();
    assert_eq!(oven_status.identity["applicationUri"], "urn:initech:oven");
    let temperature = oven_status
        .variables
        .iter()
        .find(|v| v.browse_path.ends_with("/temperature"))
        .unwrap_or_else(|| panic!("temperature among {:?}", oven_status.variables));
    assert_eq!(temperature.data_type, "Double");
    assert!(!temperature.writable);
    assert_eq!(temperature.engineering_units.as_deref(), Some("°C"));

    // The press: adopted from the catalog by itself, connected, reading.
    let press_name = press_find.metadata.name.clone().unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &press_name).await;
    assert_eq!(
        link.metadata.labels.unwrap_or_default()[TEMPLATE_LABEL],
        "acme-press-line"
    );
    let devices: Api<OPCUADevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, &press_name, "force", "182.5").await;
    wait_property(&devices, &press_name, "recipe", "bracket-7").await;

    // The oven: no template; it waits, then a person adopts it and its
    // DeviceLink reads what the browse proposed.
    let oven_name = oven_find.metadata.name.clone().unwrap();
    assert!(links.get_opt(&oven_name).await.unwrap().is_none());
    adopt(&found, &oven_name).await;
    wait_connected(&links, &oven_name).await;
    wait_property(&devices, &oven_name, "temperature", "212.5").await;
    drop((lds, press, oven, elsewhere));
}

/// A press whose server lets in only its operator, by password: its
/// scan cannot browse it (anonymous sessions are refused) but still finds
/// what it is, and the DeviceLink adopted from the template signs in with
/// the credentials the discovery names (a Secret), never inlined.
#[tokio::test]
async fn a_secured_server_is_adopted_with_the_credentials_its_discovery_names() {
    let namespace = "e2e-opcua-discovery-credentials";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let press = OpcuaServer::start(ServerOptions {
        host: Some("127.0.0.9"),
        app_uri: Some("urn:acme:guarded-press".into()),
        users: vec![("operator", "s3cret")],
        variables: press_variables(),
        ..Default::default()
    })
    .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "press-operator", "namespace": namespace},
            "stringData": {"username": "operator", "password": "s3cret"}}),
    )
    .await;
    // The catalog says which credential goes where; the discovery says
    // which Secret holds it.
    let templates: Api<DeviceTemplate> = Api::namespaced(client.clone(), namespace);
    apply::<DeviceTemplate>(
        &templates,
        &json!({
        "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceTemplate",
        "metadata": {"name": "guarded-press", "namespace": namespace},
        "spec": {"protocol": "opcua", "identity": {"applicationUri": "urn:acme:guarded-press"},
            "template": {"spec": {
                "protocol": {
                    "basicAuth": {"usernameRef": {"name": "press-login", "item": "username"},
                                  "passwordRef": {"name": "press-login", "item": "password"}},
                    // The test's server offers no secured endpoint whose
                    // certificate a template could trust in advance.
                    "allowInsecureCredentials": true},
                "properties": [{"name": "force", "type": "double", "readOnly": true,
                                "visitor": {"nodeID": "ns=2;s=force"}}]}}}}),
    )
    .await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    apply::<DeviceDiscovery>(
        &discoveries,
        &json!({
        "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
        "metadata": {"name": "guarded", "namespace": namespace},
        "spec": {"node": "edge-worker", "interval": "10m", "adoption": "Matched",
                 "opcua": {"discoveryUrls": [press.endpoint()], "requestsPerSecond": 100},
                 "deviceLinks": {"syncInterval": "1s"},
                 "references": [
                     {"name": "press-login", "secret": {"name": "press-operator"}},
                     {"name": "not-used", "secret": {"name": "another"}}]}}),
    )
    .await;

    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let find = finds(&found, "guarded", 1).await.remove(0);
    let status = find.status.clone().unwrap();
    assert_eq!(status.identity["applicationUri"], "urn:acme:guarded-press");
    assert!(status.variables.is_empty(), "{:?}", status.variables);
    let why = status.not_browsed.unwrap_or_default();
    assert!(!why.is_empty(), "the find says why it was not browsed");

    let name = find.metadata.name.clone().unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let link = wait_connected(&links, &name).await;
    let references: Vec<(String, String)> = link
        .spec
        .references
        .iter()
        .map(|r| (r.name.clone(), r.secret.clone().unwrap_or_default().name))
        .collect();
    assert_eq!(
        references,
        [("press-login".to_string(), "press-operator".to_string())],
        "the DeviceLink references the Secret its device uses, and no other"
    );
    let devices: Api<OPCUADevice> = Api::namespaced(client.clone(), namespace);
    wait_property(&devices, &name, "force", "182.5").await;
    let device = devices.get(&name).await.unwrap();
    let protocol = serde_json::to_value(&device.spec.protocol).unwrap();
    assert!(
        !protocol.to_string().contains("s3cret"),
        "the device holds a reference, not the password: {protocol}"
    );
    drop(press);
}

#[tokio::test]
async fn a_discovery_url_outside_the_allowed_ranges_or_by_name_is_refused() {
    let namespace = "e2e-opcua-discovery-ranges";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let of = |url: &str| {
        json!({"apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceDiscovery",
            "metadata": {"name": "plant", "namespace": namespace},
            "spec": {"node": "edge-worker", "opcua": {"discoveryUrls": [url]}}})
    };
    let outside = of("opc.tcp://10.9.0.1:4840");
    let words = [
        "spec.opcua.discoveryUrls: 10.9.0.1 lies outside",
        "127.0.0.0/24",
    ];
    apply_refused(&discoveries, "plant", &outside, 403, &words).await;
    let named = of("opc.tcp://plc.local:4840");
    apply_refused(&discoveries, "plant", &named, 422, &["IP address"]).await;
    eventually_showing("an address within the ranges to be taken", WAIT, || async {
        discoveries
            .patch(
                "plant",
                &PatchParams::apply("e2e"),
                &Patch::Apply(of("opc.tcp://127.0.0.6:4840/x")),
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
}
