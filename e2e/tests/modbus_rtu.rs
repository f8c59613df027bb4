//! Modbus RTU on the control plane: two devices on one serial line (a
//! socat pty pair, pymodbus's serial server at the other end) take turns
//! on it; a spec value is written over the line; a third device that asks
//! for other framing on the same line is refused with the reason.

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    LocalKubelet, begin, delete_links_and_wait, device_link,
    modbus::{Listen, ModbusServer, SerialCable},
    process::start_operator,
    wait_connected, wait_property, wait_reason,
};
use kube::{Api, api::PostParams};
use serde_json::json;

fn meter(namespace: &str, name: &str, port: &str, unit: u8, baud: u32) -> DeviceLink {
    device_link(
        namespace,
        name,
        "edge-worker",
        "modbus",
        "ModbusDevice",
        json!({"spec": {
            "parameters": {"syncInterval": "1s", "timeout": "2s"},
            "protocol": {"rtu": {"endpoint": port, "workerID": unit, "baudRate": baud, "parity": "N"}},
            "properties": [
                {"name": "energy", "type": "uint32", "readOnly": true,
                 "visitor": {"register": "InputRegister", "offset": 0, "quantity": 2}},
                {"name": "setpoint", "type": "int16", "value": "-40",
                 "visitor": {"register": "HoldingRegister", "offset": 10}},
            ],
        }}),
    )
}

#[tokio::test]
async fn two_devices_share_a_serial_line_and_other_framing_is_refused() {
    let namespace = "e2e-modbus-rtu";
    let (_guard, client) = begin(namespace).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let cable = SerialCable::new("rtu").await;
    // 70000 Wh on unit 1, 123456 Wh on unit 2 (32-bit, big-endian words).
    let _server = ModbusServer::start(
        Listen::Rtu {
            device: cable.server_end.clone(),
            baud: 19200,
        },
        &[1, 2],
        json!({
            "1": {"input": {"0": 1, "1": 4464}},
            "2": {"input": {"0": 1, "1": 57920}},
        }),
    )
    .await;
    let port = cable.device_end.to_str().unwrap();
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<ModbusDevice> = Api::namespaced(client.clone(), namespace);
    for (name, unit) in [("meter-1", 1), ("meter-2", 2)] {
        links
            .create(
                &PostParams::default(),
                &meter(namespace, name, port, unit, 19200),
            )
            .await
            .unwrap();
    }
    wait_connected(&links, "meter-1").await;
    wait_connected(&links, "meter-2").await;
    wait_property(&devices, "meter-1", "energy", "70000").await;
    wait_property(&devices, "meter-2", "energy", "123456").await;
    // The spec's setpoint went over the line and reads back.
    wait_property(&devices, "meter-1", "setpoint", "-40").await;
    wait_property(&devices, "meter-2", "setpoint", "-40").await;

    // The line runs at 19200 baud; a device asking for 9600 cannot share it.
    links
        .create(
            &PostParams::default(),
            &meter(namespace, "meter-3", port, 3, 9600),
        )
        .await
        .unwrap();
    let message = wait_reason(
        &links,
        "meter-3",
        "DeviceConnected",
        "False",
        "InvalidSettings",
    )
    .await
    .message;
    assert!(message.contains("at 19200 8N1"), "{message}");
    assert!(message.contains("must use the same baudRate"), "{message}");
    // ... and the other two keep polling.
    wait_connected(&links, "meter-1").await;

    delete_links_and_wait(&links, &["meter-1", "meter-2", "meter-3"]).await;
    operator.stop().await;
}
