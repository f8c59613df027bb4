//! Isolation and recovery of Modbus devices on the control plane, against
//! pymodbus or libmodbus (DEVICELINK_E2E_MODBUS_SERVER): a device that hangs
//! delays none of nine others; a device whose server is killed, answers
//! with an exception, or moves to a new endpoint shows why in
//! DeviceConnected and recovers by itself; a device that closes idle
//! connections is read on every poll without a fault.

use std::{collections::HashMap, time::Duration};

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, delete_link_and_wait, delete_links_and_wait, device_link,
    kubectl::kubectl,
    modbus::{ModbusServer, Silent, holding},
    mqtt::{self, Subscriber},
    process::start_operator,
    wait_connected, wait_event, wait_property, wait_reason,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn thermometer(
    namespace: &str,
    name: &str,
    endpoint: &str,
    unit: u8,
    timeout: &str,
    mqtt: Option<&str>,
) -> DeviceLink {
    let mut spec = json!({
        "parameters": {"syncInterval": "1s", "timeout": timeout},
        "protocol": {"tcp": {"endpoint": endpoint, "workerID": unit}},
        "properties": [
            {"name": "reading", "type": "uint16", "readOnly": true,
             "visitor": {"register": "HoldingRegister", "offset": 0}},
        ],
    });
    if let Some(server) = mqtt {
        spec["extension"] = json!({"mqtt": {
            "client": {"server": server},
            "message": {"topic": "e2e/modbus/:name", "qos": 0, "retained": false},
        }});
    }
    device_link(
        namespace,
        name,
        "edge-worker",
        "modbus",
        "ModbusDevice",
        json!({"spec": spec}),
    )
}

/// Waits for DeviceConnected with `status` and `reason`; returns its message.
async fn wait_connected_as(
    links: &Api<DeviceLink>,
    name: &str,
    status: &str,
    reason: &str,
) -> String {
    wait_reason(links, name, "DeviceConnected", status, reason)
        .await
        .message
}

#[tokio::test]
async fn a_device_that_hangs_leaves_nine_others_on_schedule() {
    let namespace = "e2e-modbus-isolation";
    let (_guard, client) = begin(namespace).await;
    let broker = Broker::start().await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let units: Vec<u8> = (1..=9).collect();
    let contents: HashMap<String, Value> = units
        .iter()
        .map(|u| (u.to_string(), json!({"holding": {"0": u}})))
        .collect();
    let server = ModbusServer::tcp(&units, json!(contents)).await;
    let silent = Silent::start().await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let mut samples = Subscriber::start(broker.port, "e2e/modbus/+").await;

    let hung = thermometer(
        namespace,
        "hung",
        &format!("127.0.0.1:{}", silent.port),
        1,
        "5s",
        Some(&broker.url()),
    );
    links.create(&PostParams::default(), &hung).await.unwrap();
    for unit in &units {
        let link = thermometer(
            namespace,
            &format!("healthy-{unit}"),
            &server.endpoint(),
            *unit,
            "5s",
            Some(&broker.url()),
        );
        links.create(&PostParams::default(), &link).await.unwrap();
    }
    for unit in &units {
        wait_connected(&links, &format!("healthy-{unit}")).await;
    }
    let message = wait_connected_as(&links, "hung", "False", "Timeout").await;
    assert!(
        message.contains("no answer within 5s to reading holding registers 0"),
        "{message}"
    );

    // Over ten seconds every healthy device keeps its 1 s schedule while
    // the hung one waits 5 s for each answer that never comes.
    while samples.try_next(Duration::from_millis(100)).await.is_some() {}
    let mut counts: HashMap<String, usize> = HashMap::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Some(m) = samples
        .try_next(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        *counts.entry(m.topic.clone()).or_default() += 1;
    }
    for unit in &units {
        let topic = format!("e2e/modbus/healthy-{unit}");
        let n = counts.get(&topic).copied().unwrap_or(0);
        assert!(
            n >= 7,
            "{topic} published {n} samples in 10 s at a 1 s interval: {counts:?}"
        );
    }
    let hung_samples = counts.get("e2e/modbus/hung").copied().unwrap_or(0);
    assert!(
        hung_samples <= 3,
        "the hung device cannot poll faster than its timeout: {counts:?}"
    );

    let names: Vec<String> = std::iter::once("hung".to_string())
        .chain(units.iter().map(|u| format!("healthy-{u}")))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    delete_links_and_wait(&links, &names).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_device_recovers_from_a_restart_an_exception_and_a_new_endpoint() {
    let namespace = "e2e-modbus-recovery";
    let (_guard, client) = begin(namespace).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let mut first = ModbusServer::tcp(&[1], json!({"1": {"holding": {"0": 111}}})).await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    let name = "boiler";
    let link = thermometer(namespace, name, &first.endpoint(), 1, "1s", None);
    links.create(&PostParams::default(), &link).await.unwrap();
    wait_connected(&links, name).await;
    wait_property(&devices, name, "reading", "111").await;

    // The server dies: the device is unreachable; it comes back by itself.
    first.stop().await;
    let message = wait_connected_as(&links, name, "False", "Unreachable").await;
    assert!(
        message.contains(&format!("cannot connect to {}", first.endpoint())),
        "{message}"
    );
    // Each transition is also an Event on the DeviceLink.
    wait_event(&client, namespace, name, "Unreachable", "Warning").await;
    first.restart().await;
    wait_connected_as(&links, name, "True", "Healthy").await;

    // The device answers with an exception code, then stops doing so.
    first.fail(true);
    let message = wait_connected_as(&links, name, "False", "ExceptionResponse").await;
    assert!(
        message.contains("exception 0x04 server device failure"),
        "{message}"
    );
    assert!(message.contains("reading holding registers 0"), "{message}");
    wait_event(&client, namespace, name, "ExceptionResponse", "Warning").await;
    first.fail(false);
    wait_connected_as(&links, name, "True", "Healthy").await;
    wait_event(&client, namespace, name, "Healthy", "Normal").await;

    // The device moves: the new endpoint is used at once.
    let second = ModbusServer::tcp(&[1], json!({"1": {"holding": {"0": 222}}})).await;
    let patch = json!({"spec": {"template": {"spec": {"protocol": {"tcp": {"endpoint": second.endpoint(), "workerID": 1}}}}}});
    links
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_property(&devices, name, "reading", "222").await;
    wait_connected_as(&links, name, "True", "Healthy").await;

    delete_link_and_wait(&links, name).await;
    operator.stop().await;
}

/// A lost connection is what a device closing an idle one would be taken
/// for. (Other Warnings, such as the operator's first look at the CRDs,
/// are not these tests'.)
async fn assert_no_connection_lost(client: &kube::Client, namespace: &str, name: &str) {
    let lost: Vec<String> = devicelink_e2e::events_of(client, namespace, name)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ConnectionLost"))
        .map(|e| format!("{:?}", e.message))
        .collect();
    assert!(
        lost.is_empty(),
        "the closing was taken for a fault: {lost:?}"
    );
}

/// Many devices and gateways close a TCP connection silent for a while.
/// Polled less often than that, every poll finds its connection closed:
/// each is still read, on a new connection, and nothing is reported wrong.
#[tokio::test]
async fn a_device_that_closes_idle_connections_is_read_on_every_poll() {
    let namespace = "e2e-modbus-idle";
    let (_guard, client) = begin(namespace).await;
    // Only this run's Events count.
    let cleared = kubectl(&["delete", "events", "--all", "-n", namespace], None);
    assert!(cleared.success, "{}", cleared.text);
    let broker = Broker::start().await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let server = ModbusServer::closing_idle(
        &[1],
        json!({"1": {"holding": {"0": 7}}}),
        Duration::from_secs(1),
    )
    .await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let mut samples = Subscriber::start(broker.port, "e2e/modbus/+").await;
    let name = "sleepy";
    let mut link = thermometer(
        namespace,
        name,
        &server.endpoint(),
        1,
        "2s",
        Some(&broker.url()),
    );
    link.spec.template.spec.as_mut().unwrap()["parameters"]["syncInterval"] = json!("3s");
    links.create(&PostParams::default(), &link).await.unwrap();
    wait_connected(&links, name).await;

    // Three times the server closes the connection the adaptor left idle,
    // and the polls after each still read the device.
    let closed = || server.log().matches("closing a connection idle").count();
    let mut read = 0;
    while closed() < 3 {
        let sample = samples.next(Duration::from_secs(10)).await;
        assert_eq!(
            sample.payload["properties"][0]["value"], "7",
            "{}",
            sample.payload
        );
        read += 1;
        assert!(
            read < 30,
            "the server closed no idle connection:\n{}",
            server.log()
        );
    }
    let sample = samples.next(Duration::from_secs(10)).await;
    assert_eq!(
        sample.payload["properties"][0]["value"], "7",
        "{}",
        sample.payload
    );
    wait_connected_as(&links, name, "True", "Healthy").await;
    assert_no_connection_lost(&client, namespace, name).await;
    delete_link_and_wait(&links, name).await;
}

/// A write from MQTT that finds the connection closed by the device while
/// idle is made on a new one and answered as done, not refused as a lost
/// connection (the poller's retry on the write path).
#[tokio::test]
async fn a_write_after_the_device_closed_the_idle_connection_is_made() {
    let namespace = "e2e-modbus-idle-write";
    let (_guard, client) = begin(namespace).await;
    let cleared = kubectl(&["delete", "events", "--all", "-n", namespace], None);
    assert!(cleared.success, "{}", cleared.text);
    let broker = Broker::start().await;
    let _operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let server = ModbusServer::closing_idle(
        &[1],
        json!({"1": {"holding": {"0": 7, "1": 0}}}),
        Duration::from_secs(1),
    )
    .await;
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let name = "sleepy-valve";
    let mut link = thermometer(
        namespace,
        name,
        &server.endpoint(),
        1,
        "2s",
        Some(&broker.url()),
    );
    let spec = link.spec.template.spec.as_mut().unwrap();
    // Read once a minute: the device closes the connection in between.
    spec["parameters"]["syncInterval"] = json!("60s");
    spec["properties"].as_array_mut().unwrap().push(json!(
        {"name": "setpoint", "type": "uint16", "visitor": {"register": "HoldingRegister", "offset": 1}}
    ));
    let mut replies =
        Subscriber::start(broker.port, &format!("e2e/modbus/{name}/$write/$reply")).await;
    links.create(&PostParams::default(), &link).await.unwrap();
    wait_connected(&links, name).await;
    devicelink_e2e::eventually(
        "the device to close the first read's connection",
        Duration::from_secs(30),
        || async { (server.log().matches("closing a connection idle").count() >= 1).then_some(()) },
    )
    .await;

    mqtt::publish(
        broker.port,
        &format!("e2e/modbus/{name}/$write"),
        br#"{"setpoint": 42}"#,
    )
    .await;
    let reply = replies.next(Duration::from_secs(30)).await.payload;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut check = server.client(1).await;
    assert_eq!(holding(&mut check, 1, 1).await, vec![42]);
    assert_no_connection_lost(&client, namespace, name).await;
    delete_link_and_wait(&links, name).await;
}
