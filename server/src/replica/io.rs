//! What the replica asks of the world. The replica (the core's state and its `impl Core`
//! files) never touches a socket, a file, a thread, the clock or a global RNG: it calls this
//! trait. The tokio shell (`shell.rs`) carries it out with channels, the log writer thread and
//! files; the whole-replica simulator with in-memory queues, a simulated disk and a simulated
//! clock. Calls are effects in the order the replica makes them; the ones that return a
//! result (`log_restart`, `save_epochs`, `install_snapshot`) are durable when they return.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::tree::ConnId;
use crate::txlog::stats::LogStats;
use crate::zab::{Sid, Zxid};

/// How a restarted log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCut {
    /// Drop every entry with zxid > this one (a follower that diverged from its leader).
    After(Zxid),
    /// Drop every entry (the leader's snapshot replaces the state).
    All,
}

/// A periodic snapshot, serialized by the core, for the shell to write. `done` is the core's
/// "a snapshot is being written" flag: the shell clears it (Release) once the file is written
/// or has failed; the next snapshot waits for it.
pub struct SnapshotFile {
    pub zxid: Zxid,
    pub bytes: Vec<u8>,
    pub done: Arc<std::sync::atomic::AtomicBool>,
    pub span: tracing::Span,
    /// When serializing began, core time spent on it, its longest chunk, and its chunks.
    pub started: Instant,
    pub busy: Duration,
    pub longest: Duration,
    pub chunks: u32,
}

pub trait Io: Send {
    /// Monotonic time; never goes backwards.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch: txn time, `cons` fields.
    fn wall_ms(&self) -> i64;
    /// A random number (snapshot spacing).
    fn random(&mut self) -> u64;

    /// Hands bytes to a client connection. `false`: the client stopped reading its replies and
    /// was cut off (the replica forgets the connection).
    fn deliver(&mut self, conn: ConnId, data: Bytes) -> bool;
    /// Writes what was handed over to the connection, then closes it.
    fn close(&mut self, conn: ConnId);

    /// Queues a message for a peer; `false` when the link is down or its queue is full.
    fn send(&mut self, to: Sid, message: Bytes) -> bool;

    /// Appends a record to the log (group commit); durability is reported back as
    /// `Core::zab_persisted`.
    fn log_append(&mut self, zxid: Zxid, payload: Bytes);
    /// Closes the current log segment after what is queued.
    fn log_roll(&mut self);
    /// Stops the log, cuts it, and starts it again with `durable` as its durable watermark.
    fn log_restart(&mut self, durable: Zxid, cut: LogCut) -> Result<(), String>;
    fn log_stats(&self) -> Arc<LogStats>;
    fn log_backend(&self) -> &'static str;

    /// Makes the epoch files say these epochs.
    fn save_epochs(&mut self, current: i64, accepted: i64) -> Result<(), String>;
    /// Writes a periodic snapshot (in the background: see [`SnapshotFile::done`]).
    fn write_snapshot(&mut self, snapshot: SnapshotFile);
    /// Writes the leader's snapshot (SNAP sync) before anything else happens.
    fn install_snapshot(&mut self, zxid: Zxid, data: &Bytes) -> Result<(), String>;
    /// autopurge: old snapshots and logs (in the background).
    fn purge(&mut self);
    /// The server cannot go on: it stops, naming `reason`.
    fn fatal(&mut self, reason: String);
    fn failed(&self) -> bool;
    /// The concrete effects, for the shell that built them.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}
