//! Client TLS on `secureClientPort`: builds the rustls server configuration from ZooKeeper's
//! `ssl.*` keys (PEM and PKCS12 stores, protocols, cipher suites, `ssl.clientAuth`) and runs
//! each connection's handshake, naming the cause of a failed one in the log and in
//! `ferrokeeper_tls_handshake_failures_total{reason}`. A verified client certificate gives
//! its connection the `x509` id of its subject DN (ZooKeeper's X509AuthenticationProvider),
//! rendered here as Java's `X500Principal.getName()` renders it.
//!
//! This module owns reading the key material (file I/O at startup) and the handshake; the
//! connection task after it is the same as on the plain port.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use x509_cert::der::{Decode, Encode, Tagged};

use crate::config::{ClientAuth, ClientTlsConfig, StoreConfig, StoreType};
use crate::metrics::TlsMetrics;
use crate::tree::acl;
use ferrokeeper_proto::Id;

/// How long a client may take to finish the handshake (ZooKeeper's sessionless timeout).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The secure port's acceptor and the counters its handshakes update.
#[derive(Clone)]
pub struct ClientTls {
    acceptor: TlsAcceptor,
    metrics: TlsMetrics,
    /// `X509AuthenticationProvider.superUser`.
    x509_super_user: Option<Arc<str>>,
}

impl ClientTls {
    /// Loads the stores and checks every key; each error names the key or file at fault.
    pub fn load(config: &ClientTlsConfig, metrics: TlsMetrics) -> anyhow::Result<ClientTls> {
        let server_config = server_config(config)?;
        Ok(ClientTls {
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            metrics,
            x509_super_user: config.x509_super_user.as_deref().map(Arc::from),
        })
    }

    /// Runs the handshake; returns the stream and the ids its client certificate gives the
    /// connection (none without one). On failure logs one line naming the cause, counts it,
    /// and returns `None`: the caller drops the socket, which touches no other connection.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Vec<Id>)> {
        let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await;
        let (reason, detail) = match outcome {
            Ok(Ok(stream)) => match self.certificate_ids(&stream) {
                Ok(ids) => {
                    self.metrics.handshakes.inc();
                    if let Some(id) = ids.last() {
                        tracing::info!(%peer, id = %id.id, "authenticated id for scheme 'x509'");
                    }
                    return Some((stream, ids));
                }
                Err(detail) => ("bad_certificate", detail),
            },
            Ok(Err(error)) => (failure_reason(&error), error.to_string()),
            Err(_) => ("timeout", format!("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs())),
        };
        self.metrics.failure(reason);
        tracing::warn!(%peer, reason, %detail, "TLS handshake failed on the secure client port");
        None
    }
}

impl ClientTls {
    /// X509AuthenticationProvider.handleAuthentication: the verified leaf certificate's
    /// subject DN as `x509` id (and `super` for the super user). rustls has already checked
    /// the chain against the trust store, as ZooKeeper's provider checks it again.
    fn certificate_ids(&self, stream: &TlsStream<TcpStream>) -> Result<Vec<Id>, String> {
        let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) else {
            // ssl.clientAuth=none, or want without a certificate: no x509 id, as ZooKeeper.
            return Ok(Vec::new());
        };
        let dn =
            subject_dn(leaf).map_err(|e| format!("cannot read the client certificate's subject: {e}"))?;
        Ok(acl::x509_ids(&dn, self.x509_super_user.as_deref()))
    }
}

/// The subject DN of a DER certificate as Java's `X500Principal.getName()` (RFC 2253, as
/// `sun.security.x509.AVA.toRFC2253String`): RDNs last-to-first joined by `,`, the assertions
/// of a multi-valued RDN by `+`; CN, C, L, ST, O, OU, STREET, DC and UID by keyword, any other
/// attribute by its dotted OID with the value as `#` + lowercase hex of its DER encoding (as
/// is a value that is not a string); string values decoded as UTF-8, with `,=+<>#;"\`
/// escaped by `\`, NUL as `\00`, and leading and trailing spaces escaped.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, x509_cert::der::Error> {
    let certificate = x509_cert::Certificate::from_der(certificate_der)?;
    let mut rdns = Vec::new();
    for rdn in certificate.tbs_certificate.subject.0.iter().rev() {
        let mut assertions = Vec::new();
        for assertion in rdn.0.iter() {
            assertions.push(rfc2253_assertion(&assertion.oid.to_string(), &assertion.value)?);
        }
        rdns.push(assertions.join("+"));
    }
    Ok(rdns.join(","))
}

/// The keyword Java's RFC 2253 output uses for an attribute OID, if any.
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn rfc2253_assertion(oid: &str, value: &x509_cert::der::Any) -> Result<String, x509_cert::der::Error> {
    // T61String, IA5String, GeneralString, PrintableString, UTF8String, BMPString,
    // UniversalString: the tags Java's AVA.isDerString accepts.
    const STRING_TAGS: [u8; 7] = [20, 22, 27, 19, 12, 30, 28];
    let keyword = rfc2253_keyword(oid);
    let mut out = String::with_capacity(32);
    out.push_str(keyword.unwrap_or(oid));
    out.push('=');
    if keyword.is_none() || !STRING_TAGS.contains(&u8::from(value.tag())) {
        out.push('#');
        for byte in value.to_der()? {
            out.push_str(&format!("{byte:02x}"));
        }
        return Ok(out);
    }
    let text = String::from_utf8_lossy(value.value());
    let mut escaped: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => escaped.extend(['\\', c]),
            '\0' => escaped.extend(['\\', '0', '0']),
            _ => escaped.push(c),
        }
    }
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| blank(c)).count();
    let trail = escaped.iter().rev().take_while(|c| blank(c)).count();
    for (index, c) in escaped.iter().enumerate() {
        if index < lead || index >= escaped.len() - trail {
            out.push('\\');
        }
        out.push(*c);
    }
    Ok(out)
}

/// The `reason` label of a failed handshake: what went wrong, in a word.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed",
            _ => "io",
        };
    };
    match tls {
        // A plaintext ZooKeeper handshake (or a four-letter word) is not a TLS record.
        Error::InvalidMessage(_)
        | Error::InappropriateHandshakeMessage { .. }
        | Error::InappropriateMessage { .. } => "not_tls",
        Error::NoCertificatesPresented => "no_client_certificate",
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            "expired_certificate"
        }
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::NotValidForName,
        ) => "untrusted_certificate",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::PeerIncompatible(_) => "incompatible",
        Error::AlertReceived(_) => "alert_received",
        _ => "other",
    }
}

fn server_config(config: &ClientTlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(provider(config.cipher_suites.as_deref())?);
    let versions = protocol_versions(&config.protocol, config.enabled_protocols.as_deref())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("ssl.enabledProtocols and ssl.ciphersuites have no protocol and suite in common")?;
    let builder = match config.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want | ClientAuth::Need => {
            let Some(trust) = &config.trust_store else {
                bail!(
                    "ssl.clientAuth={} needs ssl.trustStore.location (the CAs client certificates are \
                     checked against); set it, or set ssl.clientAuth=none",
                    if config.client_auth == ClientAuth::Want { "want" } else { "need" }
                );
            };
            let roots = Arc::new(load_trust_store(trust, "ssl.trustStore")?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let verifier = if config.client_auth == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().context("cannot build the client verifier")?)
        }
    };
    let Some(key_store) = &config.key_store else {
        bail!("secureClientPort is set but ssl.keyStore.location is not: the server needs a certificate");
    };
    let (chain, key) = load_key_store(key_store, "ssl.keyStore")?;
    builder.with_single_cert(chain, key).with_context(|| {
        format!("{}: the private key does not match the certificate", key_store.location.display())
    })
}

/// rustls's ring provider, its suites narrowed to `ssl.ciphersuites`. Java's names are the
/// IANA names (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`). A real suite
/// name rustls does not implement (CBC, DHE, RSA key exchange) is skipped with a warning, so a
/// list copied from a Java config still works; anything else is refused.
pub(crate) fn provider(names: Option<&[String]>) -> anyhow::Result<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    let Some(names) = names else { return Ok(provider) };
    let all = provider.cipher_suites.clone();
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        match all.iter().find(|s| iana_name(s) == *name) {
            Some(suite) => chosen.push(*suite),
            None if is_suite_name(name) => skipped.push(name.as_str()),
            None => bail!(
                "ssl.ciphersuites: {name:?} is not a TLS cipher suite name; supported: {}",
                all.iter().map(iana_name).collect::<Vec<_>>().join(",")
            ),
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            skipped = skipped.join(","),
            "ssl.ciphersuites: rustls does not implement these; skipped"
        );
    }
    if chosen.is_empty() {
        bail!(
            "ssl.ciphersuites: none of {} is implemented by rustls; supported: {}",
            names.join(","),
            all.iter().map(iana_name).collect::<Vec<_>>().join(",")
        );
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// The IANA (and Java) name of a suite: rustls spells TLS 1.3 suites `TLS13_…`.
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn is_suite_name(name: &str) -> bool {
    (name.starts_with("TLS_") || name.starts_with("SSL_"))
        && name.len() > 8
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `ssl.enabledProtocols`, or what `ssl.protocol` enables by default (as a JDK SSLContext:
/// TLSv1.3 → TLSv1.3 and TLSv1.2; TLSv1.2 → TLSv1.2). rustls speaks only TLS 1.2 and 1.3.
pub(crate) fn protocol_versions(
    protocol: &str,
    enabled: Option<&[String]>,
) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let version = |key: &str, name: &str| match name {
        "TLSv1.3" => Ok(&rustls::version::TLS13),
        "TLSv1.2" => Ok(&rustls::version::TLS12),
        "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => {
            bail!("{key}: {name} is not supported (rustls speaks TLSv1.2 and TLSv1.3 only)")
        }
        other => bail!("{key}: unknown protocol {other:?} (expected TLSv1.2 or TLSv1.3)"),
    };
    let versions = match enabled {
        Some(names) => {
            names.iter().map(|n| version("ssl.enabledProtocols", n)).collect::<anyhow::Result<_>>()?
        }
        None => match protocol {
            "TLS" | "TLSv1.3" => vec![&rustls::version::TLS13, &rustls::version::TLS12],
            other => vec![version("ssl.protocol", other)?],
        },
    };
    if versions.is_empty() {
        bail!("ssl.enabledProtocols is empty");
    }
    Ok(versions)
}

fn refuse_java_only(store: &StoreConfig, key: &str) -> anyhow::Result<()> {
    match store.store_type {
        StoreType::Jks | StoreType::Bcfks => bail!(
            "{}: {key} is a {} store, which ferrokeeper cannot read (no maintained pure-Rust reader); \
             convert it to PKCS12 with `keytool -importkeystore -srckeystore {} -destkeystore {}.p12 \
             -deststoretype PKCS12` and point {key}.location at the .p12 file",
            store.location.display(),
            store.store_type.name(),
            store.location.display(),
            store.location.with_extension("").display(),
        ),
        StoreType::Pem | StoreType::Pkcs12 => Ok(()),
    }
}

fn read(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {key}.location {}", path.display()))
}

/// The server's chain and key: a PEM file holding both (as ZooKeeper's PEM key store), or the
/// PKCS12 store's private key entry.
pub(crate) fn load_key_store(
    store: &StoreConfig,
    key_name: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    refuse_java_only(store, key_name)?;
    let path = &store.location;
    let bytes = read(path, key_name)?;
    match store.store_type {
        StoreType::Pem => {
            if bytes.windows(b"ENCRYPTED PRIVATE KEY".len()).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
                bail!(
                    "{}: encrypted PEM private keys are not supported; decrypt it (`openssl pkcs8 -in key.pem \
                     -out plain.pem`) or use a PKCS12 key store",
                    path.display()
                );
            }
            let chain = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: bad PEM certificate", path.display()))?;
            if chain.is_empty() {
                bail!("{}: no CERTIFICATE block (the key store holds the chain and the key)", path.display());
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .with_context(|| format!("{}: no usable PRIVATE KEY block", path.display()))?;
            Ok((chain, key))
        }
        _ => {
            let keystore = p12_keystore::KeyStore::from_pkcs12(&bytes, &store.password)
                .map_err(|e| anyhow::anyhow!("{}: cannot open the PKCS12 store: {e}", path.display()))?;
            let Some((_, entry)) = keystore.private_key_chain() else {
                bail!("{}: the PKCS12 store has no private key entry", path.display());
            };
            let chain = entry.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().to_vec()));
            Ok((chain, key))
        }
    }
}

/// The CAs client certificates are checked against: every certificate of a PEM file, or the
/// trusted certificates (and chains) of a PKCS12 store.
pub(crate) fn load_trust_store(store: &StoreConfig, key_name: &str) -> anyhow::Result<RootCertStore> {
    refuse_java_only(store, key_name)?;
    let path = &store.location;
    let bytes = read(path, key_name)?;
    let certs: Vec<CertificateDer<'static>> = match store.store_type {
        StoreType::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: bad PEM certificate", path.display()))?,
        _ => {
            let keystore = p12_keystore::KeyStore::from_pkcs12(&bytes, &store.password)
                .map_err(|e| anyhow::anyhow!("{}: cannot open the PKCS12 store: {e}", path.display()))?;
            let mut certs = Vec::new();
            for (_, entry) in keystore.entries() {
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
        bail!("{}: no usable certificate in the trust store ({ignored} unparsable)", path.display());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn protocols_follow_zookeeper_defaults_and_refuse_old_ones() {
        assert_eq!(protocol_versions("TLSv1.3", None).unwrap().len(), 2);
        assert_eq!(protocol_versions("TLSv1.2", None).unwrap(), vec![&rustls::version::TLS12]);
        let only13 = protocol_versions("TLSv1.2", Some(&["TLSv1.3".to_owned()])).unwrap();
        assert_eq!(only13, vec![&rustls::version::TLS13]);
        let err = protocol_versions("TLSv1.1", None).unwrap_err().to_string();
        assert!(err.contains("ssl.protocol") && err.contains("TLSv1.1"), "{err}");
        let err = protocol_versions("TLSv1.3", Some(&["TLSv2".to_owned()])).unwrap_err().to_string();
        assert!(err.contains("ssl.enabledProtocols") && err.contains("TLSv2"), "{err}");
    }

    #[test]
    fn cipher_suites_map_java_names_and_refuse_unknown_ones() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = provider(Some(&names(&["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])))
            .unwrap();
        assert_eq!(p.cipher_suites.len(), 2);
        // A Java default list with CBC suites: those are skipped, the GCM one kept.
        let p = provider(Some(&names(&[
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ])))
        .unwrap();
        assert_eq!(
            p.cipher_suites.iter().map(iana_name).collect::<Vec<_>>(),
            ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
        );
        let err = provider(Some(&names(&["TLS_RSA_WITH_AES_128_CBC_SHA"]))).unwrap_err().to_string();
        assert!(err.contains("none of") && err.contains("TLS_AES_128_GCM_SHA256"), "{err}");
        let err = provider(Some(&names(&["aes128"]))).unwrap_err().to_string();
        assert!(err.contains("\"aes128\" is not a TLS cipher suite name"), "{err}");
    }

    #[test]
    fn jks_is_refused_naming_the_file_and_keytool() {
        let store = StoreConfig {
            location: "/etc/zk/keystore.jks".into(),
            password: String::new(),
            store_type: StoreType::Jks,
        };
        let err = load_key_store(&store, "ssl.keyStore").unwrap_err().to_string();
        assert!(err.contains("/etc/zk/keystore.jks") && err.contains("keytool -importkeystore"), "{err}");
        assert!(err.contains("ssl.keyStore"), "{err}");
    }

    #[test]
    fn plaintext_on_the_secure_port_is_named_not_tls() {
        let error = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(failure_reason(&error), "not_tls");
        let expired = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert_eq!(failure_reason(&expired), "expired_certificate");
    }
}
