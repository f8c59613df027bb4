//! OPC-UA sessions as a plant's security asks: Basic256Sha256 Sign and
//! SignAndEncrypt (and the Aes128Sha256RsaOaep and Aes256Sha256RsaPss
//! policies) with a username and password, an X.509 user, a password
//! over an unsecured endpoint; and the refusals, each with its reason on
//! DeviceConnected: a wrong password, a server certificate nobody trusted
//! (then trusted on first use when opted in), a policy the server does not
//! offer, a certificate for another application or another host.

use std::time::Duration;

use devicelink_api::{DeviceLink, opcua::OPCUADevice};
use devicelink_e2e::{
    LocalKubelet, begin, delete_links_and_wait, device_link,
    opcua::{OpcuaServer, ServerOptions},
    process::start_operator,
    wait_connected, wait_property, wait_reason,
};
use kube::Api;
use serde_json::{Value, json};

fn link(name: &str, protocol: Value) -> DeviceLink {
    device_link(
        "e2e-opcua-security",
        name,
        "edge-worker",
        "opcua",
        "OPCUADevice",
        json!({"spec": {
            "parameters": {"syncInterval": "500ms", "timeout": "5s"},
            "protocol": protocol,
            "properties": [{"name": "answer", "type": "int32", "readOnly": true, "visitor": {"nodeID": "ns=2;s=the.answer"}}],
        }}),
    )
}

#[tokio::test]
async fn secure_sessions_and_their_refusals() {
    let namespace = "e2e-opcua-security";
    let (_guard, client) = begin(namespace).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let variables = json!([{"name": "the.answer", "type": "Int32", "value": 42}]);
    // Certificates openssl made: a CA, a server certificate it signed for
    // the workshop below, and a client certificate for the X.509 user.
    let pki = devicelink_e2e::certs::certificates();
    let read = |file: &str| std::fs::read_to_string(pki.path().join(file)).unwrap();
    let (user_cert, user_key) = (read("client.pem"), read("client.key"));
    let user_cert_file = pki.path().join("client.pem");
    // Every endpoint, users by password.
    let plant = OpcuaServer::start(ServerOptions {
        policies: vec![
            "None",
            "Basic256Sha256_Sign",
            "Basic256Sha256_SignAndEncrypt",
            "Aes128Sha256RsaOaep_SignAndEncrypt",
            "Aes256Sha256RsaPss_Sign",
        ],
        users: vec![("operator", "s3cret")],
        variables: variables.clone(),
        ..Default::default()
    })
    .await;
    // Encrypted only, the user by certificate.
    let vault = OpcuaServer::start(ServerOptions {
        policies: vec!["Basic256Sha256_SignAndEncrypt"],
        user_cert: Some(user_cert_file),
        variables: variables.clone(),
        ..Default::default()
    })
    .await;
    // Servers whose certificates the CA signed: trusting the CA is enough.
    let signed_by_the_ca = |name: &str| {
        OpcuaServer::start(ServerOptions {
            policies: vec!["Basic256Sha256_SignAndEncrypt"],
            users: vec![("operator", "s3cret")],
            variables: variables.clone(),
            certificate: Some((
                pki.path().join(format!("{name}.pem")),
                pki.path().join(format!("{name}.key")),
            )),
            ..Default::default()
        })
    };
    let workshop = signed_by_the_ca("opcua-server").await;
    // The application URI last in the certificate, as other stacks make
    // them; and a certificate for another application.
    let uri_last = signed_by_the_ca("opcua-uri-last").await;
    let other_app = signed_by_the_ca("opcua-other-app").await;
    // A certificate for the plant's name and address, reached on loopback.
    let elsewhere = signed_by_the_ca("opcua-elsewhere").await;
    let ca = |name: &str| read(&format!("{name}.pem"));
    let trusted = |server: &OpcuaServer| json!({"caFilePEM": server.cert_pem()});
    let password = |p: &str| json!({"username": "operator", "password": p});
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let devices: Api<OPCUADevice> = Api::namespaced(client.clone(), namespace);

    let good = [
        link(
            "signed",
            json!({"endpoint": plant.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "Sign",
            "basicAuth": password("s3cret"), "tlsConfig": trusted(&plant)}),
        ),
        link(
            "encrypted",
            json!({"endpoint": plant.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": trusted(&plant)}),
        ),
        link(
            "aes128-encrypted",
            json!({"endpoint": plant.endpoint(), "securityPolicy": "Aes128Sha256RsaOaep", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": trusted(&plant)}),
        ),
        link(
            "aes256-signed",
            json!({"endpoint": plant.endpoint(), "securityPolicy": "Aes256Sha256RsaPss", "securityMode": "Sign",
            "basicAuth": password("s3cret"), "tlsConfig": trusted(&plant)}),
        ),
        link(
            "password-over-none",
            json!({"endpoint": plant.endpoint(), "basicAuth": password("s3cret"),
                   "allowInsecureCredentials": true}),
        ),
        link(
            "ca-signed",
            json!({"endpoint": workshop.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": {"caFilePEM": ca("ca")}}),
        ),
        link(
            "uri-last",
            json!({"endpoint": uri_last.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": {"caFilePEM": ca("ca")}}),
        ),
        link(
            "x509-user",
            json!({"endpoint": vault.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "certificateAuth": {"certFilePEM": user_cert, "keyFilePEM": user_key}, "tlsConfig": trusted(&vault)}),
        ),
    ];
    let bad = [
        (
            link(
                "wrong-password",
                json!({"endpoint": plant.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("guess"), "tlsConfig": trusted(&plant)}),
            ),
            "AuthenticationFailed",
            "BadUserAccessDenied",
        ),
        (
            link(
                "untrusted",
                json!({"endpoint": plant.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret")}),
            ),
            "UntrustedServerCertificate",
            "trustOnFirstUse",
        ),
        (
            link(
                "wrong-server",
                json!({"endpoint": plant.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "Sign",
            "basicAuth": password("s3cret"), "tlsConfig": trusted(&vault)}),
            ),
            "UntrustedServerCertificate",
            "is not trusted",
        ),
        (
            link(
                "another-ca",
                json!({"endpoint": workshop.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": {"caFilePEM": ca("other-ca")}}),
            ),
            "UntrustedServerCertificate",
            "or the CA that signed it",
        ),
        (
            link(
                "no-such-endpoint",
                json!({"endpoint": vault.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "Sign",
            "tlsConfig": trusted(&vault)}),
            ),
            "NoMatchingEndpoint",
            "SignAndEncrypt",
        ),
        (
            link(
                "other-application",
                json!({"endpoint": other_app.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": {"caFilePEM": ca("ca")}}),
            ),
            "InvalidServerCertificate",
            "announces the application URI \"urn:devicelink:test:opcua-server\", but its certificate holds the application URI urn:example:another-server",
        ),
        (
            link(
                "other-host",
                json!({"endpoint": elsewhere.endpoint(), "securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
            "basicAuth": password("s3cret"), "tlsConfig": {"caFilePEM": ca("ca")}}),
            ),
            "InvalidServerCertificate",
            "does not name 127.0.0.1, the host of protocol.endpoint; it names plc.example, 192.0.2.10",
        ),
        (
            link("anonymous", json!({"endpoint": plant.endpoint()})),
            "AuthenticationFailed",
            "does not take anonymous",
        ),
    ];
    for l in good.iter().chain(bad.iter().map(|(l, ..)| l)) {
        links
            .create(&Default::default(), l)
            .await
            .expect("create DeviceLink");
    }
    for l in &good {
        let name = l.metadata.name.as_deref().unwrap();
        wait_connected(&links, name).await;
        wait_property(&devices, name, "answer", "42").await;
    }
    for (l, reason, says) in &bad {
        let name = l.metadata.name.as_deref().unwrap();
        let c = wait_reason(&links, name, "DeviceConnected", "False", reason).await;
        assert!(
            c.message.contains(says),
            "{name}: {:?} does not say {says:?}",
            c.message
        );
    }

    // Opting in to trust on first use lets the untrusted one in.
    let patch = json!({"spec": {"template": {"spec": {"protocol": {"tlsConfig": {"trustOnFirstUse": true}}}}}});
    links
        .patch(
            "untrusted",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("opt in to trust on first use");
    wait_reason(&links, "untrusted", "DeviceConnected", "True", "Healthy").await;
    wait_property(&devices, "untrusted", "answer", "42").await;

    let mut names: Vec<&str> = good
        .iter()
        .map(|l| l.metadata.name.as_deref().unwrap())
        .collect();
    names.extend(
        bad.iter()
            .map(|(l, ..)| l.metadata.name.as_deref().unwrap()),
    );
    tokio::time::timeout(
        Duration::from_secs(120),
        delete_links_and_wait(&links, &names),
    )
    .await
    .expect("the DeviceLinks to go");
    operator.stop().await;
}
