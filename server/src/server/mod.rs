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
mod core;
mod fourlw;
mod http;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;

pub use self::core::VERSION;

use crate::tree::{DataTree, TreeConfig};
use crate::txlog::LogWriter;
use crate::txlog::reader::recover;

/// A running standalone server; [`Server::shutdown`] stops it.
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    fatal: watch::Receiver<Option<String>>,
}

/// Rebuilds the tree from the transaction log.
pub fn recover_tree(config: &Config) -> anyhow::Result<DataTree> {
    let tree_config = TreeConfig {
        skip_acl: config.skip_acl,
        extended_types_enabled: config.extended_types_enabled,
        container_max_never_used_interval_ms: config.container_max_never_used_interval_ms,
    };
    let started = std::time::Instant::now();
    let mut tree = match crate::txlog::snapshot::load_newest(&config.snap_dir, &tree_config)
        .with_context(|| format!("cannot read snapshots in {}", config.snap_dir.display()))?
    {
        Some((path, tree)) => {
            tracing::info!(path = %path.display(), nodes = tree.node_count(), "loaded snapshot");
            tree
        }
        None => DataTree::new(tree_config),
    };
    let recovery = recover(&config.log.dir, tree.last_processed_zxid(), |record| {
        tree.apply(&record.header, &record.txn);
    })?;
    tracing::info!(
        txns = recovery.replayed,
        last_zxid = format_args!("0x{:x}", recovery.last_zxid),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered from the transaction log"
    );
    Ok(tree)
}

impl Server {
    /// Binds the client port and starts the listener and the core task.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        if let Some(quorum) = &config.quorum {
            anyhow::bail!(
                "zoo.cfg lists an ensemble of {} servers (server.N lines); this build runs standalone only: \
                 remove the server.N lines (or keep one with standaloneEnabled=true)",
                quorum.servers.len()
            );
        }
        let config = Arc::new(config);
        let addr = SocketAddr::new(config.client_port_address, config.client_port);
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("cannot bind client port {addr}"))?;
        let local_addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let capacity = (config.global_outstanding_limit as usize).max(16);
        let (events, events_rx) = mpsc::channel(capacity);
        let tree = recover_tree(&config)?;
        let log = LogWriter::start(config.log.clone(), tree.last_processed_zxid())
            .with_context(|| format!("cannot start the transaction log in {}", config.log.dir.display()))?;
        tracing::info!(
            backend = log.backend().name(),
            force_sync = config.log.force_sync,
            dir = %config.log.dir.display(),
            "transaction log ready"
        );
        let (fatal_tx, fatal) = watch::channel(None);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics =
            crate::metrics::ServerMetrics::register(&mut registry, log.stats(), log.backend().name());
        metrics.set_role("standalone");
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
        let core = core::Core::new(config.clone(), tree, log, fatal_tx, metrics);
        let core_task = tokio::spawn(core.run(events_rx, shutdown_rx.clone()));
        let accept_task = tokio::spawn(accept_loop(listener, config, events, shutdown_rx));
        tracing::info!(%local_addr, "serving clients");
        let mut tasks = vec![core_task, accept_task];
        tasks.extend(extra_tasks);
        Ok(Server { local_addr, metrics_addr, shutdown, tasks, fatal })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

async fn accept_loop(
    listener: TcpListener,
    config: Arc<Config>,
    events: mpsc::Sender<core::Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let counts = Arc::new(IpCounts::default());
    let mut next_conn_id: u64 = 1;
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
        let conn_id = next_conn_id;
        next_conn_id += 1;
        let task = connection::Connection::new(conn_id, stream, peer, config.clone(), events.clone());
        let counts = counts.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            task.run(shutdown).await;
            counts.remove(peer.ip());
        });
    }
}
