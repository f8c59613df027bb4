//! An OPC-UA device through the failures of a plant: the server restarts
//! (the session is lost, values flow again by themselves with a new
//! subscription), a node ID that does not exist (named on DeviceConnected
//! while the other properties flow), and an endpoint nobody listens on.

use devicelink_api::{DeviceLink, opcua::OPCUADevice};
use devicelink_e2e::{
    LocalKubelet, begin, delete_links_and_wait, device_link,
    opcua::{OpcuaServer, ServerOptions, unused_endpoint},
    process::start_operator,
    wait_connected, wait_event, wait_property, wait_reason,
};
use kube::Api;
use serde_json::{Value, json};

const NAMESPACE: &str = "e2e-opcua-recovery";

fn link(name: &str, endpoint: &str, properties: Value) -> DeviceLink {
    device_link(
        NAMESPACE,
        name,
        "edge-worker",
        "opcua",
        "OPCUADevice",
        json!({"spec": {
            "parameters": {"syncInterval": "200ms", "timeout": "3s"},
            "protocol": {"endpoint": endpoint, "connectTimeout": "3s"},
            "properties": properties,
        }}),
    )
}

fn watching(node: &str) -> Value {
    json!({"name": "level", "type": "double", "visitor": {"nodeID": node}})
}

#[tokio::test]
async fn sessions_come_back_and_bad_nodes_are_named() {
    let (_guard, client) = begin(NAMESPACE).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let mut server = OpcuaServer::start(ServerOptions {
        variables: json!([
            {"name": "tank.level", "type": "Double", "value": 1.5},
            {"name": "tank.temperature", "type": "Double", "value": 20.0},
        ]),
        ..Default::default()
    })
    .await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let devices: Api<OPCUADevice> = Api::namespaced(client.clone(), NAMESPACE);

    let tank = link(
        "tank",
        &server.endpoint(),
        json!([watching("ns=2;s=tank.level")]),
    );
    let partial = link(
        "partial",
        &server.endpoint(),
        json!([
            {"name": "temperature", "type": "double", "visitor": {"nodeID": "ns=2;s=tank.temperature"}},
            {"name": "pressure", "type": "double", "visitor": {"nodeID": "ns=2;s=tank.pressure"}},
        ]),
    );
    let nowhere = link(
        "nowhere",
        &unused_endpoint(),
        json!([watching("ns=2;s=tank.level")]),
    );
    for l in [&tank, &partial, &nowhere] {
        links
            .create(&Default::default(), l)
            .await
            .expect("create DeviceLink");
    }

    // A missing node is named; the other property of the device flows.
    let c = wait_reason(&links, "partial", "DeviceConnected", "False", "BadNodeId").await;
    assert!(
        c.message.contains("pressure")
            && c.message.contains("ns=2;s=tank.pressure")
            && c.message.contains("does not exist"),
        "{}",
        c.message
    );
    wait_property(&devices, "partial", "temperature", "20").await;
    let c = wait_reason(&links, "nowhere", "DeviceConnected", "False", "Unreachable").await;
    assert!(c.message.contains("endpoints"), "{}", c.message);

    // The server restarts: the session is lost, then comes back by itself
    // with a new subscription, and changes flow again.
    wait_connected(&links, "tank").await;
    wait_property(&devices, "tank", "level", "1.5").await;
    server.stop().await;
    let c = wait_reason(&links, "tank", "DeviceConnected", "False", "SessionLost").await;
    assert!(c.message.contains("reconnecting"), "{}", c.message);
    wait_event(&client, NAMESPACE, "tank", "SessionLost", "Warning").await;
    server.restart().await;
    wait_reason(&links, "tank", "DeviceConnected", "True", "Healthy").await;
    server.set("tank.level", json!(2.75)).await;
    wait_property(&devices, "tank", "level", "2.75").await;

    // The missing node appears when the spec points at one that exists.
    let patch = json!({"spec": {"template": {"spec": {"properties": [
        {"name": "temperature", "type": "double", "visitor": {"nodeID": "ns=2;s=tank.temperature"}},
        {"name": "pressure", "type": "double", "visitor": {"nodeID": "ns=2;s=tank.level"}},
    ]}}}});
    links
        .patch(
            "partial",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("point pressure at a node that exists");
    wait_reason(&links, "partial", "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, "partial", "pressure", "2.75").await;

    delete_links_and_wait(&links, &["tank", "partial", "nowhere"]).await;
    operator.stop().await;
}
