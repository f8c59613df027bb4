//! On a new connection a device's write topic is subscribed before any of
//! its messages is sent: a client that sees the device's first status may
//! write to it at once, and a broker drops a write published before the
//! subscription exists (an end-to-end test once waited a minute for the
//! answer to such a write). The broker here is a listener that answers
//! CONNECT and records the order of what the client sends.

use std::time::Duration;

use bytes::BytesMut;
use devicelink_mqtt::{Publisher, TopicContext, publisher::DeviceMqtt};
use rumqttc::{ConnAck, ConnectReturnCode, Packet};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The next whole packet the client sent.
async fn next_packet(socket: &mut TcpStream, buffer: &mut BytesMut) -> Packet {
    loop {
        match Packet::read(buffer, 1 << 20) {
            Ok(packet) => return packet,
            Err(rumqttc::Error::InsufficientBytes(_)) => {
                let read = tokio::time::timeout(Duration::from_secs(10), socket.read_buf(buffer))
                    .await
                    .expect("the client sends within 10 s")
                    .expect("read from the client");
                assert!(read > 0, "the client closed the connection");
            }
            Err(e) => panic!("not an MQTT packet: {e:?}"),
        }
    }
}

#[tokio::test]
async fn the_write_topic_is_subscribed_before_the_status_waiting_for_the_connection() {
    let broker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = broker.local_addr().unwrap().port();
    let options = serde_json::from_value(serde_json::json!({
        "client": {"server": format!("tcp://127.0.0.1:{port}")},
        "message": {"topic": "plant/:name", "qos": 1},
    }))
    .unwrap();
    let data =
        std::env::temp_dir().join(format!("devicelink-subscribe-order-{}", std::process::id()));
    let (device, _state) = DeviceMqtt::new(Default::default(), data.as_path().into());
    let link = TopicContext {
        namespace: "plant".into(),
        name: "fan".into(),
        uid: "u1".into(),
    };
    let publisher = Publisher::start(&options, &link, &|_| Err("no references".into()), &device)
        .expect("the options are valid");

    let (mut socket, _) = broker.accept().await.unwrap();
    let mut buffer = BytesMut::new();
    assert!(matches!(
        next_packet(&mut socket, &mut buffer).await,
        Packet::Connect(..)
    ));
    // The status is waiting when the connection comes up.
    publisher.publish(br#"{"on":true}"#.to_vec());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut connack = BytesMut::new();
    ConnAck::new(ConnectReturnCode::Success, false)
        .write(&mut connack)
        .unwrap();
    socket.write_all(&connack).await.unwrap();

    let mut sent = vec![];
    while !sent.iter().any(|p| matches!(p, Packet::Publish(_))) {
        sent.push(next_packet(&mut socket, &mut buffer).await);
    }
    let first = sent
        .iter()
        .find(|p| matches!(p, Packet::Subscribe(_) | Packet::Publish(_)));
    match first {
        Some(Packet::Subscribe(subscribe)) => {
            assert_eq!(subscribe.filters[0].path, "plant/fan/$write");
        }
        other => panic!("the status was sent before the write topic was subscribed: {other:?}"),
    }
}
