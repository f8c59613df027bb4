//! TLS for `ssl://`, `tls://` and `tcps://` brokers, with rustls and its
//! ring provider (the one kube uses: one crypto provider in the process).
//!
//! The server is verified against `caFilePEM` when given, else the system's
//! roots; `serverName` names the certificate to expect when it is not the
//! host dialled; `insecureSkipVerify` accepts any certificate (still checking
//! that the server holds its key). A client certificate and key give mutual
//! TLS.

use std::sync::Arc;

use devicelink_api::mqtt::MqttTlsConfig;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::WebPkiServerVerifier,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};

use crate::error::{PublisherError, Resolve, pick};

fn tls_error(field: &'static str, why: impl ToString) -> PublisherError {
    PublisherError::Tls(field, why.to_string())
}

/// The rustls client configuration for a device's `tlsConfig`.
pub(crate) fn client_config(
    tls: Option<&MqttTlsConfig>,
    resolve: Resolve,
) -> Result<ClientConfig, PublisherError> {
    let default = MqttTlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("tlsConfig", e))?;

    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify == Some(true) {
        Arc::new(AcceptAnyCertificate(provider))
    } else {
        let roots = roots(tls, resolve)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_error("tlsConfig.caFilePEM", e))?;
        match &tls.server_name {
            Some(name) => Arc::new(ExpectName {
                inner: webpki,
                name: ServerName::try_from(name.clone())
                    .map_err(|e| tls_error("tlsConfig.serverName", e))?,
            }),
            None => webpki,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let cert = pick(
        "tlsConfig.certFilePEMRef",
        &tls.cert_file_pem,
        &tls.cert_file_pem_ref,
        resolve,
    )?;
    let key = pick(
        "tlsConfig.keyFilePEMRef",
        &tls.key_file_pem,
        &tls.key_file_pem_ref,
        resolve,
    )?;
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error("tlsConfig.certFilePEM", e))?;
            if chain.is_empty() {
                return Err(tls_error("tlsConfig.certFilePEM", "holds no certificate"));
            }
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| tls_error("tlsConfig.keyFilePEM", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error("tlsConfig.keyFilePEM", e))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The CA given, or the system's roots.
fn roots(tls: &MqttTlsConfig, resolve: Resolve) -> Result<RootCertStore, PublisherError> {
    let mut roots = RootCertStore::empty();
    match pick(
        "tlsConfig.caFilePEMRef",
        &tls.ca_file_pem,
        &tls.ca_file_pem_ref,
        resolve,
    )? {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| tls_error("tlsConfig.caFilePEM", e))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error("tlsConfig.caFilePEM", e))?;
            }
            if roots.is_empty() {
                return Err(tls_error("tlsConfig.caFilePEM", "holds no certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// Verifies the server's certificate for `name` instead of the host dialled.
#[derive(Debug)]
struct ExpectName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ExpectName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate, but the handshake signatures are
/// still checked, so the server must hold the key of what it presents.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
