//! The replica loop: the core task owns a [`zab::Peer`] next to the tree and executes the
//! peer's outputs (the shell's duties listed in `zab/mod.rs`). There is one write path: a
//! standalone server is a one-voter ensemble (ZooKeeper's `standaloneEnabled=false` shape)
//! that elects itself at start, whose own fsync is the quorum, and which says
//! `Mode: standalone`.
//!
//! ```text
//! leader:   client write ─► prep(zxid = peer.next_zxid) ─► Propose ─► Persist ─► log
//!           follower Forward ─┘                                  log durable ─► Persisted
//!           Commit{upto} ─► apply pending txns ≤ upto ─► replies (to local or forwarded origin)
//! follower: client write ─► Forward{session, cxid, op, body, auth} ─► leader
//!           Proposal ─► Persist ─► log (+ remember the record) … Commit ─► apply, and answer
//!           the waiting client matched by (session id, cxid) of the TxnHeader
//! ```
//!
//! The core is split by concept, each file an `impl Core` block: `core.rs` (the state and
//! the task's loop), `clients.rs` (connections, replies), `requests.rs` (routing, requests
//! with no txn), `ordering.rs` (each connection's `held` queue: requests complete in order),
//! `pipeline.rs` (propose → commit → apply), `forwarding.rs` (messages between servers other
//! than zab's), `sessions.rs`, `roles.rs`, `failover.rs` (kept connections while LOOKING),
//! `leader_queue.rs` (writes waiting for a zxid), `snapshotter.rs`, `housekeeping.rs`
//! (timer), `stats.rs`; this file executes zab's outputs.

use std::collections::VecDeque;

use super::{Map, Set};
use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::TxnRecord;

use super::core::{Core, Origin, Pending};
use super::failover::{Awaiting, Parked};
use super::io::LogCut;
use super::leader_queue::WaitingWrite;
use crate::quorum::wire::PeerMessage;
use crate::tree::{ConnId, SessionId, TreeConfig};
use crate::zab::{Input, Output, Peer, Role, Sid, Zxid};

/// The replicated half of the core.
pub struct Replica {
    pub peer: Peer,
    /// A one-voter ensemble with no quorum port: reports itself as standalone.
    pub standalone: bool,
    pub role: Role,
    pub leader: Option<Sid>,
    /// The leader's own proposals between `Propose` and their `Persist` output.
    pub(crate) proposing: Map<Zxid, (TxnRecord, Origin)>,
    /// Writes this follower forwarded, by (session, cxid), until their txn is logged.
    pub(crate) awaiting: Map<(SessionId, i32), Awaiting>,
    /// Order of forwarding (a re-forward after a leader change keeps each session's order).
    pub(crate) forward_seq: u64,
    /// Connections with a sync at the front of their held queue.
    pub(crate) sync_waiters: Set<ConnId>,
    /// Sessions active since the last `Touch` (follower).
    pub(crate) touched: Set<SessionId>,
    pub(crate) tree_config: TreeConfig,
    /// The election under way (LOOKING): its span and start.
    pub(crate) election: Option<(tracing::Span, Instant)>,
    /// Requests of kept connections that arrived while LOOKING, in arrival order.
    pub(crate) parked: VecDeque<Parked>,
    /// Leader: writes waiting for a zxid (the outstanding-proposal bound was reached), in
    /// arrival order. Proposed as commits free room; never dropped.
    pub(crate) waiting_zxid: VecDeque<WaitingWrite>,
    /// Leader: which server holds each session (`session_moved.rs`).
    pub(crate) owners: super::session_moved::Owners,
}

impl Replica {
    /// `standalone`: a one-voter ensemble with no links.
    pub fn new(peer: Peer, standalone: bool, tree_config: TreeConfig) -> Replica {
        Replica {
            standalone,
            peer,
            role: Role::Looking,
            election: None,
            leader: None,
            proposing: Map::default(),
            awaiting: Map::default(),
            forward_seq: 0,
            sync_waiters: Set::default(),
            touched: Set::default(),
            parked: VecDeque::new(),
            waiting_zxid: VecDeque::new(),
            owners: Default::default(),
            tree_config,
        }
    }
}

pub(crate) fn origin_conn(origin: &Origin) -> Option<ConnId> {
    match origin {
        Origin::Client { conn, .. } | Origin::Connect { conn, .. } | Origin::Close { conn, .. } => {
            Some(*conn)
        }
        Origin::Forwarded { .. } | Origin::Internal => None,
    }
}

impl Core {
    /// Sends a message to another server (best effort: zab copes with loss).
    pub(crate) fn send_peer(&mut self, to: Sid, message: &PeerMessage) -> bool {
        self.io.send(to, message.encode())
    }

    pub(crate) fn zab_now_ms(&self) -> u64 {
        self.io.now().saturating_duration_since(self.started).as_millis() as u64
    }

    pub fn zab_tick(&mut self) {
        let now_ms = self.zab_now_ms();
        self.zab_step(Input::Tick { now_ms });
    }

    /// Feeds the log's durable watermark to the peer.
    pub fn zab_persisted(&mut self, upto: Zxid) {
        self.zab_step(Input::Persisted { upto });
    }

    /// One input, then its outputs in order (duty 1).
    pub(crate) fn zab_step(&mut self, input: Input) {
        // One output buffer reused across steps; a step nested in an output's handling (a
        // commit freeing room for a queued proposal) gets a fresh one.
        let mut out = std::mem::take(&mut self.zab_out);
        self.replica.peer.step(input, &mut out);
        for output in out.drain(..) {
            self.zab_output(output);
        }
        if self.zab_out.capacity() == 0 {
            self.zab_out = out;
        }
    }

    pub(crate) fn fail(&mut self, reason: String) {
        self.io.fatal(reason);
    }

    pub(crate) fn zab_output(&mut self, output: Output) {
        match output {
            Output::Send { to, msg } => {
                self.send_peer(to, &PeerMessage::Zab(msg));
            }
            Output::Persist { entries } => {
                for (zxid, payload) in entries {
                    self.persist_entry(zxid, payload);
                }
            }
            Output::Truncate { after } => {
                tracing::info!(
                    after = format_args!("0x{after:x}"),
                    "truncating the log (diverged from the leader)"
                );
                self.restart_log(after, LogCut::After(after));
                // Proposals of the old leader that the new one does not have: never committed.
                // A client waiting on one cannot be told which (ConnectionLoss).
                let mut lost = Vec::new();
                self.pending.retain(|p| {
                    let keep = p.record.header.zxid <= after;
                    if !keep {
                        lost.extend(origin_conn(&p.origin));
                    }
                    keep
                });
                for conn in lost {
                    self.close_connection(conn);
                }
            }
            Output::InstallSnapshot { zxid, data } => self.install_snapshot(zxid, data),
            Output::Commit { upto } => {
                self.on_commit(upto);
                self.drain_sync_waiters();
                self.propose_waiting();
            }
            Output::SaveEpochs { current, accepted } => {
                if let Err(reason) = self.io.save_epochs(current, accepted) {
                    self.fail(reason);
                }
            }
            Output::NeedSnapshot { to } => self.snapshot_for_peer(to),
            Output::RoleChanged { role, leader, epoch } => self.on_role_changed(role, leader, epoch),
            Output::ProposalDropped { zxid } => {
                let dropped = self.replica.proposing.remove(&zxid);
                if let Some(conn) = dropped.as_ref().and_then(|(_, origin)| origin_conn(origin)) {
                    // The outcome is unknown to the client: ConnectionLoss.
                    self.close_connection(conn);
                }
            }
        }
    }

    /// Duty 2: append to the log; remember the txn (and who waits for it) until committed.
    pub(crate) fn persist_entry(&mut self, zxid: Zxid, payload: Bytes) {
        let replica = &mut self.replica;
        let (record, origin) = match replica.proposing.remove(&zxid) {
            Some(proposed) => proposed,
            None => match TxnRecord::decode(&payload) {
                Ok(record) if record.header.zxid == zxid => {
                    let key = (record.header.client_id, record.header.cxid);
                    let origin = replica.awaiting.remove(&key).map_or(Origin::Internal, |a| a.origin);
                    (record, origin)
                }
                _ => {
                    self.fail(format!("the leader sent an undecodable txn at zxid 0x{zxid:x}"));
                    return;
                }
            },
        };
        self.io.log_append(zxid, payload);
        let proposed = self.io.now();
        self.pending.push_back(Pending { record, origin, proposed });
    }

    /// Stops the log, cuts it, starts it again with `durable` as its durable watermark
    /// (duty 1: done before the next output).
    pub(crate) fn restart_log(&mut self, durable: Zxid, cut: LogCut) {
        if let Err(reason) = self.io.log_restart(durable, cut) {
            self.fail(reason);
        }
    }

    /// Duty 5: replace the state and the log with the leader's snapshot.
    pub(crate) fn install_snapshot(&mut self, zxid: Zxid, data: Bytes) {
        let tree_config = self.replica.tree_config.clone();
        tracing::info!(
            zxid = format_args!("0x{zxid:x}"),
            bytes = data.len(),
            "installing the leader's snapshot"
        );
        let tree = match crate::txlog::snapshot::decode(&data, tree_config) {
            Ok(tree) => tree,
            Err(reason) => {
                self.fail(format!("the leader's snapshot does not load: {reason}"));
                return;
            }
        };
        if let Err(reason) = self.io.install_snapshot(zxid, &data) {
            self.fail(reason);
            return;
        }
        self.restart_log(zxid, LogCut::All);
        self.pending.clear();
        self.close_all_connections();
        self.tree = tree;
    }
}
