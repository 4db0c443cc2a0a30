//! TLS to a server's `secureClientPort`, configured with the Java client's property names
//! (`zookeeper.client.secure`, `zookeeper.ssl.keyStore.*`, `zookeeper.ssl.trustStore.*`,
//! `zookeeper.ssl.hostnameVerification`), so a `CLIENT_JVMFLAGS` line or a
//! `-client-configuration` file carries over.
//!
//! rustls (ring provider), as the server. The key and trust store readers (PEM, PKCS12; JKS
//! refused) are a copy of the ~60 lines in the server's `server/src/server/tls.rs`: the client
//! crate must not depend on the server crate, and the two are small enough to keep in step by
//! hand.
//!
//! Hostname verification follows ZooKeeper's `ZKTrustManager.checkServerTrusted`: the server's
//! certificate must name the address the client connected to or the host name of the connect
//! string (Java tries the address first, then the name); with
//! `zookeeper.ssl.hostnameVerification=false` the name check is skipped, the chain is still
//! verified against the trust store.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

/// A key or trust store file, as `zookeeper.ssl.<store>.location` / `.password` / `.type`.
#[derive(Clone, PartialEq, Eq)]
pub struct Store {
    /// The file.
    pub location: PathBuf,
    /// The PKCS12 password (unused for PEM, whose keys must be unencrypted).
    pub password: String,
    /// `PEM` or `PKCS12`; `None`: from the file name (`.pem`, `.p12`/`.pfx`), as ZooKeeper.
    pub store_type: Option<String>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs and panics.
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("store_type", &self.store_type)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store with no password and its type taken from the file name.
    pub fn new(location: impl Into<PathBuf>) -> Store {
        Store { location: location.into(), password: String::new(), store_type: None }
    }

    /// The store's password.
    pub fn password(mut self, password: &str) -> Store {
        self.password = password.to_owned();
        self
    }
}

/// TLS settings for [`crate::Builder::tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `zookeeper.ssl.keyStore.*`: the client's certificate chain and key, for servers with
    /// `ssl.clientAuth=need` (its subject becomes the session's `x509` id).
    pub key_store: Option<Store>,
    /// `zookeeper.ssl.trustStore.*`: the CAs the server's certificate is checked against
    /// (required: the client has no default CA bundle).
    pub trust_store: Option<Store>,
    /// `zookeeper.ssl.hostnameVerification` (default true).
    pub hostname_verification: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { key_store: None, trust_store: None, hostname_verification: true }
    }
}

impl TlsOptions {
    /// Reads the Java client's properties (later pairs win, as repeated `-D` flags):
    /// `None` unless `zookeeper.client.secure` is `true`. A `passwordPath` file, when given,
    /// wins over the password, as in ZooKeeper.
    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<TlsOptions>> {
        let properties: Vec<(&str, &str)> = properties.into_iter().collect();
        let get = |key: &str| properties.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.trim());
        // Java's Boolean.parseBoolean: only "true" (any case) is true.
        let is_true = |key: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !is_true("zookeeper.client.secure") {
            return Ok(None);
        }
        let store = |name: &str| -> Result<Option<Store>> {
            let Some(location) = get(&format!("zookeeper.ssl.{name}.location")).filter(|v| !v.is_empty())
            else {
                return Ok(None);
            };
            let password_path = format!("zookeeper.ssl.{name}.passwordPath");
            let password = match get(&password_path).filter(|v| !v.is_empty()) {
                Some(file) => std::fs::read_to_string(file)
                    .map_err(|e| Error::Tls(format!("{password_path}={file}: cannot read it: {e}")))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => get(&format!("zookeeper.ssl.{name}.password")).unwrap_or_default().to_owned(),
            };
            let store_type =
                get(&format!("zookeeper.ssl.{name}.type")).filter(|v| !v.is_empty()).map(str::to_owned);
            Ok(Some(Store { location: PathBuf::from(location), password, store_type }))
        };
        Ok(Some(TlsOptions {
            key_store: store("keyStore")?,
            trust_store: store("trustStore")?,
            hostname_verification: get("zookeeper.ssl.hostnameVerification")
                .is_none_or(|v| v.eq_ignore_ascii_case("true")),
        }))
    }
}

/// [`TlsOptions`] with their stores loaded, to share among many sessions (a load generator's):
/// [`crate::Builder::tls_loaded`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoadedTls(pub(crate) Arc<Connector>);

impl LoadedTls {
    /// Reads the stores; each error names the property or file at fault.
    pub fn load(options: &TlsOptions) -> Result<LoadedTls> {
        Ok(LoadedTls(Arc::new(Connector::new(options)?)))
    }
}

/// What a session dials with: the loaded stores.
#[derive(Debug)]
pub(crate) struct Connector {
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    hostname_verification: bool,
}

impl Connector {
    /// Loads the stores; each error names the property or file at fault.
    pub(crate) fn new(options: &TlsOptions) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Some(trust) = &options.trust_store else {
            return Err(Error::Tls(
                "zookeeper.ssl.trustStore.location is not set: the client needs the CA that signed the \
                 server's certificate"
                    .into(),
            ));
        };
        let roots = Arc::new(load_trust_store(trust)?);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::Tls(format!("cannot build the certificate verifier: {e}")))?;
        let client_cert = options.key_store.as_ref().map(load_key_store).transpose()?;
        Ok(Connector {
            provider,
            verifier,
            client_cert,
            hostname_verification: options.hostname_verification,
        })
    }

    /// Runs the handshake over `tcp`, connected to `host` (`name:port` from the connect
    /// string). The error names the cause (`invalid peer certificate: NotValidForName`, ...).
    pub(crate) async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let peer_ip = tcp.peer_addr()?.ip();
        let name = host_name(host);
        let server_name = match ServerName::try_from(name.to_owned()) {
            Ok(server_name) => server_name,
            Err(_) => ServerName::IpAddress(peer_ip.into()),
        };
        let verifier = Arc::new(HostVerifier {
            inner: self.verifier.clone(),
            peer_ip,
            hostname_verification: self.hostname_verification,
        });
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(std::io::Error::other)?,
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(server_name, tcp).await
    }
}

/// `name` of `name:port`, `[v6]:port` or a bare name.
fn host_name(host: &str) -> &str {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    name.trim_start_matches('[').trim_end_matches(']')
}

/// The trust store's chain check, then ZooKeeper's host check: the certificate must be valid
/// for the connect string's name or for the address connected to (or either, when
/// hostname verification is off).
#[derive(Debug)]
struct HostVerifier {
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

impl ServerCertVerifier for HostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let by_name =
            self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match by_name {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pem,
    Pkcs12,
}

/// The store's type: `.type` if given, else from the file name, as ZooKeeper's
/// KeyStoreFileType; JKS and BCFKS are refused naming the keytool conversion.
fn kind(store: &Store, key: &str) -> Result<Kind> {
    let path = store.location.display();
    let named = match &store.store_type {
        Some(t) => t.to_ascii_uppercase(),
        None => {
            let lower = store.location.to_string_lossy().to_ascii_lowercase();
            match lower.rsplit_once('.').map(|(_, ext)| ext) {
                Some("pem") => "PEM".into(),
                Some("p12" | "pfx") => "PKCS12".into(),
                Some("jks") => "JKS".into(),
                Some("bcfks") => "BCFKS".into(),
                _ => {
                    return Err(Error::Tls(format!(
                        "{key}.location={path}: cannot tell the store type from the file name: set \
                         {key}.type, or name it .pem or .p12"
                    )));
                }
            }
        }
    };
    match named.as_str() {
        "PEM" => Ok(Kind::Pem),
        "PKCS12" => Ok(Kind::Pkcs12),
        "JKS" | "BCFKS" => Err(Error::Tls(format!(
            "{path}: {key} is a {named} store, which ferrokeeper cannot read; convert it with `keytool \
             -importkeystore -srckeystore {path} -destkeystore store.p12 -deststoretype PKCS12`"
        ))),
        other => Err(Error::Tls(format!("{key}.type={other}: expected PEM or PKCS12"))),
    }
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read {key}.location {}: {e}", path.display())))
}

fn open_pkcs12(bytes: &[u8], store: &Store) -> Result<p12_keystore::KeyStore> {
    p12_keystore::KeyStore::from_pkcs12(bytes, &store.password)
        .map_err(|e| Error::Tls(format!("{}: cannot open the PKCS12 store: {e}", store.location.display())))
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client's chain and key: one PEM file holding both, or the PKCS12 store's key entry.
fn load_key_store(store: &Store) -> Result<KeyPair> {
    const KEY: &str = "zookeeper.ssl.keyStore";
    let kind = kind(store, KEY)?;
    let path = store.location.display();
    let bytes = read(&store.location, KEY)?;
    match kind {
        Kind::Pem => {
            let bad = |what: &str| Error::Tls(format!("{path}: {what}"));
            if bytes.windows(b"ENCRYPTED PRIVATE KEY".len()).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
                return Err(bad("encrypted PEM private keys are not supported; decrypt it or use PKCS12"));
            }
            let chain = CertificateDer::pem_slice_iter(&bytes)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad(&format!("bad PEM certificate: {e}")))?;
            if chain.is_empty() {
                return Err(bad("no CERTIFICATE block (the key store holds the chain and the key)"));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| bad(&format!("no usable PRIVATE KEY block: {e}")))?;
            Ok((chain, key))
        }
        Kind::Pkcs12 => {
            let keystore = open_pkcs12(&bytes, store)?;
            let Some((_, entry)) = keystore.private_key_chain() else {
                return Err(Error::Tls(format!("{path}: the PKCS12 store has no private key entry")));
            };
            let chain = entry.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
            Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().to_vec()))))
        }
    }
}

/// The CAs: every certificate of a PEM file, or the certificates of a PKCS12 store.
fn load_trust_store(store: &Store) -> Result<RootCertStore> {
    const KEY: &str = "zookeeper.ssl.trustStore";
    let kind = kind(store, KEY)?;
    let path = store.location.display();
    let bytes = read(&store.location, KEY)?;
    let certs: Vec<CertificateDer<'static>> = match kind {
        Kind::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tls(format!("{path}: bad PEM certificate: {e}")))?,
        Kind::Pkcs12 => {
            let mut certs = Vec::new();
            for (_, entry) in open_pkcs12(&bytes, store)?.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => certs.push(c.as_der().to_vec().into()),
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        certs.extend(chain.chain().iter().map(|c| c.as_der().to_vec().into()));
                    }
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
            certs
        }
    };
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Tls(format!(
            "{path}: no usable certificate in the trust store ({ignored} unparsable)"
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_java_client_properties() {
        assert_eq!(
            TlsOptions::from_properties([("zookeeper.ssl.trustStore.location", "/t.pem")]).unwrap(),
            None
        );
        let options = TlsOptions::from_properties([
            ("zookeeper.client.secure", "true"),
            ("zookeeper.ssl.keyStore.location", "/k/client.p12"),
            ("zookeeper.ssl.keyStore.password", "pw"),
            ("zookeeper.ssl.trustStore.location", "/k/ca.pem"),
            ("zookeeper.ssl.trustStore.type", "PEM"),
            ("zookeeper.ssl.hostnameVerification", "false"),
        ])
        .unwrap()
        .unwrap();
        let key = options.key_store.unwrap();
        assert_eq!(
            (key.location, key.password.as_str(), key.store_type),
            ("/k/client.p12".into(), "pw", None)
        );
        assert_eq!(options.trust_store.unwrap().store_type.as_deref(), Some("PEM"));
        assert!(!options.hostname_verification);
        let default = TlsOptions::from_properties([("zookeeper.client.secure", "TRUE")]).unwrap().unwrap();
        assert!(default.hostname_verification && default.key_store.is_none());
    }

    #[test]
    fn store_types_come_from_the_name_and_jks_is_refused() {
        assert_eq!(kind(&Store::new("/a/b.pem"), "k").unwrap(), Kind::Pem);
        assert_eq!(kind(&Store::new("/a/b.P12"), "k").unwrap(), Kind::Pkcs12);
        let err = kind(&Store::new("/a/trust.jks"), "zookeeper.ssl.trustStore").unwrap_err().to_string();
        assert!(err.contains("/a/trust.jks") && err.contains("keytool"), "{err}");
        let err = kind(&Store::new("/a/b.key"), "zookeeper.ssl.keyStore").unwrap_err().to_string();
        assert!(err.contains("zookeeper.ssl.keyStore.type"), "{err}");
        let err = Connector::new(&TlsOptions::default()).unwrap_err().to_string();
        assert!(err.contains("zookeeper.ssl.trustStore.location"), "{err}");
    }

    #[test]
    fn host_names_of_connect_string_hosts() {
        assert_eq!(host_name("localhost:2281"), "localhost");
        assert_eq!(host_name("127.0.0.1:2281"), "127.0.0.1");
        assert_eq!(host_name("[::1]:2281"), "::1");
        assert_eq!(host_name("zk1"), "zk1");
    }
}
