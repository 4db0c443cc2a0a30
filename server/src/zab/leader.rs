//! The leader: discovery (new epoch from a quorum of FOLLOWERINFO), synchronisation
//! (DIFF/TRUNC/SNAP + NEWLEADER) and broadcast (pipelined proposals, commit on a quorum of
//! acks, in zxid order), with pings and the quorum check. Observers are synced the same way
//! but count in no quorum, and get each committed txn as `Inform` instead of proposals.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::log::{Log, common_point};
use super::peer::{Peer, State};
use super::{Epoch, Message, Output, Role, Sid, SyncMode, Zxid, make_zxid, zxid_counter, zxid_epoch};

#[derive(Debug, Clone)]
pub(super) struct Leader {
    /// The new epoch, once a quorum of FOLLOWERINFO fixed it.
    pub(super) epoch: Option<Epoch>,
    /// A quorum freshly accepted `epoch`: learners may be synced.
    pub(super) established: bool,
    /// The leader's own log is durable up to `initial_zxid` and `currentEpoch` saved.
    pub(super) self_synced: bool,
    /// A quorum acked NEWLEADER: proposals and commits flow.
    pub(super) broadcast: bool,
    /// (currentEpoch, last zxid) when leadership began; a learner above it deposes us.
    summary: (Epoch, Zxid),
    /// The last zxid of the initial history (committed once a quorum acks NEWLEADER).
    initial_zxid: Zxid,
    /// Commit point known to the leader.
    pub(super) committed: Zxid,
    /// Counter of the last proposal of this epoch.
    counter: u32,
    started_ms: u64,
    last_ping_ms: u64,
    learners: BTreeMap<Sid, Learner>,
}

#[derive(Debug, Clone)]
struct Learner {
    conn: u64,
    /// An observer: counts in no quorum, gets `Inform`s, not proposals.
    observer: bool,
    /// Observer: the last zxid it was sent (by the sync, then by informs).
    informed: Zxid,
    accepted_epoch: Epoch,
    phase: LearnerPhase,
    /// Accepted our epoch freshly (counts toward establishing it).
    fresh: bool,
    last_heard_ms: u64,
    /// The learner's ack at the previous ping: no progress over a whole ping interval with
    /// proposals outstanding means the tail was lost; it is sent again.
    acked_at_last_ping: Zxid,
}

#[derive(Debug, Clone)]
enum LearnerPhase {
    /// FOLLOWERINFO received, epoch not yet fixed.
    Connected,
    /// LEADERINFO sent.
    EpochSent,
    /// ACKEPOCH received, waiting for establishment.
    EpochAcked { log_base: Zxid, log_ends: Vec<Zxid>, last_zxid: Zxid },
    /// NEED SNAPSHOT asked of the shell when the leader had applied `asked_at`: the log keeps
    /// every entry after it until the snapshot arrives (it may be serialized over many steps).
    AwaitingSnapshot { asked_at: Zxid },
    /// NEWLEADER sent; proposals are forwarded.
    Syncing { newleader_zxid: Zxid },
    /// NEWLEADER acked; acks count.
    Synced { acked: Zxid, up_to_date: bool },
}

impl Leader {
    /// The oldest point a learner's pending snapshot was asked at: the log keeps what follows.
    pub(super) fn snapshot_pin(&self) -> Option<Zxid> {
        self.learners
            .values()
            .filter_map(|l| match l.phase {
                LearnerPhase::AwaitingSnapshot { asked_at } => Some(asked_at),
                _ => None,
            })
            .min()
    }

    /// Followers (`observers` false) or observers whose NEWLEADER ack arrived (mntr
    /// `zk_synced_followers`, `zk_synced_observers`).
    pub(super) fn synced_learners(&self, observers: bool) -> usize {
        self.learners
            .values()
            .filter(|l| l.observer == observers && matches!(l.phase, LearnerPhase::Synced { .. }))
            .count()
    }

    /// Whether `sid` is a learner whose NEWLEADER ack arrived on its current connection.
    pub(super) fn is_synced(&self, sid: Sid) -> bool {
        self.learners.get(&sid).is_some_and(|l| matches!(l.phase, LearnerPhase::Synced { .. }))
    }

    pub(super) fn next_zxid(&self, log: &Log, outstanding_max: usize) -> Option<Zxid> {
        let epoch = self.epoch?;
        if !self.broadcast {
            return None;
        }
        let committed_counter =
            if zxid_epoch(self.committed) == epoch { zxid_counter(self.committed) } else { 0 };
        let outstanding = self.counter.saturating_sub(committed_counter) as usize;
        if outstanding >= outstanding_max || self.counter == u32::MAX {
            return None;
        }
        debug_assert_eq!(
            log.last(),
            if self.counter == 0 { log.last() } else { make_zxid(epoch, self.counter) }
        );
        Some(make_zxid(epoch, self.counter + 1))
    }

    pub(super) fn validate(&self, peer: &Peer) {
        if let Some(epoch) = self.epoch {
            assert_eq!(peer.accepted_epoch, epoch, "a leader's accepted epoch is its epoch");
        }
        assert!(!self.broadcast || self.self_synced, "broadcast before the leader's own sync");
        assert!(!self.self_synced || self.established, "self-synced before established");
        if self.self_synced {
            assert_eq!(Some(peer.current_epoch), self.epoch, "currentEpoch saved when synced");
        }
        assert!(self.committed <= peer.log.last(), "committed beyond the log");
        assert!(peer.log.applied <= self.committed.max(peer.log.applied), "applied beyond committed");
        if self.broadcast {
            assert!(self.committed >= self.initial_zxid, "initial history committed on broadcast");
        }
        for learner in self.learners.values() {
            if let LearnerPhase::Synced { acked, .. } = learner.phase {
                assert!(acked <= peer.log.last(), "learner acked beyond the leader's log");
            }
        }
    }
}

impl Peer {
    pub(super) fn become_leading(&mut self, out: &mut Vec<Output>) {
        let last = self.log.last();
        self.state = State::Leading(Leader {
            epoch: None,
            established: false,
            self_synced: false,
            broadcast: false,
            summary: (self.current_epoch, last),
            initial_zxid: last,
            committed: self.log.applied,
            counter: 0,
            started_ms: self.now_ms,
            last_ping_ms: self.now_ms,
            learners: BTreeMap::new(),
        });
        // A one-peer ensemble is its own quorum.
        self.leader_progress(out);
    }

    fn leading_mut(&mut self) -> Option<&mut Leader> {
        match &mut self.state {
            State::Leading(leader) => Some(leader),
            _ => None,
        }
    }

    pub(super) fn leader_tick(&mut self, out: &mut Vec<Output>) {
        let last = self.log.last();
        let log = &self.log;
        let now = self.now_ms;
        let tick = self.config.tick_ms;
        let init_ms = self.config.init_limit * tick;
        let sync_ms = self.config.sync_limit * tick;
        let State::Leading(leader) = &mut self.state else { return };
        if !leader.broadcast && now.saturating_sub(leader.started_ms) > init_ms {
            self.become_looking(out);
            return;
        }
        leader.learners.retain(|_, learner| {
            let limit = match learner.phase {
                LearnerPhase::Syncing { .. } | LearnerPhase::Synced { .. } => sync_ms,
                _ => init_ms,
            };
            now.saturating_sub(learner.last_heard_ms) <= limit
        });
        if now.saturating_sub(leader.last_ping_ms) >= tick / 2 {
            leader.last_ping_ms = now;
            if let Some(epoch) = leader.epoch {
                for (sid, learner) in leader.learners.iter_mut() {
                    let up_to_date = matches!(learner.phase, LearnerPhase::Synced { up_to_date: true, .. });
                    if matches!(learner.phase, LearnerPhase::Syncing { .. } | LearnerPhase::Synced { .. }) {
                        let msg =
                            Message::Ping { conn: learner.conn, epoch, commit: leader.committed, up_to_date };
                        out.push(Output::Send { to: *sid, msg });
                    }
                    if let LearnerPhase::Synced { acked, .. } = learner.phase
                        && !learner.observer
                    {
                        // A link that drops messages without ending (the simulator's; TCP
                        // only loses them with the connection): resend the unacked tail.
                        if acked < last && acked == learner.acked_at_last_ping && log.contains(acked) {
                            let mut prev = acked;
                            for (zxid, payload) in log.entries_after(acked) {
                                let msg =
                                    Message::Proposal { conn: learner.conn, epoch, prev, zxid, payload };
                                out.push(Output::Send { to: *sid, msg });
                                prev = zxid;
                            }
                        }
                        learner.acked_at_last_ping = acked;
                    }
                }
            }
        }
        let (broadcast, synced) = (leader.broadcast, leader.synced_learners(false));
        if broadcast && !self.is_quorum(synced + 1) {
            self.become_looking(out);
        }
    }

    /// A learner's connection ended: it no longer counts (ZooKeeper's LearnerHandler ends
    /// with its socket). Without a quorum the leader steps down at once.
    pub(super) fn leader_link_down(&mut self, peer: Sid, out: &mut Vec<Output>) {
        let Some(leader) = self.leading_mut() else { return };
        if leader.learners.remove(&peer).is_none() {
            return;
        }
        let (synced, broadcast) = (leader.synced_learners(false), leader.broadcast);
        if broadcast && !self.is_quorum(synced + 1) {
            self.become_looking(out);
        }
    }

    pub(super) fn leader_message(&mut self, from: Sid, msg: Message, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let observer = !self.is_voter(from);
        let Some(leader) = self.leading_mut() else { return };
        if let Message::FollowerInfo { conn, accepted_epoch } = msg {
            if !observer && leader.epoch.is_some_and(|epoch| accepted_epoch > epoch) {
                // The learner promised a newer epoch and will refuse ours; ZooKeeper leaves it
                // out until the leader fails. Re-elect so the next epoch exceeds its promise.
                self.become_looking(out);
                return;
            }
            let known = leader.learners.get(&from).is_some_and(|l| l.conn == conn);
            if !known {
                let learner = Learner {
                    conn,
                    observer,
                    informed: 0,
                    accepted_epoch,
                    phase: LearnerPhase::Connected,
                    fresh: false,
                    last_heard_ms: now,
                    acked_at_last_ping: 0,
                };
                leader.learners.insert(from, learner);
            }
            if let (Some(epoch), Some(learner)) = (leader.epoch, leader.learners.get_mut(&from)) {
                learner.last_heard_ms = now;
                if matches!(learner.phase, LearnerPhase::Connected | LearnerPhase::EpochSent) {
                    learner.phase = LearnerPhase::EpochSent;
                    out.push(Output::Send { to: from, msg: Message::LeaderInfo { conn, epoch } });
                }
            }
            self.leader_progress(out);
            return;
        }
        let Some(epoch) = leader.epoch else { return };
        let Some(learner) = leader.learners.get_mut(&from) else { return };
        if msg.conn() != Some(learner.conn) {
            return;
        }
        learner.last_heard_ms = now;
        match msg {
            Message::AckEpoch { epoch: e, current_epoch, last_zxid, fresh, log_base, log_ends, .. } => {
                if e != epoch || !matches!(learner.phase, LearnerPhase::EpochSent) {
                    return;
                }
                if !observer && !leader.established && (current_epoch, last_zxid) > leader.summary {
                    // A learner has a more recent history than ours: we must not lead. Once
                    // established (as ZooKeeper's waitForEpochAck), a learner rejoining has
                    // at most what we proposed since: it is synced, not a reason to step down.
                    self.become_looking(out);
                    return;
                }
                learner.fresh = fresh;
                learner.phase = LearnerPhase::EpochAcked { log_base, log_ends, last_zxid };
                if leader.established {
                    self.start_sync(from, out);
                }
                self.leader_progress(out);
            }
            Message::AckNewLeader { epoch: e, zxid, .. } | Message::Ack { epoch: e, zxid, .. } => {
                if e != epoch {
                    return;
                }
                match learner.phase {
                    LearnerPhase::Syncing { newleader_zxid } if zxid >= newleader_zxid => {
                        learner.phase = LearnerPhase::Synced { acked: zxid, up_to_date: false };
                    }
                    LearnerPhase::Synced { ref mut acked, .. } => *acked = (*acked).max(zxid),
                    _ => return,
                }
                self.leader_progress(out);
            }
            _ => {}
        }
    }

    pub(super) fn leader_persisted(&mut self, out: &mut Vec<Output>) {
        self.leader_progress(out);
    }

    /// Moves the leader through its phases as far as the gathered acks allow.
    fn leader_progress(&mut self, out: &mut Vec<Output>) {
        self.leader_fix_epoch(out);
        self.leader_establish(out);
        self.leader_self_sync(out);
        self.leader_start_broadcast(out);
        self.leader_commit(out);
    }

    fn leader_fix_epoch(&mut self, out: &mut Vec<Output>) {
        let own_accepted = self.accepted_epoch;
        let quorum = self.quorum;
        let Some(leader) = self.leading_mut() else { return };
        if leader.epoch.is_some() {
            return;
        }
        let connected: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| matches!(l.phase, LearnerPhase::Connected))
            .map(|(sid, _)| *sid)
            .collect();
        let voters =
            connected.iter().filter(|sid| leader.learners.get(sid).is_some_and(|l| !l.observer)).count();
        if voters + 1 < quorum {
            return;
        }
        let max_accepted = leader
            .learners
            .values()
            .filter(|l| !l.observer)
            .map(|l| l.accepted_epoch)
            .fold(own_accepted, Epoch::max);
        let epoch = max_accepted + 1;
        leader.epoch = Some(epoch);
        let mut sends = Vec::new();
        for sid in connected {
            if let Some(learner) = leader.learners.get_mut(&sid) {
                learner.phase = LearnerPhase::EpochSent;
                sends.push(Output::Send { to: sid, msg: Message::LeaderInfo { conn: learner.conn, epoch } });
            }
        }
        self.accepted_epoch = epoch;
        // The accepted epoch is durable before any LEADERINFO leaves.
        self.save_epochs(out);
        out.extend(sends);
    }

    fn leader_establish(&mut self, out: &mut Vec<Output>) {
        let quorum = self.quorum;
        let Some(leader) = self.leading_mut() else { return };
        if leader.epoch.is_none() || leader.established {
            return;
        }
        let fresh = leader
            .learners
            .values()
            .filter(|l| l.fresh && !l.observer && matches!(l.phase, LearnerPhase::EpochAcked { .. }))
            .count();
        if fresh + 1 < quorum {
            return;
        }
        leader.established = true;
        let ready: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| matches!(l.phase, LearnerPhase::EpochAcked { .. }))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in ready {
            self.start_sync(sid, out);
        }
    }

    fn leader_self_sync(&mut self, out: &mut Vec<Output>) {
        let persisted = self.log.persisted;
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        if !leader.established || leader.self_synced || persisted < leader.initial_zxid {
            return;
        }
        leader.self_synced = true;
        self.current_epoch = epoch;
        self.save_epochs(out);
    }

    fn leader_start_broadcast(&mut self, out: &mut Vec<Output>) {
        let quorum = self.quorum;
        let sid = self.config.sid;
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        if leader.broadcast || !leader.self_synced {
            return;
        }
        if leader.synced_learners(false) + 1 < quorum {
            return;
        }
        leader.broadcast = true;
        leader.committed = leader.committed.max(leader.initial_zxid);
        out.push(Output::RoleChanged { role: Role::Leading, leader: Some(sid), epoch });
        let commit = leader.committed;
        for (to, learner) in &mut leader.learners {
            if let LearnerPhase::Synced { ref mut up_to_date, .. } = learner.phase {
                *up_to_date = true;
                out.push(Output::Send {
                    to: *to,
                    msg: Message::UpToDate { conn: learner.conn, epoch, commit },
                });
            } else if let LearnerPhase::Syncing { .. } = learner.phase {
                out.push(Output::Send {
                    to: *to,
                    msg: Message::Commit { conn: learner.conn, epoch, zxid: commit },
                });
            }
        }
        self.apply_upto(commit, out);
    }

    /// Commits the highest zxid a quorum (the leader counting its own durable log) has acked.
    fn leader_commit(&mut self, out: &mut Vec<Output>) {
        let persisted = self.log.persisted;
        let last = self.log.last();
        let quorum = self.quorum;
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        if !leader.broadcast {
            return;
        }
        // Late learners that acked NEWLEADER get UPTODATE at once.
        let commit = leader.committed;
        for (to, learner) in &mut leader.learners {
            if let LearnerPhase::Synced { ref mut up_to_date, .. } = learner.phase
                && !*up_to_date
            {
                *up_to_date = true;
                out.push(Output::Send {
                    to: *to,
                    msg: Message::UpToDate { conn: learner.conn, epoch, commit },
                });
            }
        }
        let mut acks: Vec<Zxid> = leader
            .learners
            .values()
            .filter_map(|l| match l.phase {
                LearnerPhase::Synced { acked, .. } if !l.observer => Some(acked),
                _ => None,
            })
            .collect();
        acks.push(persisted);
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let Some(quorum_point) = acks.get(quorum - 1).copied() else { return };
        let candidate = quorum_point.min(last);
        if candidate > leader.committed {
            leader.committed = candidate;
            self.leader_commit_point_changed(out);
        } else {
            let committed = leader.committed;
            self.apply_upto(committed, out);
        }
    }

    fn leader_commit_point_changed(&mut self, out: &mut Vec<Output>) {
        let log = &self.log;
        let State::Leading(leader) = &mut self.state else { return };
        let Some(epoch) = leader.epoch else { return };
        let zxid = leader.committed;
        let mut lost = Vec::new();
        for (to, learner) in &mut leader.learners {
            if !matches!(learner.phase, LearnerPhase::Syncing { .. } | LearnerPhase::Synced { .. }) {
                continue;
            }
            if learner.observer && learner.informed < zxid {
                if !log.contains(learner.informed) {
                    // Its place fell out of the window: it resyncs (silence, then election).
                    lost.push(*to);
                    continue;
                }
                let mut prev = learner.informed;
                for (informed, payload) in log.entries_after(prev).into_iter().take_while(|e| e.0 <= zxid) {
                    let msg = Message::Inform { conn: learner.conn, epoch, prev, zxid: informed, payload };
                    out.push(Output::Send { to: *to, msg });
                    prev = informed;
                }
                learner.informed = prev;
            }
            out.push(Output::Send { to: *to, msg: Message::Commit { conn: learner.conn, epoch, zxid } });
        }
        for sid in lost {
            leader.learners.remove(&sid);
        }
        self.apply_upto(zxid, out);
    }

    /// Sends NEWLEADER (DIFF or TRUNC+DIFF) to a learner that acked the epoch, or asks the shell
    /// for a snapshot when the windows cannot tell where the logs diverge.
    fn start_sync(&mut self, sid: Sid, out: &mut Vec<Output>) {
        let applied = self.log.applied;
        let leader_base = self.log.base;
        let leader_ends = self.log.epoch_ends();
        let last = self.log.last();
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        let commit = leader.committed;
        let Some(learner) = leader.learners.get_mut(&sid) else { return };
        let LearnerPhase::EpochAcked { log_base, ref log_ends, last_zxid } = learner.phase else { return };
        let point = common_point(leader_base, &leader_ends, log_base, log_ends).filter(|p| *p <= last_zxid);
        let conn = learner.conn;
        match point {
            Some(after) => {
                learner.phase = LearnerPhase::Syncing { newleader_zxid: last };
                learner.informed = last;
                let entries = self.log.entries_after(after);
                let sync = SyncMode::Diff { after };
                out.push(Output::Send {
                    to: sid,
                    msg: Message::NewLeader { conn, epoch, sync, entries, commit },
                });
            }
            None => {
                learner.phase = LearnerPhase::AwaitingSnapshot { asked_at: applied };
                out.push(Output::NeedSnapshot { to: sid });
            }
        }
    }

    pub(super) fn on_snapshot_ready(&mut self, to: Sid, zxid: Zxid, data: Bytes, out: &mut Vec<Output>) {
        let usable = zxid >= self.log.base && zxid <= self.log.applied && self.log.contains(zxid);
        let last = self.log.last();
        let entries = if usable { self.log.entries_after(zxid) } else { Vec::new() };
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        let commit = leader.committed;
        let Some(learner) = leader.learners.get_mut(&to) else { return };
        if !matches!(learner.phase, LearnerPhase::AwaitingSnapshot { .. }) {
            return;
        }
        if !usable {
            // Older than the pinned window (a snapshot begun before it was asked): ask again.
            out.push(Output::NeedSnapshot { to });
            return;
        }
        learner.phase = LearnerPhase::Syncing { newleader_zxid: last };
        learner.informed = last;
        let sync = SyncMode::Snap { zxid, data };
        let msg = Message::NewLeader { conn: learner.conn, epoch, sync, entries, commit };
        out.push(Output::Send { to, msg });
    }

    pub(super) fn leader_propose(&mut self, zxid: Zxid, payload: Bytes, out: &mut Vec<Output>) {
        let prev = self.log.last();
        self.log.append(zxid, payload.clone());
        let Some(leader) = self.leading_mut() else { return };
        let Some(epoch) = leader.epoch else { return };
        leader.counter = zxid_counter(zxid);
        out.push(Output::Persist { entries: vec![(zxid, payload.clone())] });
        for (to, learner) in &leader.learners {
            if !learner.observer
                && matches!(learner.phase, LearnerPhase::Syncing { .. } | LearnerPhase::Synced { .. })
            {
                let msg =
                    Message::Proposal { conn: learner.conn, epoch, prev, zxid, payload: payload.clone() };
                out.push(Output::Send { to: *to, msg });
            }
        }
    }
}
