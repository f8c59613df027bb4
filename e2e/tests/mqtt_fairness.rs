//! One tenant cannot buffer a shared adaptor out of memory. Five devices
//! ask for the largest buffers there are (1 GiB each) and publish ten
//! large messages a second to a broker that accepts connections and never
//! answers; the adaptor's memory limit (1 MiB here, set in the adaptor
//! settings as a cluster operator would) gives its MQTT buffers a budget of
//! half of it, shared equally among its devices. Each of the five is held
//! to its share and says so, all buffers together stay within the budget,
//! and a fan of another tenant on a good broker keeps publishing.

use std::time::Duration;

use devicelink_api::{DeviceLink, dummy::DummyProtocolDevice};
use devicelink_e2e::{
    Broker, LocalKubelet, begin, delete_links_and_wait, dummy_link, eventually_showing, log_dir,
    modbus::Silent,
    mqtt::Subscriber,
    process::{Operator, metric_at},
    wait_connected, wait_reason,
};
use kube::{Api, api::PostParams};
use serde_json::json;

const NAMESPACE: &str = "e2e-mqtt-fairness";
const WAIT: Duration = Duration::from_secs(90);
const POD: &str = "devicelink-adaptor-dummy-edge-worker";
/// Half of the adaptor's 1 MiB memory limit.
const BUDGET: f64 = 512.0 * 1024.0;

/// A device asking for the largest buffer, publishing a message of about
/// a kilobyte (its topic) ten times a second to `server`.
fn hog(name: &str, server: &str) -> DeviceLink {
    devicelink_e2e::device_link(
        NAMESPACE,
        name,
        "edge-worker",
        "dummy",
        "DummyProtocolDevice",
        json!({"spec": {
            "parameters": {"syncInterval": "100ms"},
            "protocol": {"ip": "127.0.0.1"},
            "properties": {"reading": {"type": "string", "readOnly": true}},
            "extension": {"mqtt": {
                "client": {"server": server, "messageChannelBytes": 1_073_741_824,
                           "messageChannelDepth": 1_000_000},
                "message": {"topic": format!("e2e/fairness/{}/:name", "x".repeat(1000))},
            }},
        }}),
    )
}

#[tokio::test]
async fn devices_whose_broker_never_answers_get_their_share_and_others_keep_publishing() {
    let (_guard, client) = begin(NAMESPACE).await;
    let broker = Broker::start().await;
    let silent = Silent::start().await;
    let settings = log_dir().join("fairness-adaptor-settings.yaml");
    let sharing = std::env::var("DEVICELINK_E2E_MQTT_SHARING").as_deref() != Ok("off");
    std::fs::write(
        &settings,
        format!(
            "adaptors:\n  dummy:\n    resources: {{limits: {{memory: 1Mi}}}}\n    env: [{{name: DEVICELINK_SHARE_MQTT_CONNECTIONS, value: \"{sharing}\"}}]\n"
        ),
    )
    .unwrap();
    let _operator = Operator::start_with(
        "operator-fairness",
        &["--adaptor-settings-file", settings.to_str().unwrap()],
    );
    let kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let devices: Api<DummyProtocolDevice> = Api::namespaced(client.clone(), NAMESPACE);

    // Another tenant's fan, on a broker that works.
    let fan = dummy_link(
        NAMESPACE,
        "bystander",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "hall"}, "gear": "fast", "on": true,
                        "extension": {"mqtt": {"client": {"server": broker.url()},
                                               "message": {"topic": "e2e/fairness/bystander"}}}}}),
    );
    links.create(&PostParams::default(), &fan).await.unwrap();
    wait_connected(&links, "bystander").await;

    let server = format!("tcp://127.0.0.1:{}", silent.port);
    let hogs: Vec<String> = (1..=5).map(|i| format!("hog-{i}")).collect();
    for name in &hogs {
        links
            .create(&PostParams::default(), &hog(name, &server))
            .await
            .unwrap();
    }

    // Each hog is held to its share, and says so in its status and in
    // DeviceConnected.
    for name in &hogs {
        eventually_showing(
            &format!("{name}'s buffer held to its share"),
            WAIT,
            || async {
                let device = devices.get(name).await.map_err(|e| e.to_string())?;
                let status = serde_json::to_value(device.status).unwrap();
                let buffer = status["extension"]["mqtt"]["buffer"]
                    .as_str()
                    .unwrap_or_default();
                buffer
                    .contains("over this device's share of the adaptor's MQTT buffer budget")
                    .then_some(())
                    .ok_or(status.to_string())
            },
        )
        .await;
        wait_reason(&links, name, "DeviceConnected", "False", "MQTTUndelivered").await;
        eventually_showing(
            &format!("{name}'s DeviceConnected to name its share"),
            WAIT,
            || async {
                let link = links.get(name).await.map_err(|e| e.to_string())?;
                let connected = link
                    .status
                    .and_then(|s| {
                        s.conditions
                            .into_iter()
                            .find(|c| c.type_ == "DeviceConnected")
                    })
                    .map(|c| c.message)
                    .unwrap_or_default();
                connected
                    .contains(
                        "buffer: over this device's share of the adaptor's MQTT buffer budget (",
                    )
                    .then_some(())
                    .ok_or(connected)
            },
        )
        .await;
    }

    // All buffers together stay within the budget while the hogs go on
    // (a share is the budget over the devices with an MQTT extension).
    let metrics = kubelet
        .metrics_port(POD)
        .expect("the adaptor serves metrics");
    for _ in 0..10 {
        let held = metric_at(metrics, "devicelink_adaptor_mqtt_buffered_bytes")
            .await
            .expect("the adaptor counts its buffered bytes");
        assert!(held > 0.0 && held <= BUDGET, "{held} bytes buffered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The other tenant's fan keeps publishing, and stays Healthy.
    let mut bystander = Subscriber::start(broker.port, "e2e/fairness/bystander").await;
    for _ in 0..3 {
        bystander.next(WAIT).await;
    }
    wait_reason(&links, "bystander", "DeviceConnected", "True", "Healthy").await;

    let mut all = hogs.clone();
    all.push("bystander".into());
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    delete_links_and_wait(&links, &names).await;
}
