//! The tokio shell around the pure tree: a listener, one task per connection (framing,
//! decoding, 4lw), and one core task that owns the [`DataTree`](crate::tree::DataTree), the
//! session tracker and the connection table, and is the only place requests are executed.
//!
//! ```text
//!  socket ──► connection task ──Event──► core task ──Outbound──► connection task ──► socket
//!             (frames, decode)   bounded   (prep/apply, reads,    bounded     (batched writes)
//!                                 mpsc      watches, sessions)     mpsc
//! ```
//!
//! **Architecture Invariant:** the core task is single-owner; no locks guard the tree. Replies
//! and watch events for one connection are appended to one buffer in execution order, so a
//! client sees a watch event before any reply that reflects the change.

mod connection;
mod fourlw;
mod http;
mod shell;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use crate::config::Config;

pub use crate::replica::VERSION;
use crate::replica::{self as replica, core};

use crate::tree::{DataTree, TreeConfig};
use crate::txlog::LogWriter;
use crate::txlog::reader::recover;
use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::TxnRecord;

/// A running server (standalone or an ensemble member); [`Server::shutdown`] stops it.
pub struct Server {
    local_addr: Option<SocketAddr>,
    secure_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    fatal: watch::Receiver<Option<String>>,
}

fn tree_config(config: &Config) -> TreeConfig {
    // The config node's mtime is when this server first set it up, as ZooKeeper's; every tree
    // built later (a snapshot from the leader) keeps that time.
    static STARTED_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let started_ms = *STARTED_MS.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    TreeConfig {
        skip_acl: config.skip_acl,
        extended_types_enabled: config.extended_types_enabled,
        container_max_never_used_interval_ms: config.container_max_never_used_interval_ms,
        config_node: config.quorum.as_ref().map(|quorum| crate::tree::ConfigNode {
            data: bytes::Bytes::from(quorum.membership()),
            mtime_ms: started_ms,
        }),
        providers: config.auth.providers.clone(),
    }
}

fn load_snapshot(config: &Config) -> anyhow::Result<DataTree> {
    let tree_config = tree_config(config);
    Ok(
        match crate::txlog::snapshot::load_newest(&config.snap_dir, &tree_config)
            .with_context(|| format!("cannot read snapshots in {}", config.snap_dir.display()))?
        {
            Some((path, tree)) => {
                tracing::info!(path = %path.display(), nodes = tree.node_count(), "loaded snapshot");
                tree
            }
            None => DataTree::new(tree_config),
        },
    )
}

/// Recovery (zab duty 6): the tree is the newest snapshot (known committed); the log records
/// after it may be uncommitted (in an ensemble), so they are handed to the peer as its log
/// tail and applied when committed: by the leader's sync, or, standalone, at once by the
/// one-voter ensemble's own election.
fn recover_replica(config: &Config) -> anyhow::Result<(DataTree, Vec<TxnRecord>)> {
    let started = std::time::Instant::now();
    let tree = load_snapshot(config)?;
    let mut tail = Vec::new();
    let recovery = recover(&config.log.dir, tree.last_processed_zxid(), |record| tail.push(record))?;
    tracing::info!(
        snapshot_zxid = format_args!("0x{:x}", tree.last_processed_zxid()),
        logged_after = tail.len(),
        last_zxid = format_args!("0x{:x}", recovery.last_zxid),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered from the transaction log"
    );
    Ok((tree, tail))
}

impl Server {
    /// Binds the client port and starts the listener and the core task.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        Server::start_traced(config, None).await
    }

    /// [`Server::start`], building request and commit-stage spans with `tracer` (see
    /// [`crate::telemetry`]); its export counters join `/metrics`.
    pub async fn start_traced(
        config: Config,
        tracer: Option<crate::telemetry::RequestTracer>,
    ) -> anyhow::Result<Server> {
        let config = Arc::new(config);
        // No plain listener when only secureClientPort is set (a TLS-only server).
        let listener = match config.client_port {
            Some(port) => {
                let addr = SocketAddr::new(config.client_port_address, port);
                Some(
                    TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot bind client port {addr}"))?,
                )
            }
            None => None,
        };
        let local_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let capacity = (config.global_outstanding_limit as usize).max(16);
        let (events, events_rx) = mpsc::channel(capacity);
        let (tree, tail) = tracing::info_span!("recovery", dir = %config.data_dir.display())
            .in_scope(|| -> anyhow::Result<_> { recover_replica(&config) })?;
        let last_logged = tail.last().map_or(tree.last_processed_zxid(), |record| record.header.zxid);
        let log = LogWriter::start(config.log.clone(), last_logged)
            .with_context(|| format!("cannot start the transaction log in {}", config.log.dir.display()))?;
        tracing::info!(
            backend = log.backend().name(),
            force_sync = config.log.force_sync,
            dir = %config.log.dir.display(),
            "transaction log ready"
        );
        let (fatal_tx, fatal) = watch::channel(None);
        let mut registry = prometheus_client::registry::Registry::default();
        let mut metrics =
            crate::metrics::ServerMetrics::register(&mut registry, log.stats(), log.backend().name());
        metrics.enabled = config.metrics_enabled;
        metrics.set_role(if config.quorum.is_some() { "looking" } else { "standalone" });
        if let Some(tracer) = &tracer {
            crate::metrics::register_export_stats(&mut registry, tracer.stats.clone());
        }
        let tls_metrics = metrics.tls.clone();
        // The secure port is bound, and its stores read, before anything is served: a bad key
        // store stops the start with the file's name.
        let secure = match &config.client_tls {
            Some(tls_config) => {
                let tls = tls::ClientTls::load(tls_config, tls_metrics)
                    .context("cannot set up TLS on the secure client port")?;
                let addr = SocketAddr::new(tls_config.address, tls_config.port);
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot bind the secure client port {addr}"))?;
                Some((listener, tls))
            }
            None => None,
        };
        let registry = Arc::new(Mutex::new(registry));
        let mut metrics_addr = None;
        let mut extra_tasks = Vec::new();
        if let Some(addr) = config.metrics_http {
            let listener =
                http::bind(addr).await.with_context(|| format!("cannot bind the metrics port {addr}"))?;
            metrics_addr = Some(listener.local_addr()?);
            tracing::info!(addr = %listener.local_addr()?, "serving /metrics");
            extra_tasks.push(tokio::spawn(http::serve(listener, registry.clone(), shutdown_rx.clone())));
        }
        let (replica, my_id, peers, incoming) = match &config.quorum {
            Some(quorum) => {
                let quorum_tls_metrics = metrics.quorum_tls.clone();
                let (replica, my_id, sender, incoming) =
                    start_replica(&config, quorum, &tree, &tail, shutdown_rx.clone(), quorum_tls_metrics)
                        .await?;
                (replica, my_id, sender, Some(incoming))
            }
            None => (standalone_replica(&config, &tree, &tail)?, 1, Default::default(), None),
        };
        let io = Box::new(shell::TokioIo::new(config.clone(), log, peers, fatal_tx, &metrics));
        let mut core = core::Core::new(config.clone(), tree, io, metrics, replica, my_id, tail);
        core.tracer = tracer;
        let core_task = tokio::spawn(shell::run(core, events_rx, incoming, shutdown_rx.clone()));
        let conn_ids = Arc::new(AtomicU64::new(1));
        let mut secure_addr = None;
        let unified = secure.as_ref().filter(|_| config.client_port_unification).map(|s| s.1.clone());
        if let Some(secure) = secure {
            secure_addr = Some(secure.0.local_addr()?);
            tracing::info!(addr = %secure.0.local_addr()?, "serving clients over TLS");
            let secure_loop = accept_loop(
                secure.0,
                Port::Tls(secure.1),
                config.clone(),
                events.clone(),
                conn_ids.clone(),
                shutdown_rx.clone(),
            );
            extra_tasks.push(tokio::spawn(secure_loop));
        }
        let mut tasks = vec![core_task];
        if let Some(listener) = listener {
            tracing::info!(local_addr = %listener.local_addr()?, "serving clients");
            let port = match unified {
                Some(tls) => {
                    tracing::info!("client.portUnification: the client port also accepts TLS");
                    Port::Unified(tls)
                }
                None => Port::Plain,
            };
            tasks.push(tokio::spawn(accept_loop(listener, port, config, events, conn_ids, shutdown_rx)));
        }
        tasks.extend(extra_tasks);
        Ok(Server { local_addr, secure_addr, metrics_addr, shutdown, tasks, fatal })
    }

    /// Where the plain client port listens; `None` for a TLS-only server.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Where the secure client port listens, if `secureClientPort` is set.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure_addr
    }

    /// Where `/metrics` is served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Resolves when the server cannot go on (the transaction log failed), with the reason.
    pub async fn failed(&self) -> String {
        let mut fatal = self.fatal.clone();
        loop {
            if let Some(reason) = fatal.borrow_and_update().clone() {
                return reason;
            }
            if fatal.changed().await.is_err() {
                return "the server stopped".to_owned();
            }
        }
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The durable state a Zab peer starts from: the epoch files, the applied tree's zxid and the
/// logged records after it.
fn durable_state(
    config: &Config,
    tree: &DataTree,
    tail: &[TxnRecord],
) -> anyhow::Result<crate::zab::DurableState> {
    use crate::quorum::epochs;
    let current_epoch = epochs::read(&config.data_dir, epochs::CURRENT)?;
    let accepted_epoch = epochs::read(&config.data_dir, epochs::ACCEPTED)?.max(current_epoch);
    let applied = tree.last_processed_zxid();
    Ok(crate::zab::DurableState {
        current_epoch,
        accepted_epoch,
        applied_zxid: applied,
        log_base: applied,
        log_tail: tail
            .iter()
            .map(|record| (record.header.zxid, bytes::Bytes::from(record.encode_to_vec())))
            .collect(),
    })
}

/// A standalone server: a one-voter ensemble (ZooKeeper's `standaloneEnabled=false` shape)
/// with no quorum port. Its first tick elects it; every logged record is committed by its own
/// fsync. A data directory without epoch files (written before this layout, or by a standalone
/// Apache ZooKeeper) takes its epochs from the zxids it holds, so new zxids only grow.
fn standalone_replica(
    config: &Config,
    tree: &DataTree,
    tail: &[TxnRecord],
) -> anyhow::Result<replica::Replica> {
    let mut durable = durable_state(config, tree, tail)?;
    let last_logged = tail.last().map_or(tree.last_processed_zxid(), |record| record.header.zxid);
    durable.current_epoch = durable.current_epoch.max(crate::zab::zxid_epoch(tree.last_processed_zxid()));
    durable.accepted_epoch =
        durable.accepted_epoch.max(durable.current_epoch).max(crate::zab::zxid_epoch(last_logged));
    let mut zab_config = crate::zab::Config::new(1, vec![1]);
    zab_config.tick_ms = u64::from(config.tick_time_ms);
    zab_config.proposals_outstanding_max = (config.global_outstanding_limit as usize).max(1000);
    let peer = crate::zab::Peer::new(zab_config, durable, rand::random(), 0);
    Ok(replica::Replica::new(peer, true, tree_config(config)))
}

/// Builds the Zab peer from the epoch files and the log tail, and starts the server links on
/// the quorum port.
async fn start_replica(
    config: &Config,
    quorum: &crate::config::QuorumConfig,
    tree: &DataTree,
    tail: &[TxnRecord],
    shutdown: watch::Receiver<bool>,
    quorum_tls_metrics: crate::metrics::QuorumTlsMetrics,
) -> anyhow::Result<(
    replica::Replica,
    u8,
    crate::quorum::transport::PeerSender,
    mpsc::Receiver<crate::quorum::transport::Incoming>,
)> {
    let me = quorum.me().context("myid names no server.N line")?;
    let my_id = u8::try_from(quorum.my_id).context("server ids above 255 are not supported")?;
    // Peers are dialed by name, resolved at every attempt: a peer whose address changes (a
    // rescheduled pod) or does not resolve yet is reached once it does.
    // Observers are linked too: the leader informs them, they forward writes to it.
    let peers: HashMap<u64, (String, u16)> =
        quorum.servers.iter().map(|s| (s.id, (s.host.clone(), s.quorum_port))).collect();
    let listen = if quorum.listen_on_all_ips {
        std::net::SocketAddr::from(([0, 0, 0, 0], me.quorum_port))
    } else {
        tokio::net::lookup_host((me.host.as_str(), me.quorum_port))
            .await
            .with_context(|| format!("cannot resolve this server's host {} (server.{})", me.host, me.id))?
            .next()
            .with_context(|| format!("this server's host {} has no address", me.host))?
    };
    let quorum_tls = match &config.quorum_tls {
        Some(tls) => {
            tracing::info!(
                ssl_quorum = tls.ssl_quorum,
                port_unification = tls.port_unification,
                "{} quorum communication; port unification {}",
                if tls.ssl_quorum { "using TLS encrypted" } else { "using insecure (non-TLS)" },
                if tls.port_unification { "enabled" } else { "disabled" }
            );
            let loaded = crate::quorum::tls::QuorumTls::load(tls, quorum_tls_metrics)
                .context("cannot set up quorum TLS")?;
            Some(loaded)
        }
        None => None,
    };
    let (sender, incoming) =
        crate::quorum::transport::start(quorum.my_id, listen, peers.clone(), shutdown, quorum_tls)
            .await
            .with_context(|| format!("cannot bind the quorum port {listen}"))?;
    let durable = durable_state(config, tree, tail)?;
    let (current_epoch, accepted_epoch, applied) =
        (durable.current_epoch, durable.accepted_epoch, durable.applied_zxid);
    let mut zab_config = crate::zab::Config::new(quorum.my_id, quorum.participants().map(|s| s.id).collect());
    zab_config.observers = quorum.observers().map(|s| s.id).collect();
    zab_config.tick_ms = u64::from(config.tick_time_ms);
    zab_config.init_limit = u64::from(quorum.init_limit);
    zab_config.sync_limit = u64::from(quorum.sync_limit);
    zab_config.proposals_outstanding_max = (config.global_outstanding_limit as usize).max(1000);
    tracing::info!(
        my_id = quorum.my_id,
        %listen,
        current_epoch,
        accepted_epoch,
        applied = format_args!("0x{applied:x}"),
        peer_type = ?me.peer_type,
        "starting as an ensemble member"
    );
    let peer = crate::zab::Peer::new(zab_config, durable, rand::random(), 0);
    let replica = replica::Replica::new(peer, false, tree_config(config));
    Ok((replica, my_id, sender, incoming))
}

/// Live connections per client IP, for maxClientCnxns.
#[derive(Default)]
struct IpCounts(Mutex<HashMap<IpAddr, u32>>);

impl IpCounts {
    fn try_add(&self, ip: IpAddr, max: u32) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if max != 0 && *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn remove(&self, ip: IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// What a client port speaks.
enum Port {
    Plain,
    Tls(tls::ClientTls),
    /// `client.portUnification`: plain, or TLS when the first byte is a TLS handshake record.
    Unified(tls::ClientTls),
}

/// The first byte of a TLS ClientHello (a handshake record). A plain client's first byte is
/// the high byte of its ConnectRequest's length (0) or a four-letter word's first letter.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// Whether a unified port's new connection starts a TLS handshake (peeked, not consumed);
/// `None` when the client sent nothing within the handshake timeout or hung up.
async fn starts_tls(stream: &tokio::net::TcpStream) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0] == TLS_HANDSHAKE_RECORD),
        _ => None,
    }
}

/// Accepts clients on one port. Each port counts maxClientCnxns on its own, as ZooKeeper's
/// two connection factories do; connection ids come from one counter shared by both. On the
/// secure port the TLS handshake runs in the connection's own task, so a slow or failing
/// client holds up no one else.
async fn accept_loop(
    listener: TcpListener,
    port: Port,
    config: Arc<Config>,
    events: mpsc::Sender<shell::Event>,
    conn_ids: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let counts = Arc::new(IpCounts::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !counts.try_add(peer.ip(), config.max_client_cnxns) {
            tracing::warn!(ip = %peer.ip(), max = config.max_client_cnxns, "Too many connections from this IP");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn_id = conn_ids.fetch_add(1, Ordering::Relaxed);
        let counts = counts.clone();
        let shutdown = shutdown.clone();
        // DEBUG: with the default `info` filter the span is disabled and costs nothing per poll.
        let span = tracing::debug_span!("conn", id = conn_id, %peer);
        let (config, events) = (config.clone(), events.clone());
        let tls = match &port {
            Port::Plain => None,
            Port::Tls(tls) => Some(tls.clone()),
            Port::Unified(tls) => {
                let tls = tls.clone();
                tokio::spawn(
                    async move {
                        match starts_tls(&stream).await {
                            Some(true) => {
                                if let Some((stream, auth)) = tls.handshake(stream, peer).await {
                                    let task =
                                        connection::Connection::new(conn_id, stream, peer, config, events)
                                            .with_auth(auth);
                                    task.run(shutdown).await;
                                }
                            }
                            Some(false) => {
                                let task = connection::Connection::new(conn_id, stream, peer, config, events);
                                task.run(shutdown).await;
                            }
                            None => {}
                        }
                        counts.remove(peer.ip());
                    }
                    .instrument(span),
                );
                continue;
            }
        };
        match &tls {
            None => {
                let task = connection::Connection::new(conn_id, stream, peer, config, events);
                tokio::spawn(
                    async move {
                        task.run(shutdown).await;
                        counts.remove(peer.ip());
                    }
                    .instrument(span),
                );
            }
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(
                    async move {
                        if let Some((stream, auth)) = tls.handshake(stream, peer).await {
                            let task = connection::Connection::new(conn_id, stream, peer, config, events)
                                .with_auth(auth);
                            task.run(shutdown).await;
                        }
                        counts.remove(peer.ip());
                    }
                    .instrument(span),
                );
            }
        }
    }
}
