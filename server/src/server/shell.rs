//! The tokio shell around the replica: the core task's loop (events from connection tasks,
//! the log's durable watermark, peer messages, timers) and [`TokioIo`], which carries out the
//! replica's effects with channels, the log writer thread and files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::{ConnectRequest, Id};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::quorum::transport::{Incoming, PeerSender};
use crate::replica::io::{Io, LogCut, SnapshotFile};
use crate::replica::{Core, RequestFault};
use crate::tree::ConnId;
use crate::txlog::stats::LogStats;
use crate::txlog::{LogStatus, LogWriter};
use crate::zab::{Sid, Zxid};

/// What connection tasks tell the core.
pub enum Event {
    Connect {
        conn: ConnId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: mpsc::Sender<Outbound>,
        /// Shared with the connection task: queued bytes and the abort signal.
        control: Arc<ConnControl>,
        /// Ids the connection gained before its ConnectRequest: `x509` from its certificate.
        auth: Vec<Id>,
    },
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Result<Request, RequestFault>,
        received: Instant,
    },
    Closed {
        conn: ConnId,
    },
    FourLetter {
        word: String,
        reply: oneshot::Sender<String>,
    },
}

/// Shared by the core and one connection task.
#[derive(Default)]
pub struct ConnControl {
    /// Bytes handed to the connection task and not yet written to the socket.
    pub queued_bytes: std::sync::atomic::AtomicUsize,
    /// Wakes the connection task to drop the socket at once (a client that stopped reading:
    /// its queue is full, so no Close message fits).
    pub abort: tokio::sync::Notify,
}

/// What the core tells a connection task.
pub enum Outbound {
    Data(Bytes),
    /// Write what is queued, then close.
    Close,
}

/// A client connection's end of the channels.
struct ConnLink {
    outbound: mpsc::Sender<Outbound>,
    control: Arc<ConnControl>,
    peer: SocketAddr,
}

/// The replica's effects, carried out with tokio channels, the log writer thread and files.
pub struct TokioIo {
    config: Arc<Config>,
    conns: HashMap<ConnId, ConnLink>,
    log: LogWriter,
    /// The log writer was replaced (truncation, snapshot install): the loop watches the new one.
    log_replaced: bool,
    peers: PeerSender,
    fatal: watch::Sender<Option<String>>,
    snapshot_duration: prometheus_client::metrics::histogram::Histogram,
    snapshot_size: prometheus_client::metrics::gauge::Gauge,
}

impl TokioIo {
    pub fn new(
        config: Arc<Config>,
        log: LogWriter,
        peers: PeerSender,
        fatal: watch::Sender<Option<String>>,
        metrics: &crate::metrics::ServerMetrics,
    ) -> TokioIo {
        TokioIo {
            config,
            conns: HashMap::new(),
            log,
            log_replaced: false,
            peers,
            fatal,
            snapshot_duration: metrics.snapshot_duration.clone(),
            snapshot_size: metrics.snapshot_size.clone(),
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}; stopping the server");
        let _ = self.fatal.send(Some(reason));
    }
}

impl Io for TokioIo {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn random(&mut self) -> u64 {
        rand::random()
    }

    /// A client whose outbound queue is full (or over `connection_outbound_bytes_max`) has
    /// stopped reading: it is cut off so it cannot grow server memory.
    fn deliver(&mut self, conn: ConnId, data: Bytes) -> bool {
        let Some(link) = self.conns.get(&conn) else { return false };
        let queued = link.control.queued_bytes.fetch_add(data.len(), Ordering::AcqRel);
        // A client that has read everything gets this batch whatever its size (one reply may
        // exceed the bound, e.g. a 1 M-child getChildren, which ZooKeeper sends too).
        let over = queued > 0 && queued + data.len() > self.config.connection_outbound_bytes_max;
        if over || link.outbound.try_send(Outbound::Data(data)).is_err() {
            tracing::warn!(conn, peer = %link.peer, queued, "client is not reading its replies; closing connection");
            link.control.abort.notify_one();
            self.conns.remove(&conn);
            return false;
        }
        true
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(link) = self.conns.remove(&conn) {
            let _ = link.outbound.try_send(Outbound::Close);
        }
    }

    fn send(&mut self, to: Sid, message: Bytes) -> bool {
        self.peers.send(to, message)
    }

    fn log_append(&mut self, zxid: Zxid, payload: Bytes) {
        self.log.append(zxid, payload);
    }

    fn log_roll(&mut self) {
        self.log.roll();
    }

    fn log_restart(&mut self, durable: Zxid, cut: LogCut) -> Result<(), String> {
        let settings = self.config.log.clone();
        let fresh = LogWriter::start(settings.clone(), durable).map_err(|error| {
            format!("cannot restart the transaction log in {}: {error}", settings.dir.display())
        })?;
        let old = std::mem::replace(&mut self.log, fresh);
        old.shutdown();
        self.log_replaced = true;
        let changed = match cut {
            LogCut::After(after) => crate::txlog::truncate::truncate_after(&settings.dir, after).map(|_| ()),
            LogCut::All => crate::txlog::truncate::remove_all(&settings.dir),
        };
        changed.map_err(|error| {
            format!("cannot rewrite the transaction log in {}: {error}", settings.dir.display())
        })
    }

    fn log_stats(&self) -> Arc<LogStats> {
        self.log.stats()
    }

    fn log_backend(&self) -> &'static str {
        self.log.backend().name()
    }

    fn save_epochs(&mut self, current: i64, accepted: i64) -> Result<(), String> {
        let dir = &self.config.data_dir;
        crate::quorum::epochs::save(dir, current, accepted)
            .map_err(|error| format!("cannot write the epoch files in {}: {error}", dir.display()))
    }

    fn write_snapshot(&mut self, snapshot: SnapshotFile) {
        let SnapshotFile { zxid, bytes, done, span, started, busy, longest, chunks } = snapshot;
        let dir = self.config.snap_dir.clone();
        let finished = done.clone();
        let (duration, size) = (self.snapshot_duration.clone(), self.snapshot_size.clone());
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let _entered = span.enter();
            match crate::txlog::snapshot::write(&dir, zxid, &bytes) {
                Ok(path) => {
                    duration.observe(started.elapsed().as_secs_f64());
                    size.set(bytes.len() as i64);
                    tracing::info!(
                        path = %path.display(),
                        bytes = bytes.len(),
                        chunks,
                        serialize_ms = busy.as_millis() as u64,
                        longest_chunk_us = longest.as_micros() as u64,
                        total_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    )
                }
                // The log still holds everything: a failed snapshot loses nothing.
                Err(error) => tracing::error!(%error, dir = %dir.display(), "snapshot failed"),
            }
            finished.store(false, Ordering::Release);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the snapshot thread");
            done.store(false, Ordering::Release);
        }
    }

    fn install_snapshot(&mut self, zxid: Zxid, data: &Bytes) -> Result<(), String> {
        let dir = &self.config.snap_dir;
        crate::txlog::snapshot::write(dir, zxid, data)
            .map(|_| ())
            .map_err(|error| format!("cannot write the snapshot in {}: {error}", dir.display()))
    }

    fn purge(&mut self) {
        let (snaps, logs, retain) =
            (self.config.snap_dir.clone(), self.config.log.dir.clone(), self.config.snap_retain_count);
        tokio::task::spawn_blocking(move || match crate::txlog::purge::purge(&snaps, &logs, retain) {
            Ok(report) => tracing::info!(deleted = report.deleted.len(), "autopurge done"),
            Err(error) => tracing::warn!(%error, "autopurge failed"),
        });
    }

    fn fatal(&mut self, reason: String) {
        self.fail(reason);
    }

    fn failed(&self) -> bool {
        self.fatal.borrow().is_some()
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The shell's own view of the core's effects.
fn tokio_io(core: &mut Core) -> &mut TokioIo {
    core.io.as_any_mut().downcast_mut::<TokioIo>().expect("the tokio shell runs a core built with TokioIo")
}

/// The core task: feeds the replica its events in batches and flushes what they produced.
pub async fn run(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    mut incoming: Option<mpsc::Receiver<Incoming>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = Duration::from_millis(u64::from(core.config.tick_time_ms / 4).clamp(10, 500));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(256);
    let outstanding_max = (core.config.global_outstanding_limit as usize).max(1);
    let mut log_status = tokio_io(&mut core).log.status();
    let mut zab_ticker = tokio::time::interval(Duration::from_millis(10));
    zab_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Stop taking requests while too many are outstanding (waiting for the log, for
            // the leader, or for a zxid): connections then stop being read and clients feel
            // the backpressure. In an ensemble every follower bounds what it forwards, so
            // the leader's queue of forwarded writes is bounded too; none is dropped.
            n = events.recv_many(&mut batch, 256), if core.outstanding() < outstanding_max => {
                if n == 0 {
                    break;
                }
                for event in batch.drain(..) {
                    handle(&mut core, event);
                }
            }
            changed = log_status.changed() => {
                let status: LogStatus = log_status.borrow_and_update().clone();
                if changed.is_err() || status.failure.is_some() {
                    let reason = status.failure.unwrap_or_else(|| "transaction log writer stopped".into());
                    tokio_io(&mut core).fail(reason);
                    break;
                }
                core.zab_persisted(status.durable_zxid);
            }
            message = async {
                match incoming.as_mut() {
                    Some(receiver) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            } => match message {
                Some(Incoming::Message { from, message }) => core.on_peer_message(from, message),
                Some(Incoming::LinkDown { from }) => core.on_link_down(from),
                None => incoming = None,
            },
            _ = zab_ticker.tick() => core.zab_tick(),
            // A snapshot under way advances one chunk whenever the loop comes round.
            _ = std::future::ready(()), if core.snapshot.is_some() => core.snapshot_step(),
            _ = ticker.tick() => core.on_tick(),
            _ = shutdown.changed() => break,
        }
        let io = tokio_io(&mut core);
        if io.log_replaced {
            io.log_replaced = false;
            log_status = io.log.status();
        }
        if io.failed() {
            break;
        }
        core.flush();
    }
    let io = tokio_io(&mut core);
    let conns: Vec<ConnId> = io.conns.keys().copied().collect();
    for conn in conns {
        io.close(conn);
    }
}

fn handle(core: &mut Core, event: Event) {
    match event {
        Event::Connect { conn, peer, request, outbound, control, auth } => {
            tokio_io(core).conns.insert(conn, ConnLink { outbound, control, peer });
            core.on_connect(conn, peer, request, auth)
        }
        Event::Request { conn, xid, op, request, received } => {
            core.on_request(conn, xid, op, request, received)
        }
        Event::Closed { conn } => {
            tokio_io(core).conns.remove(&conn);
            core.drop_connection(conn)
        }
        Event::FourLetter { word, reply } => {
            // Without a leader, ZooKeeper answers only the words that need no server.
            let text = if core.serving()
                || core.read_only_active()
                || matches!(word.as_str(), "ruok" | "envi" | "conf" | "isro")
            {
                super::fourlw::execute(core, &word)
            } else {
                "This ZooKeeper instance is not currently serving requests\n".to_owned()
            };
            let _ = reply.send(text);
        }
    }
}
