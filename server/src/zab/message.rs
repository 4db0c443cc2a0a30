//! The messages peers exchange. Plain enums; the shell serializes them.
//!
//! Every leader↔learner message carries the learner connection nonce `conn` (chosen by the
//! learner for each connection attempt) and the leader's `epoch`, so that late, duplicated or
//! reordered messages of an earlier connection are recognised and ignored.

use bytes::Bytes;

use super::{Epoch, Sid, Zxid};

/// A vote in leader election; ordered by (epoch, zxid, leader) as in FastLeaderElection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    /// The proposed leader's `currentEpoch`.
    pub epoch: Epoch,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader.
    pub leader: Sid,
}

/// The sender's state in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
}

/// How a learner's log is brought in line with the leader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMode {
    /// Keep the log up to `after` (TRUNC everything above it, if any), then append.
    Diff { after: Zxid },
    /// Replace state and log with this snapshot, then append.
    Snap { zxid: Zxid, data: Bytes },
}

/// A quorum packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Election notification (state, vote, logical clock).
    Notification { state: PeerState, vote: Vote, election_epoch: u64 },
    /// Learner → leader: a new connection.
    FollowerInfo { conn: u64, accepted_epoch: Epoch },
    /// Leader → learner: the new epoch.
    LeaderInfo { conn: u64, epoch: Epoch },
    /// Learner → leader: epoch accepted. `fresh` is true when the learner raised its accepted
    /// epoch for this message (only fresh accepts establish an epoch). `log_ends` is the last
    /// zxid of each epoch in the learner's in-memory log window, above `log_base`.
    AckEpoch {
        conn: u64,
        epoch: Epoch,
        current_epoch: Epoch,
        last_zxid: Zxid,
        fresh: bool,
        log_base: Zxid,
        log_ends: Vec<Zxid>,
    },
    /// Leader → learner: sync data plus NEWLEADER. `commit` is the leader's commit point.
    NewLeader { conn: u64, epoch: Epoch, sync: SyncMode, entries: Vec<(Zxid, Bytes)>, commit: Zxid },
    /// Learner → leader: the synced log up to `zxid` is durable and `currentEpoch` saved.
    AckNewLeader { conn: u64, epoch: Epoch, zxid: Zxid },
    /// Leader → learner: start serving.
    UpToDate { conn: u64, epoch: Epoch, commit: Zxid },
    /// Leader → learner: a proposal; `prev` is the zxid logged just before it.
    Proposal { conn: u64, epoch: Epoch, prev: Zxid, zxid: Zxid, payload: Bytes },
    /// Learner → leader: everything ≤ `zxid` is durable in the learner's log (cumulative).
    Ack { conn: u64, epoch: Epoch, zxid: Zxid },
    /// Leader → learner: everything ≤ `zxid` is committed.
    Commit { conn: u64, epoch: Epoch, zxid: Zxid },
    /// Leader → observer: a committed txn (ZooKeeper's INFORM); `prev` is the zxid informed
    /// (or synced) just before it.
    Inform { conn: u64, epoch: Epoch, prev: Zxid, zxid: Zxid, payload: Bytes },
    /// Leader → learner heartbeat; carries the commit point and whether UPTODATE was sent.
    Ping { conn: u64, epoch: Epoch, commit: Zxid, up_to_date: bool },
    /// Learner → leader heartbeat before the learner is synced.
    PingReply { conn: u64, epoch: Epoch },
}

impl Message {
    /// The learner connection the message belongs to (None for notifications).
    pub fn conn(&self) -> Option<u64> {
        match self {
            Message::Notification { .. } => None,
            Message::FollowerInfo { conn, .. }
            | Message::LeaderInfo { conn, .. }
            | Message::AckEpoch { conn, .. }
            | Message::NewLeader { conn, .. }
            | Message::AckNewLeader { conn, .. }
            | Message::UpToDate { conn, .. }
            | Message::Proposal { conn, .. }
            | Message::Ack { conn, .. }
            | Message::Commit { conn, .. }
            | Message::Inform { conn, .. }
            | Message::Ping { conn, .. }
            | Message::PingReply { conn, .. } => Some(*conn),
        }
    }
}
