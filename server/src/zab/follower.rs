//! The follower (learner): connect, accept the epoch, sync, then log proposals and ACK them
//! **only in response to `Persisted`**, and apply what the leader commits. An observer runs
//! the same code without acking: it logs the committed txns the leader informs it of.

use super::peer::{Peer, State};
use super::{Epoch, Message, Output, Role, Sid, SyncMode, Zxid};

/// FOLLOWERINFO is resent this often (at most every tick) until LEADERINFO arrives: the chosen
/// leader may still be finishing its own election (its finalize wait) and ignore the first
/// one. ZooKeeper's learner likewise retries its connection every 100 ms
/// (`leaderConnectDelayDuringRetryMs`).
const FOLLOWER_INFO_RESEND_MS: u64 = 100;

#[derive(Debug, Clone)]
pub(super) struct Follower {
    pub(super) leader: Sid,
    /// This peer observes: no acks, txns arrive as `Inform`.
    observer: bool,
    conn: u64,
    phase: Phase,
    last_heard_ms: u64,
    /// When this connection attempt began: connect + sync must finish within initLimit.
    started_ms: u64,
    /// When to resend FOLLOWERINFO while connecting.
    resend_at_ms: u64,
    /// The leader's epoch once LEADERINFO arrived.
    epoch: Epoch,
    /// The leader's commit point as last heard.
    leader_commit: Zxid,
    /// The last zxid of the synced log, until it is durable and acked.
    pending_newleader: Option<Zxid>,
    /// The highest zxid acked to the leader.
    acked: Zxid,
    /// Consecutive pings whose commit point lies beyond our log: proposals were lost.
    behind_pings: u32,
}

#[derive(Debug, Clone)]
enum Phase {
    Connecting,
    /// ACKEPOCH sent (kept for resending on a duplicate LEADERINFO).
    EpochAcked(Message),
    /// NEWLEADER processed; waiting for UPTODATE.
    Synced,
    /// Serving.
    Broadcast,
}

impl Follower {
    pub(super) fn is_up_to_date(&self) -> bool {
        matches!(self.phase, Phase::Broadcast)
    }

    fn is_synced(&self) -> bool {
        matches!(self.phase, Phase::Synced | Phase::Broadcast)
    }

    pub(super) fn validate(&self, peer: &Peer) {
        if self.is_synced() && self.observer {
            assert!(
                peer.accepted_epoch >= self.epoch,
                "an observer's accepted epoch is at least the leader's"
            );
        } else if self.is_synced() {
            assert_eq!(self.epoch, peer.accepted_epoch, "a synced follower's accepted epoch is the leader's");
        }
        if self.is_synced() {
            if self.pending_newleader.is_none() {
                assert_eq!(self.epoch, peer.current_epoch, "currentEpoch saved before NEWLEADER ack");
            }
            assert!(self.acked <= peer.log.persisted, "acked beyond durable");
        }
        if matches!(self.phase, Phase::Broadcast) {
            assert!(self.pending_newleader.is_none(), "up to date before acking NEWLEADER");
        }
    }
}

impl Peer {
    pub(super) fn become_following(&mut self, leader: Sid, out: &mut Vec<Output>) {
        let conn = self.next_nonce();
        self.state = State::Following(Follower {
            leader,
            observer: self.is_observer(),
            conn,
            phase: Phase::Connecting,
            last_heard_ms: self.now_ms,
            started_ms: self.now_ms,
            resend_at_ms: self.now_ms + self.config.tick_ms.min(FOLLOWER_INFO_RESEND_MS),
            epoch: 0,
            leader_commit: 0,
            pending_newleader: None,
            acked: 0,
            behind_pings: 0,
        });
        let msg = Message::FollowerInfo { conn, accepted_epoch: self.accepted_epoch };
        out.push(Output::Send { to: leader, msg });
    }

    fn follower(&mut self) -> Option<&mut Follower> {
        match &mut self.state {
            State::Following(follower) => Some(follower),
            _ => None,
        }
    }

    pub(super) fn follower_tick(&mut self, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let tick = self.config.tick_ms;
        let accepted_epoch = self.accepted_epoch;
        let (init_ms, sync_ms) = (self.config.init_limit * tick, self.config.sync_limit * tick);
        let leader_down = matches!(&self.state, State::Following(f) if self.links_down.contains(&f.leader));
        let Some(follower) = self.follower() else { return };
        let silent = now.saturating_sub(follower.last_heard_ms) > sync_ms;
        let slow_sync = !follower.is_up_to_date() && now.saturating_sub(follower.started_ms) > init_ms;
        // Chose a leader whose connection is down (its last votes were still in flight).
        if silent || slow_sync || leader_down {
            self.become_looking(out);
            return;
        }
        if matches!(follower.phase, Phase::Connecting) && now >= follower.resend_at_ms {
            follower.resend_at_ms = now + tick.min(FOLLOWER_INFO_RESEND_MS);
            let msg = Message::FollowerInfo { conn: follower.conn, accepted_epoch };
            out.push(Output::Send { to: follower.leader, msg });
        }
    }

    pub(super) fn follower_message(&mut self, from: Sid, msg: Message, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let last = self.log.last();
        let Some(follower) = self.follower() else { return };
        if from != follower.leader || msg.conn() != Some(follower.conn) {
            return;
        }
        follower.last_heard_ms = now;
        match msg {
            Message::LeaderInfo { epoch, .. } => self.on_leader_info(epoch, out),
            Message::NewLeader { epoch, sync, entries, commit, .. } => {
                self.on_new_leader(epoch, sync, entries, commit, out)
            }
            Message::Proposal { epoch, prev, zxid, payload, .. } => {
                if epoch != follower.epoch || !follower.is_synced() || zxid <= self.log.last() {
                    return;
                }
                if prev != self.log.last() {
                    // A gap: proposals were lost. Reconnect through election.
                    self.become_looking(out);
                    return;
                }
                self.log.append(zxid, payload.clone());
                out.push(Output::Persist { entries: vec![(zxid, payload)] });
            }
            Message::Inform { epoch, prev, zxid, payload, .. } => {
                if epoch != follower.epoch || !follower.is_synced() || !follower.observer {
                    return;
                }
                if zxid > self.log.last() {
                    if prev != self.log.last() {
                        // A gap: informs were lost. Reconnect through election.
                        self.become_looking(out);
                        return;
                    }
                    self.log.append(zxid, payload.clone());
                    out.push(Output::Persist { entries: vec![(zxid, payload)] });
                }
                // Informed means committed.
                if let Some(follower) = self.follower() {
                    follower.leader_commit = follower.leader_commit.max(zxid);
                }
                self.follower_apply(out);
            }
            Message::Commit { epoch, zxid, .. } if epoch == follower.epoch && follower.is_synced() => {
                follower.leader_commit = follower.leader_commit.max(zxid);
                self.follower_apply(out);
            }
            Message::UpToDate { epoch, commit, .. } if epoch == follower.epoch && follower.is_synced() => {
                follower.leader_commit = follower.leader_commit.max(commit);
                self.follower_up_to_date(out);
                self.follower_apply(out);
            }
            Message::Ping { epoch, commit, up_to_date, conn } => {
                if epoch != follower.epoch {
                    return;
                }
                let leader = follower.leader;
                if follower.is_synced() {
                    // The tail of the proposals was lost (no later proposal exposes the gap).
                    if commit > last {
                        follower.behind_pings += 1;
                        if follower.behind_pings >= 3 {
                            self.become_looking(out);
                            return;
                        }
                    } else {
                        follower.behind_pings = 0;
                    }
                    follower.leader_commit = follower.leader_commit.max(commit);
                    if follower.pending_newleader.is_none() && !follower.observer {
                        let msg = Message::Ack { conn, epoch, zxid: follower.acked };
                        out.push(Output::Send { to: leader, msg });
                    } else {
                        out.push(Output::Send { to: leader, msg: Message::PingReply { conn, epoch } });
                    }
                    if up_to_date {
                        self.follower_up_to_date(out);
                    }
                    self.follower_apply(out);
                } else {
                    out.push(Output::Send { to: leader, msg: Message::PingReply { conn, epoch } });
                }
            }
            _ => {}
        }
    }

    fn on_leader_info(&mut self, epoch: Epoch, out: &mut Vec<Output>) {
        let current_epoch = self.current_epoch;
        let last_zxid = self.log.last();
        let log_base = self.log.base;
        let log_ends = self.log.epoch_ends();
        let accepted = self.accepted_epoch;
        let Some(follower) = self.follower() else { return };
        let leader = follower.leader;
        match &follower.phase {
            Phase::Connecting => {}
            Phase::EpochAcked(reply) => {
                if follower.epoch == epoch {
                    out.push(Output::Send { to: leader, msg: reply.clone() });
                }
                return;
            }
            Phase::Synced | Phase::Broadcast => return,
        }
        let observer = follower.observer;
        // A voter promised a newer leader; this one cannot lead it. An observer promises
        // nothing (it has no vote) but refuses a leader older than one it synced with.
        if (!observer && epoch < accepted) || (observer && epoch < current_epoch) {
            self.become_looking(out);
            return;
        }
        let fresh = epoch > accepted;
        let conn = follower.conn;
        let reply = Message::AckEpoch { conn, epoch, current_epoch, last_zxid, fresh, log_base, log_ends };
        follower.epoch = epoch;
        follower.phase = Phase::EpochAcked(reply.clone());
        if fresh {
            self.accepted_epoch = epoch;
            // The accepted epoch is durable before ACKEPOCH leaves.
            self.save_epochs(out);
        }
        out.push(Output::Send { to: leader, msg: reply });
    }

    fn on_new_leader(
        &mut self,
        epoch: Epoch,
        sync: SyncMode,
        entries: Vec<(Zxid, bytes::Bytes)>,
        commit: Zxid,
        out: &mut Vec<Output>,
    ) {
        let Some(follower) = self.follower() else { return };
        if epoch != follower.epoch || !matches!(follower.phase, Phase::EpochAcked(_)) {
            return;
        }
        match sync {
            SyncMode::Diff { after } => {
                if after > self.log.last() || after < self.log.applied || after < self.log.base {
                    // The leader misread our log; start over.
                    self.become_looking(out);
                    return;
                }
                if after < self.log.last() {
                    self.log.truncate(after);
                    out.push(Output::Truncate { after });
                }
            }
            SyncMode::Snap { zxid, data } => {
                self.log.install_snapshot(zxid);
                out.push(Output::InstallSnapshot { zxid, data });
            }
        }
        let mut appended = Vec::with_capacity(entries.len());
        for (zxid, payload) in entries {
            if zxid > self.log.last() {
                self.log.append(zxid, payload.clone());
                appended.push((zxid, payload));
            }
        }
        if !appended.is_empty() {
            out.push(Output::Persist { entries: appended });
        }
        let last = self.log.last();
        let Some(follower) = self.follower() else { return };
        follower.pending_newleader = Some(last);
        follower.leader_commit = commit;
        follower.phase = Phase::Synced;
        self.follower_persisted(out);
    }

    /// The only place a follower acknowledges anything: after its log became durable.
    pub(super) fn follower_persisted(&mut self, out: &mut Vec<Output>) {
        let persisted = self.log.persisted;
        let Some(follower) = self.follower() else { return };
        if !follower.is_synced() {
            return;
        }
        let (leader, conn, epoch, observer) =
            (follower.leader, follower.conn, follower.epoch, follower.observer);
        if let Some(newleader_zxid) = follower.pending_newleader {
            if persisted < newleader_zxid {
                self.follower_apply(out);
                return;
            }
            follower.pending_newleader = None;
            follower.acked = persisted;
            self.current_epoch = epoch;
            // currentEpoch only after the synced log is durable; both before the ack.
            self.save_epochs(out);
            let msg = Message::AckNewLeader { conn, epoch, zxid: newleader_zxid };
            out.push(Output::Send { to: leader, msg });
            if persisted > newleader_zxid && !observer {
                out.push(Output::Send { to: leader, msg: Message::Ack { conn, epoch, zxid: persisted } });
            }
        } else if persisted > follower.acked {
            follower.acked = persisted;
            if !follower.observer {
                out.push(Output::Send { to: leader, msg: Message::Ack { conn, epoch, zxid: persisted } });
            }
        }
        self.follower_apply(out);
    }

    fn follower_up_to_date(&mut self, out: &mut Vec<Output>) {
        let Some(follower) = self.follower() else { return };
        if matches!(follower.phase, Phase::Synced) && follower.pending_newleader.is_none() {
            follower.phase = Phase::Broadcast;
            let (leader, epoch) = (follower.leader, follower.epoch);
            out.push(Output::RoleChanged { role: Role::Following, leader: Some(leader), epoch });
        }
    }

    fn follower_apply(&mut self, out: &mut Vec<Output>) {
        let Some(follower) = self.follower() else { return };
        if follower.is_synced() {
            let commit = follower.leader_commit;
            self.apply_upto(commit, out);
        }
    }
}
