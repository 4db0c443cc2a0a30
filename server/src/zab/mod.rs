//! ZooKeeper Atomic Broadcast (Zab) as a pure, deterministic state machine: fast leader
//! election, discovery, synchronisation and broadcast. One [`Peer`] per server.
//!
//! **Architecture Invariant:** nothing under `zab/` touches sockets, files, the clock, threads
//! or a global RNG. Time arrives as [`Input::Tick`]; the only randomness (connection nonces)
//! comes from the seed given to [`Peer::new`]. The same inputs give the same outputs, so the
//! replica shell and the deterministic simulator (`sim.rs`) run this code unchanged. The core
//! never sees the data tree: payloads are opaque bytes, snapshots are opaque bytes made by the
//! shell.
//!
//! # Phases
//!
//! ```text
//!            ┌──────────────── timeout / lost quorum / gap / newer epoch ─────────────────┐
//!            ▼                                                                            │
//!   LOOKING (election: Notification{vote=(epoch,zxid,sid), election_epoch})              │
//!      │ quorum agrees on a vote (after finalize wait), or a quorum says "following L"    │
//!      ├──────────── vote is me ─────────────┐                                            │
//!      ▼                                     ▼                                            │
//!   FOLLOWER                               LEADER                                         │
//!   1 discovery   FOLLOWERINFO(acc.epoch) ──►  quorum of FOLLOWERINFO: e = max(acc)+1     │
//!                 ◄── LEADERINFO(e)            SaveEpochs(accepted=e) before LEADERINFO   │
//!    SaveEpochs(accepted=e) then ACKEPOCH(cur.epoch, last zxid, log summary) ──►          │
//!                                              leader steps down if a follower is ahead;  │
//!                                              established by a quorum of *fresh* accepts │
//!   2 sync        ◄── NEWLEADER(DIFF after c | SNAP, entries, commit)                     │
//!                 Truncate / InstallSnapshot, Persist(entries)                           │
//!                 ... Persisted ≥ last: SaveEpochs(current=e), ACKNEWLEADER ──►          │
//!                                              quorum of NEWLEADER acks (leader counts    │
//!                                              itself once its log is durable) ⇒ commit   │
//!                 ◄── UPTODATE(commit)         the whole initial history                  │
//!   3 broadcast   ◄── PROPOSAL(prev, zxid)     Propose: zxid = e<<32 | counter            │
//!                 Persist ... Persisted: ACK(zxid) ──►  quorum of acks ⇒ COMMIT(zxid)     │
//!                 ◄── COMMIT / PING(commit)    PING every tick/2; learners silent for     │
//!                 PING reply ──►               syncLimit ticks are dropped; < quorum ⇒ ───┘
//! ```
//!
//! # The shell's duties
//!
//! 1. Drive the peer with one closed [`Input`] at a time and execute the [`Output`]s **in
//!    order**. `SaveEpochs`, `Truncate` and `InstallSnapshot` must be durable before the shell
//!    executes the next output (in particular before any following `Send`); they are rare.
//! 2. `Persist` appends to the local log asynchronously (group commit). When the log has made
//!    everything ≤ z durable, feed [`Input::Persisted`] `{ upto: z }`. Never report an entry
//!    as durable before it is. The core ACKs proposals only in response to `Persisted`, so the
//!    shell cannot ack before fsync.
//! 3. `Commit { upto }`: apply every logged entry with zxid ≤ `upto` not yet applied, in zxid
//!    order. The core never commits past what `Persisted` reported, so applied entries are
//!    always in the durable log. `Truncate { after }` never goes below the applied zxid.
//! 4. Before `Propose`, ask [`Peer::next_zxid`]; prep the write with that zxid, then feed
//!    [`Input::Propose`] with the same zxid. A write is acknowledged to the client only once
//!    `Commit` covers its zxid. `ProposalDropped` or a `RoleChanged` away from leading means
//!    the outcome of outstanding writes is unknown (ConnectionLoss to the client).
//! 5. `NeedSnapshot { to }`: take a snapshot of the applied state (zxid = last applied zxid)
//!    and feed [`Input::SnapshotReady`]. `InstallSnapshot` replaces the state and the log.
//! 6. On restart, rebuild the state from the snapshot plus the log up to a zxid known to be
//!    committed (e.g. the snapshot zxid), and construct the peer from [`DurableState`].
//! 7. Deliver [`Input::Tick`] often (every few ms); time must never go backwards.
//! 8. Messages may be lost, duplicated or reordered; the core copes (a learner connection is
//!    identified by a random `conn` nonce; gaps send the learner back to election).
//! 9. When the connection to a peer ends, feed [`Input::LinkDown`] after the last message
//!    received on it. The core then stops waiting for that peer: a follower of it goes
//!    LOOKING, a leader stops counting it, an election stops waiting for its vote (no
//!    `finalizeWait` when every voter still connected agrees). A link that ends while both
//!    sides live is harmless (the next message clears it); silence is left to the timeouts.

//! # Deviations from ZooKeeper (each closes a hole the simulator or the Zab proofs point at)
//!
//! - An epoch is established only by a quorum of *fresh* ACKEPOCHs (the learner raised its
//!   accepted epoch for this leader), so two leaders can never both establish one epoch;
//!   learners that had already accepted it join once it is established.
//! - ACKEPOCH carries a summary of the learner's log (last zxid per epoch in its window), so
//!   the leader finds the exact divergence point (TRUNC+DIFF) instead of guessing from the
//!   learner's last zxid; when the windows cannot tell, it uses SNAP.
//! - DIFF/TRUNC/SNAP, the proposals and NEWLEADER travel as one `NewLeader` message.
//! - A follower saves `currentEpoch` only after the synced log is durable (ZOOKEEPER-2678
//!   class of bugs), and applies only what is durable locally.
//! - A leader that sees a learner with a higher accepted epoch re-elects, instead of leaving
//!   that learner out until the leader fails.
//!
//! # Observers
//!
//! An observer (`Config::observers`) syncs with the leader like a follower (FOLLOWERINFO,
//! LEADERINFO, ACKEPOCH, NEWLEADER, UPTODATE) but counts in no quorum: its FOLLOWERINFO does
//! not fix the epoch, its ACKEPOCH neither establishes it nor deposes the leader, its
//! NEWLEADER ack does not start the broadcast, and it never acks proposals. The leader sends
//! it no PROPOSAL; each txn reaches it once committed, as `Inform` (ZooKeeper's INFORM),
//! which it logs (without acking) and applies once durable. Its notifications go to the
//! voters, which ignore them while looking and answer with the leader they follow otherwise;
//! it follows the leader a quorum of voters reports. It refuses a leader whose epoch is
//! older than one it already synced with (a deposed leader). It serves as a follower does
//! (`Role::Following`; [`Peer::is_observer`] tells them apart).

mod election;
mod follower;
mod leader;
mod log;
mod message;
mod peer;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use message::{Message, PeerState, SyncMode, Vote};
pub use peer::Peer;

use bytes::Bytes;

/// Server id (`myid`).
pub type Sid = u64;
/// ZooKeeper transaction id: `epoch << 32 | counter`.
pub type Zxid = i64;
/// Leader epoch (the high 32 bits of a zxid).
pub type Epoch = i64;

/// Builds a zxid from an epoch and a counter.
pub fn make_zxid(epoch: Epoch, counter: u32) -> Zxid {
    (epoch << 32) | i64::from(counter)
}

/// The epoch half of a zxid.
pub fn zxid_epoch(zxid: Zxid) -> Epoch {
    zxid >> 32
}

/// The counter half of a zxid.
pub fn zxid_counter(zxid: Zxid) -> u32 {
    (zxid & 0xffff_ffff) as u32
}

/// Static settings of one peer (zoo.cfg).
#[derive(Debug, Clone)]
pub struct Config {
    /// This server's id.
    pub sid: Sid,
    /// Every voting member (including `sid` unless this peer observes).
    pub voters: Vec<Sid>,
    /// Observers: members that learn commits (INFORM) but never vote, ack or lead.
    pub observers: Vec<Sid>,
    /// `tickTime` in ms.
    pub tick_ms: u64,
    /// `initLimit` in ticks: bound on connect + sync.
    pub init_limit: u64,
    /// `syncLimit` in ticks: a silent learner (or leader) is given up after this long.
    pub sync_limit: u64,
    /// First election notification timeout (ZooKeeper: 200 ms); doubles on every resend.
    pub election_timeout_ms: u64,
    /// Cap of the notification timeout back-off (ZooKeeper: 60 s).
    pub election_timeout_max_ms: u64,
    /// Wait for a better vote once a quorum agrees (ZooKeeper `finalizeWait`: 200 ms).
    pub finalize_wait_ms: u64,
    /// Committed entries kept in memory for DIFF sync (ZooKeeper `commitLogCount`: 500).
    pub commit_log_count: usize,
    /// Bound on uncommitted proposals at the leader; `next_zxid` is `None` beyond it.
    pub proposals_outstanding_max: usize,
}

impl Config {
    /// A configuration with ZooKeeper's defaults (tickTime 2000, initLimit 10, syncLimit 5).
    pub fn new(sid: Sid, voters: Vec<Sid>) -> Config {
        Config {
            sid,
            voters,
            observers: Vec::new(),
            tick_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            election_timeout_ms: 200,
            election_timeout_max_ms: 60_000,
            finalize_wait_ms: 200,
            commit_log_count: 500,
            proposals_outstanding_max: 1000,
        }
    }
}

/// What survives a restart: the epoch files and the tail of the transaction log.
#[derive(Debug, Clone, Default)]
pub struct DurableState {
    /// ZooKeeper's `currentEpoch` file: the epoch of the last leader this peer synced with.
    pub current_epoch: Epoch,
    /// ZooKeeper's `acceptedEpoch` file: the highest epoch this peer agreed to follow.
    pub accepted_epoch: Epoch,
    /// The zxid the shell's state machine has applied (snapshot + replayed log). Must be
    /// known committed; every logged entry above it must be in `log_tail`.
    pub applied_zxid: Zxid,
    /// The zxid of the log entry just before `log_tail` (0 if the tail starts the log, or the
    /// snapshot zxid).
    pub log_base: Zxid,
    /// The last durable log entries in zxid order (at least every entry > `applied_zxid`).
    pub log_tail: Vec<(Zxid, Bytes)>,
}

/// An event for the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// Time passes. `now_ms` never decreases.
    Tick { now_ms: u64 },
    /// A message from another peer.
    Recv { from: Sid, msg: Message },
    /// The local log made every entry with zxid ≤ `upto` durable.
    Persisted { upto: Zxid },
    /// Leader only: propose a client write. `zxid` must be [`Peer::next_zxid`].
    Propose { zxid: Zxid, payload: Bytes },
    /// The snapshot asked for by [`Output::NeedSnapshot`]; `zxid` is its last applied zxid.
    SnapshotReady { to: Sid, zxid: Zxid, data: Bytes },
    /// The connection to `peer` ended (EOF, reset, write error): everything it sent before
    /// has been delivered, and nothing more comes until it reconnects (any later `Recv` from
    /// it). A follower of `peer` goes LOOKING at once, a leader drops `peer` from its quorum
    /// count at once. Silence (a partition without FIN/RST, a paused process) produces no
    /// such event and is still found by the syncLimit / initLimit timeouts.
    LinkDown { peer: Sid },
}

/// A command for the shell (see the shell's duties in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a message to a peer (best effort).
    Send { to: Sid, msg: Message },
    /// Append these entries to the local log; answer later with `Persisted`.
    Persist { entries: Vec<(Zxid, Bytes)> },
    /// Drop every log entry with zxid > `after` (durably, before the next output).
    Truncate { after: Zxid },
    /// Replace state and log with this snapshot (durably, before the next output).
    InstallSnapshot { zxid: Zxid, data: Bytes },
    /// Apply every logged entry with zxid ≤ `upto`, in order.
    Commit { upto: Zxid },
    /// Persist the epoch files (before the next output).
    SaveEpochs { current: Epoch, accepted: Epoch },
    /// Make a snapshot of the applied state for learner `to`; answer with `SnapshotReady`.
    NeedSnapshot { to: Sid },
    /// The serving role changed: `Looking`, `Following` once up to date, `Leading` once
    /// established (a quorum synced in `epoch`).
    RoleChanged { role: Role, leader: Option<Sid>, epoch: Epoch },
    /// A `Propose` was refused (not leader any more, or a stale zxid).
    ProposalDropped { zxid: Zxid },
}

/// The role of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    Following,
    Leading,
}
