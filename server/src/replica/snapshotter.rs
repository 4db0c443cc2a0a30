//! Snapshots: every ~snapCount txns (and for a learner's SNAP sync) the core serializes the
//! applied tree a chunk of nodes per loop turn while requests go on; a thread writes the file.

use std::time::{Duration, Instant};

use super::core::Core;
use super::io::SnapshotFile;

/// Nodes serialized per loop iteration while a snapshot is under way (~0.3-0.5 ms of work).
const SNAPSHOT_CHUNK_NODES: usize = 1024;

/// A snapshot being serialized by the core, a chunk at a time.
pub(crate) struct SnapshotWork {
    encoder: crate::txlog::snapshot::Encoder,
    /// Written to the snapshot directory (a periodic snapshot), or only handed to learners.
    to_disk: bool,
    /// Learners of this leader waiting for these bytes (SNAP sync).
    for_peers: Vec<crate::zab::Sid>,
    span: tracing::Span,
    started: Instant,
    /// Core time spent serializing so far, and the longest chunk.
    busy: Duration,
    longest: Duration,
    chunks: u32,
}

/// ZooKeeper's SyncRequestProcessor: snapshot after snapCount/2 + rand[0, snapCount/2) txns.
pub(crate) fn snapshot_threshold(snap_count: u64, random: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + random % half
}

impl Core {
    /// Rolls the log and starts a snapshot of the applied tree as it is now. The core
    /// serializes it a chunk of nodes per loop iteration ([`Core::snapshot_step`]), between
    /// batches of requests, while txns keep being applied (the tree keeps the pre-images of
    /// nodes that change before their turn); a thread of its own writes the file.
    pub(crate) fn take_snapshot(&mut self) {
        use std::sync::atomic::Ordering;
        if self.snapshot.is_some() {
            // A snapshot for a learner is under way; try again after the next txn.
            return;
        }
        if self.snapshot_running.swap(true, Ordering::AcqRel) {
            tracing::warn!("Too busy to snap, skipping");
            return;
        }
        self.txns_since_snapshot = 0;
        self.snapshot_after = snapshot_threshold(self.config.snap_count, self.io.random());
        self.io.log_roll();
        self.begin_snapshot(true, Vec::new());
    }

    /// Starts serializing the applied tree, a chunk per loop turn (`snapshot_step`).
    pub(crate) fn begin_snapshot(&mut self, to_disk: bool, for_peers: Vec<crate::zab::Sid>) {
        let (zxid, sessions) = self.tree.snapshot_begin();
        let span = tracing::info_span!("snapshot", zxid = format_args!("0x{zxid:x}"), to_disk);
        self.snapshot = Some(Box::new(SnapshotWork {
            to_disk,
            for_peers,
            // Sized like the last snapshot, so that the buffer does not grow (copying) midway.
            encoder: crate::txlog::snapshot::Encoder::start(
                zxid,
                &sessions,
                self.last_snapshot_bytes * 9 / 8,
            ),
            span,
            started: self.io.now(),
            busy: Duration::ZERO,
            longest: Duration::ZERO,
            chunks: 0,
        }));
    }

    /// A learner needs a SNAP sync: serialize the tree in chunks like a periodic snapshot (no
    /// pause that grows with the tree), after the one under way if any.
    pub(crate) fn snapshot_for_peer(&mut self, to: crate::zab::Sid) {
        match self.snapshot.as_mut() {
            Some(_) => {
                if !self.snapshot_waiting.contains(&to) {
                    self.snapshot_waiting.push(to);
                }
            }
            None => self.begin_snapshot(false, vec![to]),
        }
    }

    /// One chunk of the snapshot under way; when it is complete, hands the bytes to a thread.
    pub fn snapshot_step(&mut self) {
        use std::sync::atomic::Ordering;
        let Some(work) = self.snapshot.as_mut() else { return };
        if !self.tree.snapshot_in_progress() {
            // The tree was replaced (a snapshot from the leader): this snapshot is void; the
            // next one comes after snapCount/2+ txns (a learner's is asked for again).
            tracing::info!(parent: &work.span, "snapshot abandoned: the tree was replaced");
            if work.to_disk {
                self.snapshot_running.store(false, Ordering::Release);
            }
            self.snapshot = None;
            return;
        }
        let chunk_started = self.io.now();
        let done = work.span.in_scope(|| work.encoder.chunk(&mut self.tree, SNAPSHOT_CHUNK_NODES));
        let took = self.io.now().saturating_duration_since(chunk_started);
        work.busy += took;
        work.longest = work.longest.max(took);
        work.chunks += 1;
        if !done {
            return;
        }
        let Some(work) = self.snapshot.take() else { return };
        let SnapshotWork { encoder, to_disk, for_peers, span, started, busy, longest, chunks } = *work;
        self.metrics.snapshot_serialize.observe(busy.as_secs_f64());
        let zxid = encoder.zxid();
        let bytes = encoder.finish();
        self.last_snapshot_bytes = bytes.len();
        // Learners that asked meanwhile get a snapshot of their own (cut now); one that finds
        // this one too old asks again and joins the waiting list.
        let waiting = std::mem::take(&mut self.snapshot_waiting);
        if !waiting.is_empty() {
            self.begin_snapshot(false, waiting);
        }
        if !for_peers.is_empty() {
            let data = bytes::Bytes::from(bytes.clone());
            span.in_scope(|| {
                tracing::info!(learners = ?for_peers, bytes = data.len(), chunks, "snapshot for SNAP sync ready")
            });
            for to in for_peers {
                self.zab_step(crate::zab::Input::SnapshotReady { to, zxid, data: data.clone() });
            }
        }
        if !to_disk {
            return;
        }
        let done = self.snapshot_running.clone();
        let file = SnapshotFile { zxid, bytes, done, span, started, busy, longest, chunks };
        self.io.write_snapshot(file);
    }
}
