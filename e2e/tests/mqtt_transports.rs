//! The MQTT publisher's transports against a real mosquitto: TLS listeners
//! with certificates made by openssl (the CA verified, mutual TLS, a wrong
//! CA refused with a clear status, serverName and insecureSkipVerify), and a
//! unix socket, and websockets, plain and over TLS (through a websocket
//! front for mosquitto, whose own websocket listener does not start on this
//! machine) with the handshake's extra HTTP headers.

use std::path::Path;

use devicelink_api::property::MqttStatus;
use devicelink_e2e::{
    Broker,
    broker::{Settings, Tls},
    certs::{certificates, tempdir},
    mqtt::{test_publisher, wait_status},
    process::free_port,
};
use serde_json::json;
use tokio::sync::watch;

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// A TLS broker presenting `cert`; `require_client` asks for a client certificate.
async fn broker(dir: &Path, cert: &str, require_client: bool) -> Broker {
    let tls = Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{cert}.pem")),
        key: dir.join(format!("{cert}.key")),
        require_client_cert: require_client,
    };
    Broker::start_configured(
        free_port(),
        &Settings {
            tls: Some(tls),
            ..Default::default()
        },
    )
    .await
}

/// Starts a publisher with `client` options and waits until its status
/// shows `connected` (and, when refused, an error containing `error`).
async fn connect(client: serde_json::Value, connected: bool, error: &str) -> MqttStatus {
    let (publisher, rx) = test_publisher(json!({
        "client": client,
        "message": {"topic": "e2e/tls/:name"},
    }));
    let status = wait_status(&rx, connected, (!connected).then_some(error)).await;
    drop(publisher);
    status
}

#[tokio::test]
async fn tls_transports_verify_the_server_and_present_client_certificates() {
    let certs = certificates();
    let d = certs.path();

    // The server verified against the given CA.
    let plain = broker(d, "server", false).await;
    let url = format!("ssl://127.0.0.1:{}", plain.port);
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}}),
        true,
        "",
    )
    .await;
    // tls:// and tcps:// are the same transport.
    let tcps = format!("tcps://127.0.0.1:{}", plain.port);
    connect(
        json!({"server": tcps, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}}),
        true,
        "",
    )
    .await;
    // MQTT 5 over the same TLS listener.
    connect(
        json!({"server": tcps, "protocolVersion": 5, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}}),
        true,
        "",
    )
    .await;

    // A CA that did not sign the server's certificate: refused, and the
    // status says why.
    let refused = connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "other-ca.pem")}}),
        false,
        "UnknownIssuer",
    )
    .await;
    assert!(!refused.connected);
    // ...unless told to accept anything.
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "other-ca.pem"), "insecureSkipVerify": true}}),
        true,
        "",
    )
    .await;
    drop(plain);

    // A certificate for broker.test only: dialling 127.0.0.1 needs serverName.
    let named = broker(d, "named", false).await;
    let url = format!("ssl://127.0.0.1:{}", named.port);
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}}),
        false,
        "not valid for name",
    )
    .await;
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "ca.pem"), "serverName": "broker.test"}}),
        true,
        "",
    )
    .await;
    drop(named);

    // Mutual TLS: without a client certificate the broker hangs up; with
    // one it lets the client in.
    let mutual = broker(d, "server", true).await;
    let url = format!("ssl://127.0.0.1:{}", mutual.port);
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}}),
        false,
        "",
    )
    .await;
    connect(
        json!({"server": url, "tlsConfig": {
            "caFilePEM": read(d, "ca.pem"),
            "certFilePEM": read(d, "client.pem"),
            "keyFilePEM": read(d, "client.key"),
        }}),
        true,
        "",
    )
    .await;
}

#[tokio::test]
async fn a_unix_socket_broker_is_reached_by_its_path() {
    let dir = tempdir::Dir::new();
    // mosquitto (dropping to its own user as root) creates the socket here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.path().join("mqtt.sock");
    let broker = Broker::mosquitto_with(
        free_port(),
        &[],
        &format!("listener 0 {}\n", socket.display()),
    )
    .await;
    let url = format!("unix://{}", socket.display());
    let status = connect(json!({"server": url}), true, "").await;
    assert_eq!(status.server.as_deref(), Some(url.as_str()));
    drop(broker);
}

/// A websocket front for a TCP broker: accepts websocket connections (the
/// `mqtt` subprotocol), over TLS when given a certificate and key (wss),
/// records each handshake's headers, and carries the binary frames to and
/// from the broker.
async fn websocket_front(
    broker_port: u16,
    tls: Option<(&str, &str)>,
) -> (u16, watch::Receiver<Vec<(String, String)>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

    let acceptor = tls.map(|(cert, key)| {
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("server key PEM");
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server certificate and its key");
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen) = watch::channel(Vec::new());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen_tx = seen_tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            carry(tls, broker_port, seen_tx).await;
                        }
                    }
                    None => carry(stream, broker_port, seen_tx).await,
                }
            });
        }
    });
    (port, seen)
}

/// One websocket connection of the front, carried to the broker.
async fn carry<S>(stream: S, broker_port: u16, seen_tx: watch::Sender<Vec<(String, String)>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use async_tungstenite::tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request, Response},
    };
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // tungstenite's handshake callback returns its own large error type.
    #[allow(clippy::result_large_err)]
    let record = |request: &Request, mut response: Response| {
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        seen_tx.send_replace(headers);
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
        Ok::<_, ErrorResponse>(response)
    };
    let Ok(ws) = async_tungstenite::tokio::accept_hdr_async(stream, record).await else {
        return;
    };
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", broker_port)).await else {
        return;
    };
    let (mut to_client, mut from_client) = ws.split();
    let (mut from_broker, mut to_broker) = tcp.into_split();
    let up = async move {
        while let Some(Ok(message)) = from_client.next().await {
            if let Message::Binary(bytes) = message
                && to_broker.write_all(&bytes).await.is_err()
            {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_broker.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let frame = Message::Binary(buf[..n].to_vec().into());
            if to_client.send(frame).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(up, down);
}

#[tokio::test]
async fn websockets_carry_mqtt_and_the_handshake_headers() {
    let broker = Broker::start().await;
    let (port, seen) = websocket_front(broker.port, None).await;
    let url = format!("ws://127.0.0.1:{port}/mqtt");
    connect(
        json!({"server": url, "httpHeaders": {"X-Plant": ["hall-3"], "Authorization": ["Bearer edge"]}}),
        true,
        "",
    )
    .await;
    let headers = seen.borrow().clone();
    let has = |name: &str, value: &str| {
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && v == value)
    };
    assert!(has("x-plant", "hall-3"), "{headers:?}");
    assert!(has("authorization", "Bearer edge"), "{headers:?}");
    assert!(has("sec-websocket-protocol", "mqtt"), "{headers:?}");
    drop(broker);
}

#[tokio::test]
async fn secure_websockets_verify_the_server_and_carry_the_headers() {
    let certs = certificates();
    let d = certs.path();
    let broker = Broker::start().await;
    let (cert, key) = (read(d, "server.pem"), read(d, "server.key"));
    let (port, seen) = websocket_front(broker.port, Some((&cert, &key))).await;
    let url = format!("wss://127.0.0.1:{port}/mqtt");
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "ca.pem")}, "httpHeaders": {"X-Plant": ["hall-3"]}}),
        true,
        "",
    )
    .await;
    let headers = seen.borrow().clone();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-plant") && v == "hall-3"),
        "{headers:?}"
    );
    // A server that the given CA did not sign is refused.
    connect(
        json!({"server": url, "tlsConfig": {"caFilePEM": read(d, "other-ca.pem")}}),
        false,
        "UnknownIssuer",
    )
    .await;
    drop(broker);
}
