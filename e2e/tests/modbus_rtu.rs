//! Modbus RTU on the control plane: two devices on one serial line (a
//! socat pty pair, pymodbus's serial server at the other end) take turns
//! on it; a spec value is written over the line; a third device that asks
//! for other framing on the same line is refused with the reason.

use std::time::Duration;

use devicelink_api::{DeviceLink, modbus::ModbusDevice};
use devicelink_e2e::{
    LocalKubelet, begin, delete_links_and_wait, device_link, eventually_showing,
    modbus::{Listen, ModbusServer, SerialCable},
    process::start_operator,
    wait_connected,
};
use kube::{Api, api::PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

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

/// A property's status value on a device, once it is `want`.
async fn shows(devices: &Api<ModbusDevice>, name: &str, property: &str, want: &str) {
    eventually_showing(&format!("{name}.{property} = {want}"), WAIT, || async {
        let d = devices.get(name).await.map_err(|e| e.to_string())?;
        let value = d
            .status
            .into_iter()
            .flat_map(|s| s.properties)
            .find(|p| p.name == property)
            .and_then(|p| p.value);
        (value.as_deref() == Some(want))
            .then_some(())
            .ok_or(format!("{value:?}"))
    })
    .await
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
    shows(&devices, "meter-1", "energy", "70000").await;
    shows(&devices, "meter-2", "energy", "123456").await;
    // The spec's setpoint went over the line and reads back.
    shows(&devices, "meter-1", "setpoint", "-40").await;
    shows(&devices, "meter-2", "setpoint", "-40").await;

    // The line runs at 19200 baud; a device asking for 9600 cannot share it.
    links
        .create(
            &PostParams::default(),
            &meter(namespace, "meter-3", port, 3, 9600),
        )
        .await
        .unwrap();
    let message = eventually_showing("meter-3 refused", WAIT, || async {
        let link = links.get("meter-3").await.map_err(|e| e.to_string())?;
        match link
            .conditions()
            .iter()
            .find(|c| c.type_ == "DeviceConnected")
        {
            Some(c) if c.reason == "InvalidSettings" => Ok(c.message.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(message.contains("at 19200 8N1"), "{message}");
    assert!(message.contains("must use the same baudRate"), "{message}");
    // ... and the other two keep polling.
    wait_connected(&links, "meter-1").await;

    delete_links_and_wait(&links, &["meter-1", "meter-2", "meter-3"]).await;
    operator.stop().await;
}
