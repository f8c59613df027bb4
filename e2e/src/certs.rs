//! Certificates for TLS tests, made by openssl.

use crate::openssl;

/// A CA, a server certificate for broker.test and 127.0.0.1, a client
/// certificate, OPC-UA application certificates for the test server
/// (`opcua-server`: its application URI first, then localhost and
/// 127.0.0.1; `opcua-uri-last`: the URI after the names and addresses;
/// `opcua-other-app`: another application's URI; `opcua-elsewhere`: the
/// test server's URI, for another host name and address than loopback),
/// and a second CA that signed none of them.
pub fn certificates() -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:broker.test,IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(d.join("named.ext"), "subjectAltName=DNS:broker.test\n").unwrap();
    // An extension makes it an X.509 v3 certificate, which rustls requires.
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    std::fs::write(
        d.join("opcua.ext"),
        format!(
            "subjectAltName=URI:{},DNS:localhost,IP:127.0.0.1\n\
             keyUsage=digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
            crate::opcua::APP_URI
        ),
    )
    .unwrap();
    // The layout other stacks make: DNS names and addresses first, the
    // application URI last; and a certificate for another application.
    let opcua_usage = "keyUsage=digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment\n\
                       extendedKeyUsage=serverAuth,clientAuth\n";
    std::fs::write(
        d.join("opcua-uri-last.ext"),
        format!(
            "subjectAltName=DNS:localhost,DNS:plc.example,IP:127.0.0.1,IP:::1,URI:{}\n{opcua_usage}",
            crate::opcua::APP_URI
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("opcua-other-app.ext"),
        format!("subjectAltName=DNS:localhost,IP:127.0.0.1,URI:urn:example:another-server\n{opcua_usage}"),
    )
    .unwrap();
    std::fs::write(
        d.join("opcua-elsewhere.ext"),
        format!(
            "subjectAltName=DNS:plc.example,IP:192.0.2.10,URI:{}\n{opcua_usage}",
            crate::opcua::APP_URI
        ),
    )
    .unwrap();
    for (name, ext) in [
        ("server", Some("server.ext")),
        ("named", Some("named.ext")),
        ("client", Some("client.ext")),
        ("opcua-server", Some("opcua.ext")),
        ("opcua-uri-last", Some("opcua-uri-last.ext")),
        ("opcua-other-app", Some("opcua-other-app.ext")),
        ("opcua-elsewhere", Some("opcua-elsewhere.ext")),
    ] {
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let mut args = vec!["x509", "-req", "-in", &format!("{name}.csr")]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(
            [
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
            ]
            .map(String::from),
        );
        args.push(format!("{name}.pem"));
        if let Some(ext) = ext {
            args.extend(["-extfile".to_string(), ext.to_string()]);
        }
        openssl(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // mosquitto drops to its own user when started as root.
    for entry in std::fs::read_dir(d).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

pub mod tempdir {
    /// A directory under the system's temporary directory, removed on drop.
    pub struct Dir(std::path::PathBuf);

    impl Default for Dir {
        fn default() -> Dir {
            Dir::new()
        }
    }

    impl Dir {
        pub fn new() -> Dir {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("devicelink-tls-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
