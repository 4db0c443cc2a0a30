//! TLS on the quorum links (`sslQuorum=true`): mutual TLS with ZooKeeper's `ssl.quorum.*` keys.
//! Each server presents its key store's certificate whether it dials or accepts, and checks
//! the peer's against its trust store; the dialer also checks that the accepting peer's
//! certificate names the host of its `server.N` line (or the address dialed), unless
//! `ssl.quorum.hostnameVerification=false`. The stores are read once at startup by the same
//! readers as the client port's (`server::tls`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::QuorumTlsConfig;
use crate::server::tls::{load_key_store, load_trust_store, protocol_versions, provider};

/// How long a peer may take to finish a handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The acceptor and connector of every quorum link of this server.
#[derive(Clone)]
pub struct QuorumTls {
    acceptor: TlsAcceptor,
    config: Arc<rustls::ClientConfig>,
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    hostname_verification: bool,
    client_hostname_verification: bool,
    /// `sslQuorum`: dial peers with TLS.
    pub dial_tls: bool,
    /// `portUnification`: accept plain peers too.
    pub accept_plain: bool,
    metrics: crate::metrics::QuorumTlsMetrics,
}

impl QuorumTls {
    /// Reads the stores; each error names the key or file at fault.
    pub fn load(
        config: &QuorumTlsConfig,
        metrics: crate::metrics::QuorumTlsMetrics,
    ) -> anyhow::Result<QuorumTls> {
        let provider =
            Arc::new(provider(config.cipher_suites.as_deref()).context("ssl.quorum.ciphersuites")?);
        let versions = protocol_versions(&config.protocol, config.enabled_protocols.as_deref())
            .context("ssl.quorum.protocol / ssl.quorum.enabledProtocols")?;
        let roots = Arc::new(load_trust_store(&config.trust_store, "ssl.quorum.trustStore")?);
        let (chain, key) = load_key_store(&config.key_store, "ssl.quorum.keyStore")?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("cannot build the quorum peer verifier")?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .context("ssl.quorum.enabledProtocols and ssl.quorum.ciphersuites have nothing in common")?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .with_context(|| {
                format!(
                    "{}: the private key does not match the certificate",
                    config.key_store.location.display()
                )
            })?;
        // The client side's verifier depends on the peer dialed; this config is the template.
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .context("ssl.quorum.enabledProtocols and ssl.quorum.ciphersuites have nothing in common")?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)
            .context("the quorum key store's certificate cannot be used as a client certificate")?;
        Ok(QuorumTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            config: Arc::new(client),
            roots,
            provider,
            hostname_verification: config.hostname_verification,
            client_hostname_verification: config.client_hostname_verification,
            dial_tls: config.ssl_quorum,
            accept_plain: config.port_unification,
            metrics,
        })
    }

    /// The accepting side's handshake, bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
        let peer_ip = stream.peer_addr().map_err(|e| e.to_string())?.ip();
        let outcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) if self.client_hostname_verification => match names_address(&stream, peer_ip) {
                Ok(()) => Ok(stream),
                Err(error) => Err(error),
            },
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
        };
        if outcome.is_err() {
            self.metrics.failure("accept");
        }
        outcome
    }

    /// The dialing side's handshake with the peer at `host` (its `server.N` host).
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let outcome = self.dial(host, stream).await;
        if outcome.is_err() {
            self.metrics.failure("dial");
        }
        outcome
    }

    async fn dial(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let peer_ip = stream.peer_addr().map_err(|e| e.to_string())?.ip();
        let inner = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let mut config = (*self.config).clone();
        config.dangerous().set_certificate_verifier(Arc::new(PeerVerifier {
            inner,
            peer_ip,
            hostname_verification: self.hostname_verification,
        }));
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
            .map_err(|e| format!("{host}: not a host name: {e}"))?;
        let connector = TlsConnector::from(Arc::new(config));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
        }
    }
}

/// ZooKeeper's client host check on the quorum (`ssl.quorum.clientHostnameVerification`): the
/// connecting peer's certificate, already verified against the trust store, must name the
/// address it connects from (ZooKeeper also tries the address's reverse-DNS name, which
/// ferrokeeper does not look up).
fn names_address(stream: &tokio_rustls::server::TlsStream<TcpStream>, peer_ip: IpAddr) -> Result<(), String> {
    let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) else {
        return Err("the peer sent no certificate".into());
    };
    let certificate =
        webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("bad peer certificate: {e:?}"))?;
    let address = ServerName::IpAddress(peer_ip.into());
    certificate
        .verify_is_valid_for_subject_name(&address)
        .map_err(|e| format!("the peer's certificate does not name its address {peer_ip}: {e:?}"))
}

/// The trust store's chain check, then the host check: the certificate must name the host
/// dialed or the address connected to (either passes, as ZooKeeper's ZKTrustManager tries
/// both); with hostname verification off, only the chain is checked.
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    peer_ip: IpAddr,
    hostname_verification: bool,
}

fn is_name_mismatch(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(error) if is_name_mismatch(&error) => {
                let address = ServerName::IpAddress(self.peer_ip.into());
                match self.inner.verify_server_cert(end_entity, intermediates, &address, ocsp_response, now) {
                    Err(_) if !self.hostname_verification => Ok(ServerCertVerified::assertion()),
                    Err(_) => Err(error),
                    verified => verified,
                }
            }
            other => other,
        }
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
