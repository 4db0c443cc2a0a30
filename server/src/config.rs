//! zoo.cfg: ZooKeeper's `key=value` configuration file, read as QuorumPeerConfig reads it.
//!
//! Keys ZooKeeper knows but ferrokeeper does not act on yet are accepted quietly (logged at
//! debug); keys nobody knows are warned about, never fatal. Keys ZooKeeper turns into
//! `zookeeper.<key>` system properties (extendedTypesEnabled, skipACL,
//! DigestAuthenticationProvider.superDigest, jute.maxbuffer) are read the same way here.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferrokeeper_proto::frame::MAX_FRAME_DEFAULT;

/// A configuration error: names the key and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected key=value, got {text:?}")]
    Syntax { path: PathBuf, line: usize, text: String },
    #[error("{key} is not set in {path}")]
    Missing { key: &'static str, path: PathBuf },
    #[error("{key}={value}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

/// Every four-letter word ferrokeeper answers.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "isro", "dirs",
    "srst", "crst", "gtmk", "stmk", "hash",
];

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from (shown by `conf`).
    pub path: PathBuf,
    pub tick_time_ms: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    /// `clientPort`; `None` when only `secureClientPort` is set (a TLS-only server, which
    /// ZooKeeper allows too).
    pub client_port: Option<u16>,
    pub client_port_address: IpAddr,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Requests queued in the server at once before connections stop being read.
    pub global_outstanding_limit: u32,
    /// Enabled four-letter words (`srvr` always).
    pub four_letter_whitelist: BTreeSet<String>,
    /// Largest frame accepted (`jute.maxbuffer`).
    pub max_buffer_bytes: usize,
    /// `super:<base64 sha1>` from `DigestAuthenticationProvider.superDigest`.
    pub super_digest: Option<String>,
    pub extended_types_enabled: bool,
    pub skip_acl: bool,
    pub container_check_interval_ms: u64,
    pub container_max_per_minute: u32,
    pub container_max_never_used_interval_ms: i64,
    /// Outbound messages queued per connection before a client that stopped reading is cut off.
    pub connection_outbound_queue_max: usize,
    /// Reply bytes queued per connection (handed over, not yet written) before it is cut off.
    pub connection_outbound_bytes_max: usize,
    /// Transaction log settings (forceSync, maxBatchSize, txnLogBatchBytesMax, flushDelay,
    /// preAllocSize, txnLogSizeLimitInKb, txnLogBackend).
    pub log: crate::txlog::LogSettings,
    /// Where snapshots go: `<dataDir>/fk-snap`.
    pub snap_dir: PathBuf,
    /// `snapCount`: a snapshot is taken after snapCount/2 + rand(snapCount/2) txns.
    pub snap_count: u64,
    /// `autopurge.snapRetainCount` (at least 3).
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours; 0 = no automatic purge.
    pub purge_interval_hours: u64,
    /// The ensemble, when zoo.cfg lists `server.N` lines (and standaloneEnabled does not make
    /// a single-server list standalone).
    pub quorum: Option<QuorumConfig>,
    /// Where `/metrics` is served: `metricsProvider.httpHost:httpPort`; on when the port is
    /// given or the Prometheus provider class is named (port 7000 then, as ZooKeeper).
    pub metrics_http: Option<std::net::SocketAddr>,
    /// `metricsEnabled` (ferrokeeper's): false skips per-request histogram recording.
    pub metrics_enabled: bool,
    /// `otlp.*` (ferrokeeper's): OpenTelemetry export, resolved with the `OTEL_*` environment
    /// by [`crate::telemetry::OtlpSettings::resolve`].
    pub otlp: OtlpConfig,
    /// `secureClientPort` and the `ssl.*` keys: client TLS beside the plain port.
    pub client_tls: Option<ClientTlsConfig>,
    /// Auth providers, SASL (the JAAS `Server` section) and `enforce.auth.*`.
    pub auth: crate::auth::AuthConfig,
    /// `sslQuorum=true`: TLS on the quorum links, from the `ssl.quorum.*` keys.
    pub quorum_tls: Option<QuorumTlsConfig>,
    /// `client.portUnification`: the plain client port also accepts TLS clients, with the
    /// secure port's settings (which must be configured).
    pub client_port_unification: bool,
    /// Keys that were not understood, for one warning each at startup.
    pub unknown_keys: Vec<String>,
    /// ZooKeeper settings that were understood but ask for what ferrokeeper does not do
    /// (`reconfigEnabled=true`, `dynamicConfigFile`): one
    /// warning each at startup, saying what happens instead.
    pub ignored_settings: Vec<String>,
    /// `readonlymode.enabled` (ZooKeeper reads it as a system property; here a zoo.cfg key,
    /// also as `zookeeper.readonlymode.enabled`): a member without a quorum serves reads to
    /// clients that asked for read-only (`docs/ensembles.md`).
    pub read_only_mode: bool,
    /// `localSessionsEnabled`: in an ensemble, a new session is local to the server it was
    /// made on (no txn) until it creates an ephemeral node (`server/local_sessions.rs`).
    pub local_sessions: bool,
    /// `localSessionsUpgradingEnabled`: a local session creating an ephemeral node becomes
    /// global first; otherwise that create fails with EphemeralOnLocalSession.
    pub local_sessions_upgrading: bool,
}

/// The secure client port and its `ssl.*` keys (also read with the `zookeeper.` prefix), as
/// written. Loading the stores and checking protocols and cipher suites against what rustls
/// offers is `server::tls`'s job, at startup, so each error names the file or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsConfig {
    pub port: u16,
    /// `secureClientPortAddress`; else `clientPortAddress`'s address.
    pub address: IpAddr,
    /// `ssl.keyStore.*`: the server's certificate chain and private key.
    pub key_store: Option<StoreConfig>,
    /// `ssl.trustStore.*`: the CAs client certificates are checked against.
    pub trust_store: Option<StoreConfig>,
    /// `ssl.protocol` (ZooKeeper 3.9's default: TLSv1.3).
    pub protocol: String,
    /// `ssl.enabledProtocols`; unset: what `ssl.protocol` enables (TLSv1.3 → 1.3 and 1.2).
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites`; unset: rustls's defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.clientAuth`: none, want or need (the default, as ZooKeeper).
    pub client_auth: ClientAuth,
    /// `X509AuthenticationProvider.superUser`: the subject DN (as the `x509` id renders it)
    /// whose certificate also makes its connection `super`.
    pub x509_super_user: Option<String>,
}

/// A key or trust store: `ssl.<store>.location`, `.password` (or `.passwordPath`), `.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub location: PathBuf,
    pub password: String,
    pub store_type: StoreType,
}

/// ZooKeeper's KeyStoreFileType: given by `.type`, else inferred from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    Pkcs12,
    Jks,
    Bcfks,
}

/// `ssl.clientAuth`: whether a client must present a certificate the trust store vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for; a client without one is let in, a bad one is refused.
    Want,
    /// Required.
    Need,
}

/// Keys ZooKeeper accepts that later ferrokeeper features read (or that do not apply).
const KNOWN_NOT_YET_USED: &[&str] = &[
    "electionAlg",
    "peerType",
    "reconfigEnabled",
    "syncEnabled",
    "snapSizeLimitInKb",
    "fsync.warningthresholdms",
    "maxWriteQueuePollTime",
    "commitLogCount",
    "snapshotSizeFactor",
    "clientPortListenBacklog",
    "dynamicConfigFile",
    "metricsProvider.className",
    "metricsProvider.httpPort",
    "metricsProvider.httpHost",
    "metricsProvider.exportJvmInfo",
    "admin.enableServer",
    "admin.serverPort",
    "admin.serverAddress",
    "quorumListenOnAllIPs",
    "multiAddress.enabled",
    "4lw.commands.whitelist",
];

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &[])
    }

    /// Reads zoo.cfg, with `properties` (`-Dname=value` arguments, as ZooKeeper's JVM system
    /// properties) under it: a zoo.cfg key wins over a property of the same name. Then reads
    /// the files the keys name (the JAAS file).
    pub fn load_with(path: &Path, properties: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Config::parse_with(path, &text, properties)?;
        config.auth.load_files()?;
        Ok(config)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(path, text, &[])
    }

    pub fn parse_with(
        path: &Path,
        text: &str,
        properties: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(String, String)> = properties.to_vec();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::Syntax {
                    path: path.to_owned(),
                    line: index + 1,
                    text: raw.to_owned(),
                });
            };
            pairs.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        let get = |key: &str| pairs.iter().rev().find(|(k, _)| k == key || k == &format!("zookeeper.{key}"));
        let value_of = |key: &str| get(key).map(|(_, v)| v.as_str());

        let tick_time_ms: u32 = parse_or(value_of("tickTime"), "tickTime", 3000)?;
        if tick_time_ms == 0 {
            return Err(invalid("tickTime", "0", "must be positive"));
        }
        let data_dir = PathBuf::from(
            value_of("dataDir").ok_or(ConfigError::Missing { key: "dataDir", path: path.to_owned() })?,
        );
        let data_log_dir = value_of("dataLogDir").map(PathBuf::from).unwrap_or_else(|| data_dir.clone());
        let quorum = parse_quorum(&pairs, &data_dir, path)?;
        let own_client = quorum.as_ref().and_then(|q| q.me().and_then(|m| m.client_addr));
        let client_port: Option<u16> = match (value_of("clientPort"), own_client) {
            (Some(v), _) => Some(parse_value("clientPort", v)?),
            (None, Some(addr)) => Some(addr.port()),
            (None, None) if value_of("secureClientPort").is_some() => None,
            (None, None) => return Err(ConfigError::Missing { key: "clientPort", path: path.to_owned() }),
        };
        let client_port_address: IpAddr = match (value_of("clientPortAddress"), own_client) {
            (Some(v), _) => resolve_address(v)?,
            (None, Some(addr)) => addr.ip(),
            (None, None) => IpAddr::from([0, 0, 0, 0]),
        };
        let tick = tick_time_ms as i32;
        let min_session_timeout_ms = parse_or(value_of("minSessionTimeout"), "minSessionTimeout", -1)?;
        let min_session_timeout_ms =
            if min_session_timeout_ms < 0 { tick * 2 } else { min_session_timeout_ms };
        let max_session_timeout_ms = parse_or(value_of("maxSessionTimeout"), "maxSessionTimeout", -1)?;
        let max_session_timeout_ms =
            if max_session_timeout_ms < 0 { tick * 20 } else { max_session_timeout_ms };
        if min_session_timeout_ms > max_session_timeout_ms {
            return Err(invalid(
                "minSessionTimeout",
                &min_session_timeout_ms.to_string(),
                "minSessionTimeout must not be larger than maxSessionTimeout",
            ));
        }
        let mut four_letter_whitelist = BTreeSet::new();
        match value_of("4lw.commands.whitelist") {
            Some(list) => {
                for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    if word == "*" {
                        four_letter_whitelist.extend(FOUR_LETTER_WORDS.iter().map(|w| w.to_string()));
                    } else if FOUR_LETTER_WORDS.contains(&word) {
                        four_letter_whitelist.insert(word.to_owned());
                    } else {
                        tracing::warn!(word, "unknown four-letter word in 4lw.commands.whitelist");
                    }
                }
            }
            None => {
                four_letter_whitelist.insert("srvr".to_owned());
                // ZooKeeper enables isro by default when read-only mode is on.
                if value_of("readonlymode.enabled").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                    four_letter_whitelist.insert("isro".to_owned());
                }
            }
        }
        four_letter_whitelist.insert("srvr".to_owned());

        let max_buffer_bytes =
            parse_or(value_of("jute.maxbuffer"), "jute.maxbuffer", MAX_FRAME_DEFAULT as u64)? as usize;
        if max_buffer_bytes < 1024 {
            return Err(invalid("jute.maxbuffer", &max_buffer_bytes.to_string(), "must be at least 1024"));
        }
        let client_tls = parse_client_tls(&value_of, client_port_address)?;
        let auth = crate::auth::AuthConfig::parse(&value_of, &pairs, client_tls.is_some())?;
        let quorum_tls = parse_quorum_tls(&value_of)?;
        let client_port_unification =
            parse_bool(value_of("client.portUnification"), "client.portUnification")?;
        if client_port_unification && client_tls.is_none() {
            return Err(invalid(
                "client.portUnification",
                "true",
                "needs secureClientPort and its ssl.* keys (the TLS settings the client port uses)",
            ));
        }
        let super_digest = value_of("DigestAuthenticationProvider.superDigest").map(str::to_owned);
        if let Some(digest) = &super_digest
            && !digest.starts_with("super:")
        {
            return Err(invalid(
                "DigestAuthenticationProvider.superDigest",
                digest,
                "expected super:<base64 sha1>",
            ));
        }

        let known: BTreeSet<&str> = [
            "tickTime",
            "dataDir",
            "dataLogDir",
            "clientPort",
            "clientPortAddress",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "globalOutstandingLimit",
            "jute.maxbuffer",
            "DigestAuthenticationProvider.superDigest",
            "extendedTypesEnabled",
            "skipACL",
            "znode.container.checkIntervalMs",
            "znode.container.maxPerMinute",
            "znode.container.maxNeverUsedIntervalMs",
            "connection.outboundQueueMax",
            "connection.outboundBytesMax",
            "snapCount",
            "txnLogSizeLimitInKb",
            "preAllocSize",
            "forceSync",
            "flushDelay",
            "maxBatchSize",
            "txnLogBatchBytesMax",
            "txnLogBackend",
            "autopurge.snapRetainCount",
            "autopurge.purgeInterval",
            "initLimit",
            "syncLimit",
            "standaloneEnabled",
            "metricsEnabled",
            "otlp.endpoint",
            "otlp.sampleRatio",
            "otlp.serviceName",
            "secureClientPort",
            "secureClientPortAddress",
            "readonlymode.enabled",
            "localSessionsEnabled",
            "localSessionsUpgradingEnabled",
        ]
        .into_iter()
        .chain(KNOWN_NOT_YET_USED.iter().copied())
        .collect();
        let mut unknown_keys = Vec::new();
        for (index, (key, _)) in pairs.iter().enumerate() {
            let bare = key.strip_prefix("zookeeper.").unwrap_or(key);
            // A -D property that is not ZooKeeper's (log4j's, Java's) is no news.
            let from_properties = index < properties.len() && !key.starts_with("zookeeper.");
            if known.contains(bare)
                || from_properties
                || crate::auth::is_auth_key(bare)
                || QUORUM_TLS_KEYS.contains(&bare)
                || bare.starts_with("server.")
                || bare.starts_with("metricsProvider.")
                || SSL_KEYS.contains(&bare)
            {
                continue;
            }
            unknown_keys.push(key.clone());
        }

        let mut log = crate::txlog::LogSettings::new(data_log_dir.join("fk-log"));
        log.force_sync = match value_of("forceSync") {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(invalid("forceSync", v, "expected yes or no")),
        };
        log.batch_txns_max = parse_or(value_of("maxBatchSize"), "maxBatchSize", 1000usize)?.max(1);
        log.batch_bytes_max =
            parse_or(value_of("txnLogBatchBytesMax"), "txnLogBatchBytesMax", 4 * 1024 * 1024usize)?.max(1);
        log.flush_delay =
            std::time::Duration::from_millis(parse_or(value_of("flushDelay"), "flushDelay", 0u64)?);
        log.prealloc_bytes = parse_or(value_of("preAllocSize"), "preAllocSize", 65536u64)?.max(4) * 1024;
        let size_limit_kb: i64 = parse_or(value_of("txnLogSizeLimitInKb"), "txnLogSizeLimitInKb", -1)?;
        log.segment_bytes_max =
            if size_limit_kb > 0 { size_limit_kb as u64 * 1024 } else { 64 * 1024 * 1024 };
        log.backend = match value_of("txnLogBackend") {
            None => crate::txlog::Backend::Sync,
            Some("uring") => crate::txlog::Backend::Uring,
            Some("sync") => crate::txlog::Backend::Sync,
            Some(v) => return Err(invalid("txnLogBackend", v, "expected uring or sync")),
        };
        let snap_count: u64 = parse_or(value_of("snapCount"), "snapCount", 100_000)?;
        let snap_retain_count: usize =
            parse_or(value_of("autopurge.snapRetainCount"), "autopurge.snapRetainCount", 3)?;
        let purge_interval_hours =
            parse_or(value_of("autopurge.purgeInterval"), "autopurge.purgeInterval", 0)?;

        let metrics_port: Option<u16> = match value_of("metricsProvider.httpPort") {
            Some(v) => Some(parse_value("metricsProvider.httpPort", v)?),
            None => value_of("metricsProvider.className").filter(|c| c.contains("Prometheus")).map(|_| 7000),
        };
        let metrics_host: IpAddr = match value_of("metricsProvider.httpHost") {
            Some(v) => {
                v.parse().map_err(|_| invalid("metricsProvider.httpHost", v, "expected an IP address"))?
            }
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let metrics_http = metrics_port.map(|port| std::net::SocketAddr::new(metrics_host, port));

        let otlp = OtlpConfig {
            endpoint: value_of("otlp.endpoint").filter(|v| !v.is_empty()).map(str::to_owned),
            sample_ratio: match value_of("otlp.sampleRatio") {
                None => None,
                Some(v) => match v.parse::<f64>() {
                    Ok(ratio) if (0.0..=1.0).contains(&ratio) => Some(ratio),
                    _ => return Err(invalid("otlp.sampleRatio", v, "expected a number from 0 to 1")),
                },
            },
            service_name: value_of("otlp.serviceName").filter(|v| !v.is_empty()).map(str::to_owned),
        };

        Ok(Config {
            path: path.to_owned(),
            otlp,
            quorum,
            metrics_http,
            metrics_enabled: value_of("metricsEnabled").is_none_or(|v| !v.eq_ignore_ascii_case("false")),
            log,
            snap_dir: data_dir.join("fk-snap"),
            snap_count: snap_count.max(2),
            snap_retain_count: snap_retain_count.max(3),
            purge_interval_hours,
            tick_time_ms,
            data_dir,
            data_log_dir,
            client_port,
            client_port_address,
            max_client_cnxns: parse_or(value_of("maxClientCnxns"), "maxClientCnxns", 60)?,
            min_session_timeout_ms,
            max_session_timeout_ms,
            global_outstanding_limit: parse_or(
                value_of("globalOutstandingLimit"),
                "globalOutstandingLimit",
                1000,
            )?,
            four_letter_whitelist,
            max_buffer_bytes,
            super_digest,
            extended_types_enabled: parse_bool(value_of("extendedTypesEnabled"), "extendedTypesEnabled")?,
            skip_acl: value_of("skipACL").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            container_check_interval_ms: parse_or(
                value_of("znode.container.checkIntervalMs"),
                "znode.container.checkIntervalMs",
                60_000,
            )?,
            container_max_per_minute: parse_or(
                value_of("znode.container.maxPerMinute"),
                "znode.container.maxPerMinute",
                10_000,
            )?,
            container_max_never_used_interval_ms: parse_or(
                value_of("znode.container.maxNeverUsedIntervalMs"),
                "znode.container.maxNeverUsedIntervalMs",
                0,
            )?,
            connection_outbound_queue_max: parse_or(
                value_of("connection.outboundQueueMax"),
                "connection.outboundQueueMax",
                4096,
            )?,
            connection_outbound_bytes_max: parse_or(
                value_of("connection.outboundBytesMax"),
                "connection.outboundBytesMax",
                32 * 1024 * 1024usize,
            )?,
            client_tls,
            auth,
            quorum_tls,
            client_port_unification,
            unknown_keys,
            ignored_settings: ignored_settings(&value_of),
            read_only_mode: parse_bool(value_of("readonlymode.enabled"), "readonlymode.enabled")?,
            local_sessions: parse_bool(value_of("localSessionsEnabled"), "localSessionsEnabled")?,
            local_sessions_upgrading: parse_bool(
                value_of("localSessionsUpgradingEnabled"),
                "localSessionsUpgradingEnabled",
            )?,
        })
    }

    /// Clamps a requested session timeout to [min, max] as ZooKeeper does.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms)
    }
}

/// `sslQuorum` and the `ssl.quorum.*` keys ZooKeeper's QuorumX509Util reads; the ones
/// `docs/security.md` does not list as acted on are accepted and ignored.
const QUORUM_TLS_KEYS: &[&str] = &[
    "sslQuorum",
    "portUnification",
    "client.portUnification",
    "ssl.quorum.keyStore.location",
    "ssl.quorum.keyStore.password",
    "ssl.quorum.keyStore.passwordPath",
    "ssl.quorum.keyStore.type",
    "ssl.quorum.trustStore.location",
    "ssl.quorum.trustStore.password",
    "ssl.quorum.trustStore.passwordPath",
    "ssl.quorum.trustStore.type",
    "ssl.quorum.protocol",
    "ssl.quorum.enabledProtocols",
    "ssl.quorum.ciphersuites",
    "ssl.quorum.hostnameVerification",
    "ssl.quorum.clientHostnameVerification",
    "ssl.quorum.crl",
    "ssl.quorum.ocsp",
    "ssl.quorum.handshakeDetectionTimeoutMillis",
    "ssl.quorum.context.supplier.class",
    "sslQuorumReloadCertFiles",
];

/// The `ssl.*` keys of the client port ZooKeeper's ClientX509Util reads; the ones not listed
/// in `docs/security.md` as acted on are accepted and ignored.
const SSL_KEYS: &[&str] = &[
    "ssl.keyStore.location",
    "ssl.keyStore.password",
    "ssl.keyStore.passwordPath",
    "ssl.keyStore.type",
    "ssl.trustStore.location",
    "ssl.trustStore.password",
    "ssl.trustStore.passwordPath",
    "ssl.trustStore.type",
    "ssl.protocol",
    "ssl.enabledProtocols",
    "ssl.ciphersuites",
    "ssl.clientAuth",
    "ssl.hostnameVerification",
    "ssl.clientHostnameVerification",
    "ssl.allowReverseDnsLookup",
    "ssl.crl",
    "ssl.ocsp",
    "ssl.handshakeDetectionTimeoutMillis",
    "ssl.context.supplier.class",
    "ssl.authProvider",
    "X509AuthenticationProvider.superUser",
    "authProvider.x509",
    "serverCnxnFactory",
    "client.secure",
];

/// Reads `secureClientPort` and the client port's `ssl.*` keys; `None` without a secure port.
fn parse_client_tls<'a>(
    value_of: &impl Fn(&str) -> Option<&'a str>,
    client_port_address: IpAddr,
) -> Result<Option<ClientTlsConfig>, ConfigError> {
    let Some(port) = value_of("secureClientPort") else { return Ok(None) };
    let port: u16 = parse_value("secureClientPort", port)?;
    let address = match value_of("secureClientPortAddress") {
        Some(v) => resolve_address(v)?,
        None => client_port_address,
    };
    let store = |name: &str| parse_store(value_of, &format!("ssl.{name}"));
    let list = |key: &str| parse_list(value_of, key);
    let client_auth = match value_of("ssl.clientAuth").map(str::trim) {
        None | Some("") => ClientAuth::Need,
        Some(v) if v.eq_ignore_ascii_case("none") => ClientAuth::None,
        Some(v) if v.eq_ignore_ascii_case("want") => ClientAuth::Want,
        Some(v) if v.eq_ignore_ascii_case("need") => ClientAuth::Need,
        Some(v) => return Err(invalid("ssl.clientAuth", v, "expected none, want or need")),
    };
    check_ssl_auth_provider(value_of)?;
    Ok(Some(ClientTlsConfig {
        port,
        address,
        key_store: store("keyStore")?,
        trust_store: store("trustStore")?,
        protocol: value_of("ssl.protocol").filter(|v| !v.is_empty()).unwrap_or("TLSv1.3").to_owned(),
        enabled_protocols: list("ssl.enabledProtocols"),
        cipher_suites: list("ssl.ciphersuites"),
        client_auth,
        x509_super_user: value_of("X509AuthenticationProvider.superUser").map(str::to_owned),
    }))
}

/// A key or trust store's `<prefix>.location`, `.type`, `.password`, `.passwordPath`.
fn parse_store<'a>(
    value_of: &impl Fn(&str) -> Option<&'a str>,
    prefix: &str,
) -> Result<Option<StoreConfig>, ConfigError> {
    let location_key = format!("{prefix}.location");
    let Some(location) = value_of(&location_key).filter(|v| !v.is_empty()) else { return Ok(None) };
    let type_key = format!("{prefix}.type");
    let store_type = match value_of(&type_key).filter(|v| !v.is_empty()) {
        Some(v) => StoreType::from_name(v)
            .ok_or_else(|| invalid(&type_key, v, "expected PEM, PKCS12, JKS or BCFKS"))?,
        None => StoreType::from_file_name(location).ok_or_else(|| {
            invalid(
                &location_key,
                location,
                &format!(
                    "cannot tell the store type from the file name: set {type_key}, or name it .pem or .p12"
                ),
            )
        })?,
    };
    let password_path_key = format!("{prefix}.passwordPath");
    // As ZooKeeper: a password file, when given, wins over the password.
    let password = match value_of(&password_path_key).filter(|v| !v.is_empty()) {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| invalid(&password_path_key, file, &format!("cannot read it: {e}")))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        None => value_of(&format!("{prefix}.password")).unwrap_or_default().to_owned(),
    };
    Ok(Some(StoreConfig { location: PathBuf::from(location), password, store_type }))
}

fn parse_list<'a>(value_of: &impl Fn(&str) -> Option<&'a str>, key: &str) -> Option<Vec<String>> {
    value_of(key).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// TLS on the quorum links (`sslQuorum=true`, ZooKeeper's QuorumX509Util keys `ssl.quorum.*`):
/// every link is mutual TLS, each server presenting its key store's certificate and checking
/// the peer's against its trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTlsConfig {
    /// `ssl.quorum.keyStore.*`: this server's certificate, shown to peers in both roles.
    pub key_store: StoreConfig,
    /// `ssl.quorum.trustStore.*`: the CAs peers' certificates are checked against.
    pub trust_store: StoreConfig,
    /// `ssl.quorum.protocol` (default TLSv1.3, as ZooKeeper 3.9).
    pub protocol: String,
    /// `ssl.quorum.enabledProtocols`.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.quorum.ciphersuites`.
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.quorum.hostnameVerification` (default true): a dialed peer's certificate must name
    /// the host (or address) of its `server.N` line.
    pub hostname_verification: bool,
    /// `ssl.quorum.clientHostnameVerification` (default: `hostnameVerification`'s value): a
    /// connecting peer's certificate must name the address it connects from.
    pub client_hostname_verification: bool,
    /// `sslQuorum`: this server dials its peers with TLS (and, without port unification,
    /// accepts TLS only).
    pub ssl_quorum: bool,
    /// `portUnification`: the quorum port accepts TLS and plain peers alike (told apart by
    /// the first byte), for a rolling upgrade from plain to TLS.
    pub port_unification: bool,
}

/// `sslQuorum` / `portUnification` and the `ssl.quorum.*` keys; `None` when both are off.
fn parse_quorum_tls<'a>(
    value_of: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<QuorumTlsConfig>, ConfigError> {
    let ssl_quorum = parse_bool(value_of("sslQuorum"), "sslQuorum")?;
    let port_unification = parse_bool(value_of("portUnification"), "portUnification")?;
    if !ssl_quorum && !port_unification {
        return Ok(None);
    }
    let key = if ssl_quorum { "sslQuorum" } else { "portUnification" };
    let hostname_verification =
        !value_of("ssl.quorum.hostnameVerification").is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let missing =
        |store: &str| invalid(key, "true", &format!("{store}.location is not set: quorum TLS needs it"));
    let key_store =
        parse_store(value_of, "ssl.quorum.keyStore")?.ok_or_else(|| missing("ssl.quorum.keyStore"))?;
    let trust_store =
        parse_store(value_of, "ssl.quorum.trustStore")?.ok_or_else(|| missing("ssl.quorum.trustStore"))?;
    Ok(Some(QuorumTlsConfig {
        key_store,
        trust_store,
        protocol: value_of("ssl.quorum.protocol").filter(|v| !v.is_empty()).unwrap_or("TLSv1.3").to_owned(),
        enabled_protocols: parse_list(value_of, "ssl.quorum.enabledProtocols"),
        cipher_suites: parse_list(value_of, "ssl.quorum.ciphersuites"),
        hostname_verification,
        client_hostname_verification: match value_of("ssl.quorum.clientHostnameVerification") {
            Some(v) => !v.trim().eq_ignore_ascii_case("false"),
            None => hostname_verification,
        },
        ssl_quorum,
        port_unification,
    }))
}

/// The class ZooKeeper registers as `authProvider.x509` when a secure port is configured.
const X509_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

/// `ssl.authProvider` names the scheme whose provider authenticates a client certificate
/// (ZooKeeper's `QuorumPeerConfig.configureSSLAuth`). ferrokeeper has the built-in `x509`
/// provider only: another scheme needs a Java class ZooKeeper would load from
/// `authProvider.<scheme>`, so it is refused at startup, as ZooKeeper refuses one without
/// that key.
fn check_ssl_auth_provider<'a>(value_of: &impl Fn(&str) -> Option<&'a str>) -> Result<(), ConfigError> {
    let scheme = value_of("ssl.authProvider").map(str::trim).filter(|v| !v.is_empty()).unwrap_or("x509");
    let class_key = format!("authProvider.{scheme}");
    match value_of(&class_key) {
        None if scheme == "x509" => Ok(()),
        Some(class) if scheme == "x509" && class == X509_PROVIDER_CLASS => Ok(()),
        None => Err(invalid(
            "ssl.authProvider",
            scheme,
            &format!("no auth provider configured for the SSL authentication scheme '{scheme}'"),
        )),
        Some(class) => Err(invalid(
            &class_key,
            class,
            &format!(
                "ferrokeeper cannot load Java auth providers; the SSL authentication scheme must be \
                 x509 with its built-in provider ({X509_PROVIDER_CLASS})"
            ),
        )),
    }
}

impl StoreType {
    /// `ssl.*.type`, case-insensitive, as KeyStoreFileType.fromPropertyValue.
    fn from_name(name: &str) -> Option<StoreType> {
        match name.to_ascii_uppercase().as_str() {
            "PEM" => Some(StoreType::Pem),
            "PKCS12" => Some(StoreType::Pkcs12),
            "JKS" => Some(StoreType::Jks),
            "BCFKS" => Some(StoreType::Bcfks),
            _ => None,
        }
    }

    /// KeyStoreFileType.fromFilename: `.pem`, `.p12`, `.jks`, `.bcfks`.
    fn from_file_name(file: &str) -> Option<StoreType> {
        let lower = file.to_ascii_lowercase();
        [
            (".pem", StoreType::Pem),
            (".p12", StoreType::Pkcs12),
            (".jks", StoreType::Jks),
            (".bcfks", StoreType::Bcfks),
        ]
        .into_iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map(|(_, t)| t)
    }

    pub fn name(self) -> &'static str {
        match self {
            StoreType::Pem => "PEM",
            StoreType::Pkcs12 => "PKCS12",
            StoreType::Jks => "JKS",
            StoreType::Bcfks => "BCFKS",
        }
    }
}

/// The `otlp.*` keys as written (unset: the `OTEL_*` environment decides).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpConfig {
    /// `otlp.endpoint`: the collector's OTLP/HTTP base URL (`http://host:4318`) or traces URL.
    pub endpoint: Option<String>,
    /// `otlp.sampleRatio`: the share of requests traced, 0 to 1.
    pub sample_ratio: Option<f64>,
    /// `otlp.serviceName`: the `service.name` resource attribute.
    pub service_name: Option<String>,
}

/// Whether a server votes or only follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Participant,
    Observer,
}

/// One `server.N=host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub peer_type: PeerType,
    pub client_addr: Option<std::net::SocketAddr>,
    /// The client host as written (`0.0.0.0` when only a port was given), for
    /// `/zookeeper/config`, which ZooKeeper renders with the host string, not the address.
    pub client_host: String,
}

impl ServerSpec {
    /// The value ZooKeeper's `QuorumServer.toString()` gives this member in
    /// `/zookeeper/config`: `host:quorumPort:electionPort:role[;clientHost:clientPort]`.
    pub fn membership_value(&self) -> String {
        let role = match self.peer_type {
            PeerType::Participant => "participant",
            PeerType::Observer => "observer",
        };
        let mut value = format!("{}:{}:{}:{role}", self.host, self.quorum_port, self.election_port);
        if let Some(addr) = self.client_addr {
            let host = if self.client_host.contains(':') && !self.client_host.starts_with('[') {
                format!("[{}]", self.client_host)
            } else {
                self.client_host.clone()
            };
            value.push_str(&format!(";{host}:{}", addr.port()));
        }
        value
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This server's id, from `<dataDir>/myid`.
    pub my_id: u64,
    pub servers: Vec<ServerSpec>,
    /// Ticks a follower may take to connect and sync to a leader.
    pub init_limit: u32,
    /// Ticks a follower may lag (no ack / ping) before the leader drops it.
    pub sync_limit: u32,
    /// `quorumListenOnAllIPs`: listen on the quorum port of every interface, not only on this
    /// server's `server.N` host (which may not resolve yet, as in a Kubernetes StatefulSet).
    pub listen_on_all_ips: bool,
}

impl QuorumConfig {
    pub fn me(&self) -> Option<&ServerSpec> {
        self.servers.iter().find(|s| s.id == self.my_id)
    }

    /// Voting members.
    pub fn participants(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers.iter().filter(|s| s.peer_type == PeerType::Participant)
    }

    /// Members that only follow.
    pub fn observers(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers.iter().filter(|s| s.peer_type == PeerType::Observer)
    }

    /// The membership as ZooKeeper's `QuorumMaj.toString()` writes it into `/zookeeper/config`
    /// and `conf`: one `server.N=...` line per member in id order, then `version=<hex>`, no
    /// newline at the end. The version is the zxid of the reconfig that made the membership;
    /// a static one (the only kind without `reconfig`) has version 0, as in ZooKeeper.
    pub fn membership(&self) -> String {
        let mut text = String::new();
        for server in &self.servers {
            text.push_str(&format!("server.{}={}\n", server.id, server.membership_value()));
        }
        text.push_str("version=0");
        text
    }
}

fn parse_server_line(key: &str, value: &str) -> Result<ServerSpec, ConfigError> {
    let bad = |reason: &str| invalid(key, value, reason);
    let id: u64 =
        key.strip_prefix("server.").and_then(|n| n.parse().ok()).ok_or_else(|| bad("bad server id"))?;
    let (addresses, client) = match value.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (value, None),
    };
    let parts: Vec<&str> = addresses.split(':').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return Err(bad("expected host:quorumPort:electionPort[:participant|observer]"));
    }
    let quorum_port = parts[1].parse().map_err(|_| bad("bad quorum port"))?;
    let election_port = parts[2].parse().map_err(|_| bad("bad election port"))?;
    let peer_type = match parts.get(3) {
        None | Some(&"participant") => PeerType::Participant,
        Some(&"observer") => PeerType::Observer,
        Some(_) => return Err(bad("peer type must be participant or observer")),
    };
    let mut client_host = String::new();
    let client_addr = match client {
        None => None,
        Some(c) => {
            let (host, port) = match c.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => ("0.0.0.0", c),
            };
            let port: u16 = port.parse().map_err(|_| bad("bad client port"))?;
            client_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            Some(std::net::SocketAddr::new(resolve_address(host)?, port))
        }
    };
    Ok(ServerSpec {
        id,
        host: parts[0].to_owned(),
        quorum_port,
        election_port,
        peer_type,
        client_addr,
        client_host,
    })
}

fn parse_quorum(
    pairs: &[(String, String)],
    data_dir: &Path,
    path: &Path,
) -> Result<Option<QuorumConfig>, ConfigError> {
    let mut servers = Vec::new();
    for (key, value) in pairs {
        if key.starts_with("server.") {
            servers.push(parse_server_line(key, value)?);
        }
    }
    if servers.is_empty() {
        return Ok(None);
    }
    servers.sort_by_key(|s| s.id);
    if servers.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(invalid("server.N", "", "a server id appears twice"));
    }
    let value_of = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let standalone_enabled = value_of("standaloneEnabled").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    if servers.len() == 1 && standalone_enabled {
        return Ok(None);
    }
    let myid_path = data_dir.join("myid");
    let my_id: u64 = std::fs::read_to_string(&myid_path)
        .map_err(|source| ConfigError::Read { path: myid_path.clone(), source })?
        .trim()
        .parse()
        .map_err(|_| invalid("myid", &myid_path.display().to_string(), "expected a server id"))?;
    if !servers.iter().any(|s| s.id == my_id) {
        return Err(invalid("myid", &my_id.to_string(), "no server.N line has this id"));
    }
    let init_limit =
        value_of("initLimit").ok_or(ConfigError::Missing { key: "initLimit", path: path.to_owned() })?;
    let sync_limit =
        value_of("syncLimit").ok_or(ConfigError::Missing { key: "syncLimit", path: path.to_owned() })?;
    Ok(Some(QuorumConfig {
        my_id,
        servers,
        init_limit: parse_value("initLimit", init_limit)?,
        sync_limit: parse_value("syncLimit", sync_limit)?,
        listen_on_all_ips: parse_bool(value_of("quorumListenOnAllIPs"), "quorumListenOnAllIPs")?,
    }))
}

/// Settings understood but not honoured, each with what happens instead.
fn ignored_settings<'a>(value_of: &dyn Fn(&str) -> Option<&'a str>) -> Vec<String> {
    let enabled = |key: &str| value_of(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut ignored = Vec::new();
    if enabled("reconfigEnabled") {
        ignored.push(
            "reconfigEnabled=true: dynamic reconfiguration is not supported; reconfig requests are \
             answered ReconfigDisabled"
                .to_owned(),
        );
    }
    if let Some(file) = value_of("dynamicConfigFile") {
        ignored.push(format!(
            "dynamicConfigFile={file}: not read; the membership is the server.N lines of zoo.cfg"
        ));
    }
    ignored
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason: reason.to_owned() }
}

fn parse_value<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| invalid(key, value, &e.to_string()))
}

fn parse_or<T: std::str::FromStr>(value: Option<&str>, key: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match value {
        Some(v) => parse_value(key, v),
        None => Ok(default),
    }
}

fn parse_bool(value: Option<&str>, key: &str) -> Result<bool, ConfigError> {
    match value {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no") => Ok(false),
        Some(v) => Err(invalid(key, v, "expected true or false")),
    }
}

fn resolve_address(value: &str) -> Result<IpAddr, ConfigError> {
    if value == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    value.parse().map_err(|_| invalid("clientPortAddress", value, "expected an IP address"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("zoo.cfg"), text)
    }

    /// `-D` properties: under zoo.cfg (a key of the same name wins), read with or without the
    /// `zookeeper.` prefix, and non-ZooKeeper ones not reported as unknown.
    #[test]
    fn jvm_properties_under_zoo_cfg() {
        let properties: Vec<(String, String)> = [
            ("zookeeper.authProvider.1", "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"),
            ("java.security.auth.login.config", "/from/property.conf"),
            ("zookeeper.skipACL", "yes"),
            ("log4j.configuration", "file:/x"),
            ("zookeeper.maxClientCnxns", "7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text = "dataDir=/tmp/zk\nclientPort=2181\njava.security.auth.login.config=/from/zoo.cfg\n\
                    zookeeper.ssl.quorum.bogus=1\n";
        let config = Config::parse_with(Path::new("zoo.cfg"), text, &properties).unwrap();
        assert!(config.auth.providers.sasl);
        assert_eq!(config.auth.jaas_path, Some(PathBuf::from("/from/zoo.cfg")));
        assert!(config.skip_acl);
        assert_eq!(config.max_client_cnxns, 7);
        assert_eq!(config.unknown_keys, vec!["zookeeper.ssl.quorum.bogus".to_owned()]);
    }

    #[test]
    fn reads_sample_config() {
        let config = parse(
            "tickTime=2000\ndataDir=/tmp/zk\nclientPort=2181\n4lw.commands.whitelist=ruok, mntr\n\
             initLimit=5\nfoo.bar=1\nextendedTypesEnabled=true\n",
        )
        .unwrap();
        assert_eq!(config.tick_time_ms, 2000);
        assert_eq!(config.client_port, Some(2181));
        assert_eq!(config.min_session_timeout_ms, 4000);
        assert_eq!(config.max_session_timeout_ms, 40000);
        assert_eq!(config.data_log_dir, PathBuf::from("/tmp/zk"));
        assert!(config.four_letter_whitelist.contains("ruok"));
        assert!(config.four_letter_whitelist.contains("srvr"));
        assert!(!config.four_letter_whitelist.contains("stat"));
        assert!(config.extended_types_enabled);
        assert_eq!(config.unknown_keys, vec!["foo.bar".to_owned()]);
        assert_eq!(config.negotiate_timeout(100), 4000);
        assert_eq!(config.negotiate_timeout(1_000_000), 40000);
    }

    #[test]
    fn reads_secure_client_port_and_ssl_keys() {
        let plain = parse("dataDir=/x\nclientPort=1\n").unwrap();
        assert_eq!(plain.client_tls, None);
        let config = parse(
            "dataDir=/x\nclientPort=1\nclientPortAddress=127.0.0.1\nsecureClientPort=2\n\
             ssl.keyStore.location=/k/server.pem\nzookeeper.ssl.trustStore.location=/k/trust.p12\n\
             ssl.trustStore.password=pw\nssl.enabledProtocols=TLSv1.2, TLSv1.3\nssl.clientAuth=Want\n\
             ssl.hostnameVerification=false\nzookeeper.ssl.keyStore.type=pem\n",
        )
        .unwrap();
        let tls = config.client_tls.unwrap();
        assert_eq!((tls.port, tls.address), (2, IpAddr::from([127, 0, 0, 1])));
        let key = tls.key_store.unwrap();
        assert_eq!(
            (key.location, key.store_type, key.password),
            ("/k/server.pem".into(), StoreType::Pem, "".into())
        );
        let trust = tls.trust_store.unwrap();
        assert_eq!((trust.store_type, trust.password.as_str()), (StoreType::Pkcs12, "pw"));
        assert_eq!(tls.enabled_protocols, Some(vec!["TLSv1.2".to_owned(), "TLSv1.3".to_owned()]));
        assert_eq!((tls.protocol.as_str(), tls.client_auth), ("TLSv1.3", ClientAuth::Want));
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
        // The store type comes from the extension; .jks is recognised (and refused at startup).
        let jks = parse("dataDir=/x\nclientPort=1\nsecureClientPort=2\nssl.keyStore.location=/k/a.jks\n");
        assert_eq!(jks.unwrap().client_tls.unwrap().key_store.unwrap().store_type, StoreType::Jks);
        let err = parse("dataDir=/x\nclientPort=1\nsecureClientPort=2\nssl.keyStore.location=/k/a.key\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.keyStore.location=/k/a.key") && err.contains("ssl.keyStore.type"), "{err}");
        let err = parse("dataDir=/x\nclientPort=1\nsecureClientPort=2\nssl.clientAuth=maybe\n").unwrap_err();
        assert!(err.to_string().contains("ssl.clientAuth=maybe"), "{err}");
    }

    #[test]
    fn a_secure_port_alone_is_a_tls_only_server() {
        let config = parse("dataDir=/x\nsecureClientPort=2281\nssl.clientAuth=none\n").unwrap();
        assert_eq!(config.client_port, None);
        assert_eq!(config.client_tls.unwrap().port, 2281);
    }

    #[test]
    fn reads_the_x509_provider_keys() {
        let base = "dataDir=/x\nclientPort=1\nsecureClientPort=2\nssl.clientAuth=none\n";
        let config = parse(&format!(
            "{base}zookeeper.X509AuthenticationProvider.superUser=CN=admin,O=Ops\nssl.authProvider=x509\n\
             authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
        ))
        .unwrap();
        assert_eq!(config.client_tls.unwrap().x509_super_user.as_deref(), Some("CN=admin,O=Ops"));
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
        // Another scheme: without its provider class, ZooKeeper's own refusal; with one, the
        // class cannot be loaded here.
        let err = parse(&format!("{base}ssl.authProvider=mine\n")).unwrap_err().to_string();
        assert!(err.contains("ssl.authProvider=mine") && err.contains("scheme 'mine'"), "{err}");
        let err = parse(&format!("{base}ssl.authProvider=mine\nzookeeper.authProvider.mine=com.x.Mine\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("authProvider.mine=com.x.Mine") && err.contains("built-in"), "{err}");
        let err = parse(&format!("{base}authProvider.x509=com.x.Mine\n")).unwrap_err().to_string();
        assert!(err.contains("authProvider.x509=com.x.Mine"), "{err}");
    }

    #[test]
    fn names_missing_and_bad_keys() {
        let err = parse("clientPort=1\n").unwrap_err().to_string();
        assert!(err.contains("dataDir"), "{err}");
        let err = parse("dataDir=/x\n").unwrap_err().to_string();
        assert!(err.contains("clientPort"), "{err}");
        let err = parse("dataDir=/x\nclientPort=abc\n").unwrap_err().to_string();
        assert!(err.contains("clientPort=abc"), "{err}");
        let err = parse("dataDir=/x\nclientPort=1\nnonsense\n").unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    #[test]
    fn reads_an_ensemble() {
        let dir = std::env::temp_dir().join(format!("fk-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("myid"), "2\n").unwrap();
        let text = format!(
            "tickTime=2000\ndataDir={}\ninitLimit=10\nsyncLimit=5\n\
             server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
             server.3=127.0.0.1:2890:3890:observer;2183\n",
            dir.display()
        );
        let config = parse(&text).unwrap();
        let quorum = config.quorum.unwrap();
        assert_eq!(quorum.my_id, 2);
        assert_eq!(quorum.servers.len(), 3);
        assert_eq!(quorum.participants().count(), 2);
        assert_eq!(quorum.servers[2].peer_type, PeerType::Observer);
        assert_eq!(config.client_port, Some(2182));
        assert_eq!(quorum.init_limit, 10);
        assert!(!quorum.listen_on_all_ips);
        let all = parse(&format!("{text}quorumListenOnAllIPs=true\n")).unwrap();
        assert!(all.quorum.as_ref().is_some_and(|q| q.listen_on_all_ips));
        let err = parse(&text.replace("initLimit=10\n", "")).unwrap_err().to_string();
        assert!(err.contains("initLimit"), "{err}");
        std::fs::write(dir.join("myid"), "9").unwrap();
        assert!(parse(&text).unwrap_err().to_string().contains("myid"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_only_mode_and_settings_not_honoured() {
        let config = parse("dataDir=/x\nclientPort=1\nreadonlymode.enabled=true\n").unwrap();
        assert!(config.read_only_mode);
        assert!(config.four_letter_whitelist.contains("isro"), "isro is on by default with the mode");
        assert!(config.ignored_settings.is_empty());
        let plain = parse("dataDir=/x\nclientPort=1\n").unwrap();
        assert!(!plain.read_only_mode && !plain.four_letter_whitelist.contains("isro"));
        let prefixed = parse("dataDir=/x\nclientPort=1\nzookeeper.readonlymode.enabled=true\n").unwrap();
        assert!(prefixed.read_only_mode);
        assert!(parse("dataDir=/x\nclientPort=1\nreadonlymode.enabled=maybe\n").is_err());
        let asked = parse(
            "dataDir=/x\nclientPort=1\nreconfigEnabled=true\nlocalSessionsEnabled=true\ndynamicConfigFile=/d\n",
        )
        .unwrap();
        assert_eq!(asked.ignored_settings.len(), 2, "{:?}", asked.ignored_settings);
        assert!(asked.local_sessions && !asked.local_sessions_upgrading);
        assert!(asked.ignored_settings[0].contains("ReconfigDisabled"));
    }

    #[test]
    fn membership_as_zookeeper_writes_it() {
        let spec =
            |line: &str| parse_server_line(line.split_once('=').unwrap().0, line.split_once('=').unwrap().1);
        let plain = spec("server.1=h1:2888:3888").unwrap();
        assert_eq!(plain.membership_value(), "h1:2888:3888:participant");
        let port_only = spec("server.2=h2:2888:3888:observer;2181").unwrap();
        assert_eq!(port_only.membership_value(), "h2:2888:3888:observer;0.0.0.0:2181");
        let with_host = spec("server.3=h3:2888:3888:participant;127.0.0.1:2182").unwrap();
        assert_eq!(with_host.membership_value(), "h3:2888:3888:participant;127.0.0.1:2182");
        let quorum = QuorumConfig {
            my_id: 1,
            servers: vec![plain, port_only, with_host],
            init_limit: 10,
            sync_limit: 5,
            listen_on_all_ips: false,
        };
        assert_eq!(
            quorum.membership(),
            "server.1=h1:2888:3888:participant\nserver.2=h2:2888:3888:observer;0.0.0.0:2181\n\
             server.3=h3:2888:3888:participant;127.0.0.1:2182\nversion=0"
        );
        assert_eq!(quorum.observers().count(), 1);
    }

    #[test]
    fn star_enables_every_word() {
        let config = parse("dataDir=/x\nclientPort=1\n4lw.commands.whitelist=*\n").unwrap();
        assert_eq!(config.four_letter_whitelist.len(), FOUR_LETTER_WORDS.len());
    }
}
