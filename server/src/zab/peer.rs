//! [`Peer`]: the state shared by every role, input dispatch and invariants.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::election::Election;
use super::follower::Follower;
use super::leader::Leader;
use super::log::Log;
use super::{Config, DurableState, Epoch, Input, Message, Output, Role, Sid, Vote, Zxid};

/// One Zab participant. See the module docs for how the shell drives it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub(super) config: Config,
    /// Smallest number of voters that forms a quorum.
    pub(super) quorum: usize,
    pub(super) now_ms: u64,
    rng_state: u64,
    pub(super) current_epoch: Epoch,
    pub(super) accepted_epoch: Epoch,
    /// FastLeaderElection's logical clock (not persisted, as in ZooKeeper).
    pub(super) election_clock: u64,
    pub(super) log: Log,
    pub(super) state: State,
    /// Peers whose connection ended ([`Input::LinkDown`]) and that sent nothing since.
    pub(super) links_down: BTreeSet<Sid>,
}

#[derive(Debug, Clone)]
pub(super) enum State {
    Looking(Election),
    Following(Follower),
    Leading(Leader),
}

impl Peer {
    /// A peer starting (or restarting) from its durable state, in election. `seed` feeds the
    /// connection nonces; give a different one on each boot. Sends start at the first tick.
    pub fn new(config: Config, durable: DurableState, seed: u64, now_ms: u64) -> Peer {
        let mut config = config;
        config.voters.sort_unstable();
        config.voters.dedup();
        config.observers.sort_unstable();
        config.observers.dedup();
        assert!(
            config.voters.contains(&config.sid) != config.observers.contains(&config.sid),
            "a peer is a voter or an observer"
        );
        assert!(config.observers.iter().all(|o| !config.voters.contains(o)), "an observer cannot vote");
        assert!(config.tick_ms > 0, "tick_ms must be positive");
        assert!(durable.accepted_epoch >= durable.current_epoch, "accepted epoch behind current");
        let quorum = config.voters.len() / 2 + 1;
        let log = Log::restore(durable.log_base, durable.log_tail, durable.applied_zxid);
        let mut peer = Peer {
            config,
            quorum,
            now_ms,
            rng_state: seed ^ 0x9e37_79b9_7f4a_7c15,
            current_epoch: durable.current_epoch,
            accepted_epoch: durable.accepted_epoch,
            election_clock: 0,
            log,
            state: State::Looking(Election::placeholder()),
            links_down: BTreeSet::new(),
        };
        let mut ignored = Vec::new();
        peer.become_looking(&mut ignored);
        peer.validate();
        peer
    }

    /// Feeds one input; appends the resulting commands to `out`.
    pub fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.on_tick(out);
            }
            Input::Recv { from, msg } => {
                if from != self.config.sid && self.is_member(from) {
                    self.links_down.remove(&from);
                    self.on_message(from, msg, out);
                }
            }
            Input::Persisted { upto } => self.on_persisted(upto, out),
            Input::Propose { zxid, payload } => self.on_propose(zxid, payload, out),
            Input::SnapshotReady { to, zxid, data } => self.on_snapshot_ready(to, zxid, data, out),
            Input::LinkDown { peer } => {
                if peer != self.config.sid && self.is_member(peer) {
                    self.links_down.insert(peer);
                    self.on_link_down(peer, out);
                }
            }
        }
        let pin = match &self.state {
            State::Leading(leader) => leader.snapshot_pin(),
            _ => None,
        };
        self.log.trim(self.config.commit_log_count, pin);
    }

    /// This peer's id.
    pub fn sid(&self) -> Sid {
        self.config.sid
    }

    /// Whether this peer only observes (no vote, no ack, never leads).
    pub fn is_observer(&self) -> bool {
        self.config.observers.contains(&self.config.sid)
    }

    pub(super) fn is_voter(&self, sid: Sid) -> bool {
        self.config.voters.contains(&sid)
    }

    fn is_member(&self, sid: Sid) -> bool {
        self.is_voter(sid) || self.config.observers.contains(&sid)
    }

    /// The serving role: `Leading` only once established, `Following` only once up to date.
    pub fn role(&self) -> Role {
        match &self.state {
            State::Leading(leader) if leader.broadcast => Role::Leading,
            State::Following(follower) if follower.is_up_to_date() => Role::Following,
            _ => Role::Looking,
        }
    }

    /// The leader this peer follows or tries to follow (any phase of following).
    pub fn following(&self) -> Option<Sid> {
        match &self.state {
            State::Following(follower) => Some(follower.leader),
            _ => None,
        }
    }

    /// The leader this peer serves under (itself when leading), once serving.
    pub fn leader(&self) -> Option<Sid> {
        match &self.state {
            State::Leading(leader) if leader.broadcast => Some(self.config.sid),
            State::Following(follower) if follower.is_up_to_date() => Some(follower.leader),
            _ => None,
        }
    }

    /// Followers (voters) synced with this leader (0 unless leading).
    pub fn synced_followers(&self) -> usize {
        match &self.state {
            State::Leading(leader) => leader.synced_learners(false),
            _ => 0,
        }
    }

    /// Leader: whether `sid` is synced with this leader on its current connection. What a
    /// learner sent before its link ended and that arrives on its next connection (a message
    /// queued just before the end) comes before it has synced again, and is to be ignored: the
    /// learner sends it again, in order, once it follows again.
    pub fn is_synced_learner(&self, sid: Sid) -> bool {
        match &self.state {
            State::Leading(leader) => leader.is_synced(sid),
            _ => false,
        }
    }

    /// Observers synced with this leader (0 unless leading).
    pub fn synced_observers(&self) -> usize {
        match &self.state {
            State::Leading(leader) => leader.synced_learners(true),
            _ => 0,
        }
    }

    /// `currentEpoch`.
    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    /// `acceptedEpoch`.
    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    /// The last zxid handed to `Persist` (durable or not).
    pub fn last_zxid(&self) -> Zxid {
        self.log.last()
    }

    /// The last zxid handed to the shell as `Commit`.
    pub fn applied_zxid(&self) -> Zxid {
        self.log.applied
    }

    /// The zxid the next [`Input::Propose`] must carry; `None` unless this peer is an
    /// established leader with room for another outstanding proposal.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.state {
            State::Leading(leader) => leader.next_zxid(&self.log, self.config.proposals_outstanding_max),
            _ => None,
        }
    }

    fn on_tick(&mut self, out: &mut Vec<Output>) {
        match &self.state {
            State::Looking(_) => self.election_tick(out),
            State::Following(_) => self.follower_tick(out),
            State::Leading(_) => self.leader_tick(out),
        }
    }

    fn on_message(&mut self, from: Sid, msg: Message, out: &mut Vec<Output>) {
        if let Message::Notification { state, vote, election_epoch } = msg {
            self.on_notification(from, state, vote, election_epoch, out);
            return;
        }
        match &self.state {
            State::Looking(_) => {}
            State::Following(_) => self.follower_message(from, msg, out),
            State::Leading(_) => self.leader_message(from, msg, out),
        }
    }

    fn on_link_down(&mut self, peer: Sid, out: &mut Vec<Output>) {
        match &self.state {
            State::Looking(_) => self.election_link_down(peer, out),
            State::Following(follower) => {
                if follower.leader == peer {
                    self.become_looking(out);
                }
            }
            State::Leading(_) => self.leader_link_down(peer, out),
        }
    }

    fn on_persisted(&mut self, upto: Zxid, out: &mut Vec<Output>) {
        let durable = upto.min(self.log.last());
        if durable <= self.log.persisted {
            return;
        }
        self.log.persisted = durable;
        match &self.state {
            State::Looking(_) => {}
            State::Following(_) => self.follower_persisted(out),
            State::Leading(_) => self.leader_persisted(out),
        }
    }

    fn on_propose(&mut self, zxid: Zxid, payload: Bytes, out: &mut Vec<Output>) {
        if self.next_zxid() != Some(zxid) {
            out.push(Output::ProposalDropped { zxid });
            return;
        }
        self.leader_propose(zxid, payload, out);
    }

    /// A fresh connection nonce (splitmix64).
    pub(super) fn next_nonce(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn self_vote(&self) -> Vote {
        Vote { epoch: self.current_epoch, zxid: self.log.last(), leader: self.config.sid }
    }

    pub(super) fn save_epochs(&self, out: &mut Vec<Output>) {
        out.push(Output::SaveEpochs { current: self.current_epoch, accepted: self.accepted_epoch });
    }

    /// Hands the shell every entry ≤ `commit` that is durable locally and not yet applied.
    pub(super) fn apply_upto(&mut self, commit: Zxid, out: &mut Vec<Output>) {
        let upto = commit.min(self.log.persisted);
        if upto > self.log.applied {
            self.log.applied = upto;
            out.push(Output::Commit { upto });
        }
    }

    pub(super) fn is_quorum(&self, count: usize) -> bool {
        count >= self.quorum
    }

    /// Asserts the internal invariants; called after every step by the tests.
    pub fn validate(&self) {
        self.log.validate();
        assert!(self.accepted_epoch >= self.current_epoch, "accepted epoch behind current");
        match &self.state {
            State::Looking(election) => election.validate(self.self_vote()),
            State::Following(follower) => follower.validate(self),
            State::Leading(leader) => leader.validate(self),
        }
    }
}
