//! The client's certificates and the server certificates it trusts.
//!
//! async-opcua keeps both in a PKI directory: the client's certificate and
//! key, and a `trusted` folder it checks the server's certificate against
//! when the session is created. Each device gets its own directory, rebuilt
//! before every connection from the spec (so a certificate removed from the
//! trust list stops being trusted at once), plus the certificate it pinned
//! on first use, which lives as long as the adaptor process. Devices without
//! a client certificate of their own share one the adaptor generates once.

use std::{
    fs,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use opcua::crypto::{CertificateStore, PrivateKey, X509, X509Data};

use crate::session::Failure;

/// The application URI of the adaptor, also in its generated certificate.
pub const APPLICATION_URI: &str = "urn:devicelink:adaptor:opcua";

/// Where the PKI directories live; shared by every device task.
#[derive(Clone)]
pub struct Pki {
    root: PathBuf,
    generated: Arc<Mutex<Option<(PathBuf, PathBuf)>>>,
}

/// A device's PKI directory, ready for a connection.
pub struct DeviceStore {
    pub dir: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// PKI under `root` (created as needed).
    pub fn new(root: PathBuf) -> Pki {
        Pki {
            root,
            generated: Arc::default(),
        }
    }

    /// The directory the adaptor asks servers for their endpoints from
    /// (with its own certificate, so the stack has one to show).
    pub fn discovery(&self) -> Result<DeviceStore, String> {
        let (certificate, key) = self.adaptor_certificate()?;
        Ok(DeviceStore {
            dir: self.root.join("discovery"),
            certificate,
            key,
        })
    }

    /// The adaptor's own certificate and key, generated on first use.
    pub fn adaptor_certificate(&self) -> Result<(PathBuf, PathBuf), String> {
        let mut generated = self.generated.lock().unwrap();
        if let Some(paths) = generated.as_ref() {
            return Ok(paths.clone());
        }
        let cert = self.root.join("adaptor").join("cert.der");
        let key = self.root.join("adaptor").join("private.pem");
        if !(cert.exists() && key.exists()) {
            let mut data = X509Data {
                key_size: 2048,
                common_name: "devicelink OPC-UA adaptor".into(),
                organization: "devicelink".into(),
                organizational_unit: "adaptors".into(),
                country: "DE".into(),
                state: "-".into(),
                alt_host_names: Vec::<String>::new().into(),
                certificate_duration_days: 3650,
            };
            data.alt_host_names.add_uri(APPLICATION_URI);
            for host in hostname().into_iter().chain(["localhost".to_string()]) {
                data.alt_host_names.add_dns(host);
            }
            CertificateStore::create_certificate_and_key(&data, true, &cert, &key)
                .map_err(|e| format!("cannot create the adaptor's certificate: {e}"))?;
        }
        *generated = Some((cert.clone(), key.clone()));
        Ok((cert, key))
    }

    /// Rebuilds the device's directory: its client certificate (its own or
    /// the adaptor's), and `server` as the one trusted server certificate.
    pub fn prepare(
        &self,
        device: &str,
        client: Option<&(String, String)>,
        server: Option<&X509>,
    ) -> Result<DeviceStore, Failure> {
        let dir = self.root.join("devices").join(device.replace('/', "_"));
        let io =
            |e: std::io::Error| Failure::settings(format!("PKI directory {}: {e}", dir.display()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["trusted", "rejected", "own", "private"] {
            fs::create_dir_all(dir.join(sub)).map_err(io)?;
        }
        if let Some(cert) = server {
            let der = cert.to_der().map_err(|_| {
                Failure::settings("the server's certificate cannot be stored".into())
            })?;
            let name = CertificateStore::cert_file_name(cert);
            fs::write(dir.join("trusted").join(name), der).map_err(io)?;
        }
        let (certificate, key) = match client {
            Some((cert, key)) => {
                X509::from_pem(cert.as_bytes()).map_err(|_| {
                    Failure::settings(
                        "protocol.tlsConfig.certFilePEM is not a PEM certificate".into(),
                    )
                })?;
                PrivateKey::from_pem(key.as_bytes()).map_err(|_| {
                    Failure::settings(
                        "protocol.tlsConfig.keyFilePEM is not a PEM RSA private key".into(),
                    )
                })?;
                let (c, k) = (
                    dir.join("own").join("cert.pem"),
                    dir.join("private").join("key.pem"),
                );
                fs::write(&c, cert).map_err(io)?;
                write_private(&k, key.as_bytes()).map_err(io)?;
                (c, k)
            }
            None => self.adaptor_certificate().map_err(Failure::settings)?,
        };
        Ok(DeviceStore {
            dir,
            certificate,
            key,
        })
    }
}

/// The certificates of a PEM bundle; the error names the field.
pub fn certificates(pem: &str, field: &str) -> Result<Vec<X509>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let blocks: Vec<&str> = pem.split(BEGIN).skip(1).collect();
    if blocks.is_empty() {
        return Err(format!("{field} holds no PEM certificate"));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            X509::from_pem(format!("{BEGIN}{b}").as_bytes())
                .map_err(|_| format!("certificate {} of {field} does not parse", i + 1))
        })
        .collect()
}

/// What the adaptor decided about a server's certificate.
pub fn check(
    server: &X509,
    trusted: &[X509],
    trust_on_first_use: bool,
    pinned: &mut Option<X509>,
) -> Result<(), Failure> {
    let thumbprint = server.thumbprint().as_hex_string();
    let is = |c: &X509| c.thumbprint().as_hex_string() == thumbprint;
    if trusted.iter().any(is) || trusted.iter().any(|ca| issued_by(server, ca)) {
        return Ok(());
    }
    let described = format!(
        "the server's certificate (SHA-1 thumbprint {thumbprint}, subject {})",
        server.subject_name()
    );
    match pinned {
        Some(p) if is(p) => Ok(()),
        Some(p) => Err(Failure::untrusted(format!(
            "{described} differs from the one pinned on first use ({}); \
             if the server's certificate was renewed, add it to tlsConfig.caFilePEM(Ref) or restart the adaptor",
            p.thumbprint().as_hex_string()
        ))),
        None if trust_on_first_use => {
            tracing::warn!(%thumbprint, subject = %server.subject_name(), "trusting the server's certificate on first use and pinning it");
            *pinned = Some(server.clone());
            Ok(())
        }
        None => Err(Failure::untrusted(format!(
            "{described} is not trusted: add it, or the CA that signed it, to tlsConfig.caFilePEM \
             or caFilePEMRef, or set tlsConfig.trustOnFirstUse: true"
        ))),
    }
}

/// Whether the server's certificate is for the application the endpoint
/// announces: its URI must be one of the certificate's subjectAltName URIs,
/// wherever it stands (OPC-UA Part 6 fixes no order; stacks put it first or
/// after the DNS names and addresses). Checked here, before the stack
/// checks it again, so that a mismatch names both sides.
pub fn check_application_uri(server: &X509, announced: &str) -> Result<(), Failure> {
    if server.is_application_uri_valid(announced).is_ok() {
        return Ok(());
    }
    let holds = match server.application_uris() {
        uris if uris.is_empty() => "no URI among its subjectAltName entries".to_string(),
        uris => format!("the application URI {}", uris.join(", ")),
    };
    Err(Failure::new(
        devicelink_adaptor_runtime::Reason::InvalidServerCertificate,
        format!(
            "the server announces the application URI {announced:?}, but its certificate holds \
             {holds}: OPC-UA requires them to match (fix the server's certificate or its applicationUri)"
        ),
    ))
}

/// Whether the server's certificate names the host the spec's endpoint
/// reaches it by. Stacks put the names of the machine they run on in the
/// certificates they make (node-opcua: its host name and addresses, not
/// 127.0.0.1 or localhost), so a server reached by another name, a Service
/// or an address it did not list, is refused; checked here, before the
/// stack checks it again, so that the refusal says which names would do.
pub fn check_host(server: &X509, endpoint: &str) -> Result<(), Failure> {
    let Some(host) = host_of(endpoint) else {
        return Ok(()); // not a URL the stack can use either: it says so
    };
    if server.is_hostname_valid(&host).is_ok() {
        return Ok(());
    }
    let names = host_names(server);
    let names = if names.is_empty() {
        "no DNS name or address".to_string()
    } else {
        names.join(", ")
    };
    Err(Failure::new(
        devicelink_adaptor_runtime::Reason::InvalidServerCertificate,
        format!(
            "the server's certificate does not name {host}, the host of protocol.endpoint; it \
             names {names}: reach the server by one of those names, or give it a certificate \
             that names {host}"
        ),
    ))
}

/// The host of an `opc.tcp://host:port/path` URL (an IPv6 address without
/// its brackets).
fn host_of(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// The DNS names and IP addresses among the certificate's subjectAltName
/// entries, in order.
fn host_names(server: &X509) -> Vec<String> {
    use x509_cert::{
        Certificate, der::Decode, ext::pkix::SubjectAltName, ext::pkix::name::GeneralName,
    };
    let Some(cert) = server
        .to_der()
        .ok()
        .and_then(|d| Certificate::from_der(&d).ok())
    else {
        return Vec::new();
    };
    let Ok(Some((_, names))) = cert.tbs_certificate.get::<SubjectAltName>() else {
        return Vec::new();
    };
    names
        .0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(dns) => Some(dns.to_string()),
            GeneralName::IpAddress(ip) => match ip.as_bytes() {
                &[a, b, c, d] => Some(std::net::Ipv4Addr::new(a, b, c, d).to_string()),
                bytes => <[u8; 16]>::try_from(bytes)
                    .ok()
                    .map(|v6| std::net::Ipv6Addr::from(v6).to_string()),
            },
            _ => None,
        })
        .collect()
}

/// Whether `ca` signed `server`: `server` names `ca`'s subject as its
/// issuer, `ca` may sign certificates (a CA by its basic constraints, and
/// keyCertSign if it has key usage), and `ca`'s RSA key verifies the
/// signature (PKCS#1 v1.5 with SHA-256, SHA-384, SHA-512 or SHA-1, what
/// OPC-UA's policies use). Validity periods are async-opcua's to check, as
/// for any trusted certificate.
pub fn issued_by(server: &X509, ca: &X509) -> bool {
    use x509_cert::{Certificate, der::Decode};
    let (Ok(server), Ok(ca)) = (server.to_der(), ca.to_der()) else {
        return false;
    };
    let (Ok(server), Ok(ca)) = (Certificate::from_der(&server), Certificate::from_der(&ca)) else {
        return false;
    };
    server.tbs_certificate.issuer == ca.tbs_certificate.subject
        && may_sign_certificates(&ca)
        && signature_verifies(&server, &ca)
}

fn may_sign_certificates(ca: &x509_cert::Certificate) -> bool {
    use x509_cert::{
        der::{Decode, oid::db::rfc5280},
        ext::pkix::{BasicConstraints, KeyUsage, KeyUsages},
    };
    let extensions = ca.tbs_certificate.extensions.as_deref().unwrap_or_default();
    let value = |oid| {
        extensions
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    };
    let is_ca = value(rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .and_then(|v| BasicConstraints::from_der(v).ok())
        .is_some_and(|b| b.ca);
    let signs = value(rfc5280::ID_CE_KEY_USAGE)
        .map(|v| KeyUsage::from_der(v).is_ok_and(|k| k.0.contains(KeyUsages::KeyCertSign)))
        .unwrap_or(true);
    is_ca && signs
}

fn signature_verifies(server: &x509_cert::Certificate, ca: &x509_cert::Certificate) -> bool {
    use rsa::{
        RsaPublicKey,
        pkcs1v15::{Signature, VerifyingKey},
        pkcs8::DecodePublicKey,
        signature::Verifier,
    };
    use x509_cert::der::{Encode, oid::db::rfc5912};
    let Ok(spki) = ca.tbs_certificate.subject_public_key_info.to_der() else {
        return false;
    };
    let Ok(key) = RsaPublicKey::from_public_key_der(&spki) else {
        return false;
    };
    let (Ok(tbs), Some(signed)) = (server.tbs_certificate.to_der(), server.signature.as_bytes())
    else {
        return false;
    };
    let Ok(signature) = Signature::try_from(signed) else {
        return false;
    };
    let algorithm = server.signature_algorithm.oid;
    if algorithm == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        VerifyingKey::<sha2::Sha256>::new(key)
            .verify(&tbs, &signature)
            .is_ok()
    } else if algorithm == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
        VerifyingKey::<sha2::Sha384>::new(key)
            .verify(&tbs, &signature)
            .is_ok()
    } else if algorithm == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
        VerifyingKey::<sha2::Sha512>::new(key)
            .verify(&tbs, &signature)
            .is_ok()
    } else if algorithm == rfc5912::SHA_1_WITH_RSA_ENCRYPTION {
        VerifyingKey::<sha1::Sha1>::new(key)
            .verify(&tbs, &signature)
            .is_ok()
    } else {
        false
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &std::path::Path, pem: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(pem)
}

fn hostname() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The PKI root: `$DEVICELINK_OPCUA_PKI`, else `opcua-pki` in the
/// adaptor's data directory (the pod's emptyDir: the root filesystem is
/// read-only, and the generated certificate outlives a crash, so servers
/// that were told to trust it still do), else under the temporary directory.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEVICELINK_OPCUA_PKI") {
        return dir.into();
    }
    match std::env::var_os("DEVICELINK_DATA_DIR") {
        Some(data) => PathBuf::from(data).join("opcua-pki"),
        None => std::env::temp_dir().join("devicelink-opcua-pki"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the stack makes a certificate from (the key size keeps it
    /// quick), with no subjectAltName yet.
    fn certificate_data(name: &str) -> X509Data {
        X509Data {
            key_size: 1024,
            common_name: name.into(),
            organization: "devicelink".into(),
            organizational_unit: "tests".into(),
            country: "DE".into(),
            state: "-".into(),
            alt_host_names: Vec::<String>::new().into(),
            certificate_duration_days: 1,
        }
    }

    /// A certificate made by the stack itself.
    fn certificate(name: &str) -> X509 {
        let mut data = certificate_data(name);
        data.alt_host_names.add_uri("urn:test");
        X509::cert_and_pkey(&data).unwrap().0
    }

    /// A certificate whose subjectAltName holds `uris` after a DNS name
    /// and two addresses, or before them (`uri_first`).
    fn certificate_with(uris: &[&str], uri_first: bool) -> X509 {
        let mut data = certificate_data("plc");
        let names = &mut data.alt_host_names;
        if uri_first {
            uris.iter().for_each(|uri| names.add_uri(uri));
        }
        names.add_dns("plc.example");
        names.add_address("127.0.0.1");
        names.add_address("::1");
        if !uri_first {
            uris.iter().for_each(|uri| names.add_uri(uri));
        }
        X509::cert_and_pkey(&data).unwrap().0
    }

    #[test]
    fn the_application_uri_may_stand_anywhere_among_the_alt_names() {
        for first in [true, false] {
            let cert = certificate_with(&["urn:plc"], first);
            check_application_uri(&cert, "urn:plc").unwrap();
            // The stack agrees, and finds the host name wherever it is.
            cert.is_application_uri_valid("urn:plc").unwrap();
            cert.is_hostname_valid("plc.example").unwrap();
            cert.is_hostname_valid("127.0.0.1").unwrap();
        }
        check_application_uri(
            &certificate_with(&["urn:other", "urn:plc"], false),
            "urn:plc",
        )
        .unwrap();
    }

    #[test]
    fn a_certificate_for_another_application_is_refused_naming_both() {
        let refused =
            check_application_uri(&certificate_with(&["urn:other"], false), "urn:plc").unwrap_err();
        assert_eq!(
            refused.reason,
            devicelink_adaptor_runtime::Reason::InvalidServerCertificate
        );
        assert!(
            refused.message.contains("\"urn:plc\"") && refused.message.contains("urn:other"),
            "{}",
            refused.message
        );
        let none = check_application_uri(&certificate_with(&[], false), "urn:plc").unwrap_err();
        assert!(none.message.contains("no URI"), "{}", none.message);
    }

    #[test]
    fn a_server_reached_by_a_name_its_certificate_lacks_is_refused_naming_those_it_has() {
        let cert = certificate_with(&["urn:plc"], false);
        for endpoint in [
            "opc.tcp://plc.example:4840/",
            "opc.tcp://127.0.0.1:4840",
            "opc.tcp://[::1]:4840/path",
        ] {
            check_host(&cert, endpoint).unwrap();
        }
        let refused = check_host(&cert, "opc.tcp://10.0.0.7:4840/plc").unwrap_err();
        assert_eq!(
            refused.reason,
            devicelink_adaptor_runtime::Reason::InvalidServerCertificate
        );
        assert!(
            refused
                .message
                .contains("does not name 10.0.0.7, the host of protocol.endpoint; it names plc.example, 127.0.0.1, ::1"),
            "{}",
            refused.message
        );
    }

    fn pem(cert: &X509) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.to_der().unwrap());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn a_listed_certificate_is_trusted_and_another_is_not() {
        let (server, other) = (certificate("server"), certificate("other"));
        let bundle = format!("{}{}", pem(&other), pem(&server));
        let trusted = certificates(&bundle, "caFilePEM").unwrap();
        assert_eq!(trusted.len(), 2);
        let mut pinned = None;
        assert!(check(&server, &trusted, false, &mut pinned).is_ok());
        let refused = check(&server, &trusted[..1], false, &mut pinned).unwrap_err();
        assert_eq!(
            refused.reason,
            devicelink_adaptor_runtime::Reason::UntrustedServerCertificate
        );
        assert!(
            refused.message.contains("trustOnFirstUse"),
            "{}",
            refused.message
        );
        assert!(
            refused
                .message
                .contains(&server.thumbprint().as_hex_string())
        );
        assert!(pinned.is_none(), "nothing is pinned without the opt-in");
    }

    #[test]
    fn a_certificate_is_not_its_own_ca_nor_another_ones() {
        // The stack's application certificates are self-signed and no CA;
        // the CA-signed case runs against a real server in e2e
        // (opcua_security), with certificates openssl made.
        let (server, other) = (certificate("server"), certificate("other"));
        assert!(!issued_by(&server, &server));
        assert!(!issued_by(&server, &other));
    }

    #[test]
    fn trust_on_first_use_pins_the_first_certificate() {
        let (first, second) = (certificate("first"), certificate("second"));
        let mut pinned = None;
        assert!(check(&first, &[], true, &mut pinned).is_ok());
        assert!(check(&first, &[], true, &mut pinned).is_ok());
        let refused = check(&second, &[], true, &mut pinned).unwrap_err();
        assert!(
            refused.message.contains("pinned on first use"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn a_bundle_without_certificates_is_named() {
        assert_eq!(
            certificates("not pem", "protocol.tlsConfig.caFilePEM").unwrap_err(),
            "protocol.tlsConfig.caFilePEM holds no PEM certificate"
        );
        let e = certificates(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            "x",
        )
        .unwrap_err();
        assert_eq!(e, "certificate 1 of x does not parse");
    }
}
