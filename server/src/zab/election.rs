//! Fast leader election: notifications carry a vote (epoch, zxid, sid) and the logical clock;
//! the best vote wins once a quorum agrees on it and no better vote arrives within the
//! finalize wait. A peer joining a running ensemble follows the leader that a quorum of
//! non-looking peers reports, provided that leader itself says it leads.

use std::collections::BTreeMap;

use super::peer::{Peer, State};
use super::{Message, Output, PeerState, Role, Sid, Vote};

#[derive(Debug, Clone)]
pub(super) struct Election {
    /// The vote this peer currently proposes.
    vote: Vote,
    /// Votes of looking peers in this round (including our own).
    received: BTreeMap<Sid, Vote>,
    /// Leaders reported by peers that are not looking, with whether the sender leads.
    out_of_election: BTreeMap<Sid, (Sid, bool)>,
    /// Current notification timeout (doubles on every resend).
    timeout_ms: u64,
    /// When to resend our vote.
    resend_at_ms: u64,
    /// When a quorum agreement becomes a decision, unless a better vote arrives first.
    decide_at_ms: Option<u64>,
}

impl Election {
    pub(super) fn placeholder() -> Election {
        Election {
            vote: Vote { epoch: 0, zxid: 0, leader: 0 },
            received: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            timeout_ms: 0,
            resend_at_ms: 0,
            decide_at_ms: None,
        }
    }

    pub(super) fn validate(&self, self_vote: Vote) {
        assert!(self.vote >= self_vote, "a looking peer never votes below itself");
    }
}

impl Peer {
    pub(super) fn become_looking(&mut self, out: &mut Vec<Output>) {
        self.election_clock += 1;
        let vote = self.self_vote();
        let mut received = BTreeMap::new();
        received.insert(self.config.sid, vote);
        self.state = State::Looking(Election {
            vote,
            received,
            out_of_election: BTreeMap::new(),
            timeout_ms: self.config.election_timeout_ms,
            resend_at_ms: self.now_ms,
            decide_at_ms: None,
        });
        out.push(Output::RoleChanged { role: Role::Looking, leader: None, epoch: self.current_epoch });
        // Notifications go out on the next tick (resend_at_ms = now).
    }

    fn notification(&self) -> Message {
        let (state, vote) = match &self.state {
            State::Looking(election) => (PeerState::Looking, election.vote),
            State::Following(follower) => (
                PeerState::Following,
                Vote { epoch: self.accepted_epoch, zxid: self.log.last(), leader: follower.leader },
            ),
            State::Leading(_) => (PeerState::Leading, self.self_vote()),
        };
        Message::Notification { state, vote, election_epoch: self.election_clock }
    }

    fn broadcast_notification(&self, out: &mut Vec<Output>) {
        let msg = self.notification();
        for to in &self.config.voters {
            if *to != self.config.sid {
                out.push(Output::Send { to: *to, msg: msg.clone() });
            }
        }
    }

    pub(super) fn election_tick(&mut self, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let max = self.config.election_timeout_max_ms;
        let observer = self.is_observer();
        let State::Looking(election) = &mut self.state else { return };
        if now >= election.resend_at_ms {
            election.resend_at_ms = now + election.timeout_ms;
            // An observer only asks who leads; the voters answer once they know, so it
            // keeps asking at the first timeout rather than backing off.
            if !observer {
                election.timeout_ms = (election.timeout_ms * 2).min(max);
            }
            self.broadcast_notification(out);
        }
        self.check_decision(out);
    }

    pub(super) fn on_notification(
        &mut self,
        from: Sid,
        state: PeerState,
        vote: Vote,
        election_epoch: u64,
        out: &mut Vec<Output>,
    ) {
        let sid = self.config.sid;
        if !matches!(self.state, State::Looking(_)) {
            // Tell a looking peer who leads (an observer asks only to learn that).
            if state == PeerState::Looking && !self.is_observer() {
                out.push(Output::Send { to: from, msg: self.notification() });
            }
            return;
        }
        // Observers have no vote: a looking peer ignores what they say, and an observer
        // itself only listens for the leader the voters report.
        if !self.is_voter(from) || (self.is_observer() && state == PeerState::Looking) {
            return;
        }
        if self.links_down.contains(&vote.leader) {
            // A vote for a peer whose connection to us ended: it cannot lead us until it
            // reconnects (the sender has not noticed yet).
            return;
        }
        let self_vote = self.self_vote();
        let now = self.now_ms;
        let clock = self.election_clock;
        let State::Looking(election) = &mut self.state else { return };
        match state {
            PeerState::Looking => {
                let mut changed = false;
                if election_epoch > clock {
                    self.election_clock = election_epoch;
                    election.received.clear();
                    election.vote = self_vote.max(vote);
                    changed = true;
                } else if election_epoch < clock {
                    let msg = self.notification();
                    out.push(Output::Send { to: from, msg });
                    return;
                } else if vote > election.vote {
                    election.vote = vote;
                    changed = true;
                }
                election.received.insert(from, vote);
                let own = election.vote;
                election.received.insert(sid, own);
                if changed {
                    election.decide_at_ms = None;
                    self.broadcast_notification(out);
                }
                self.check_decision(out);
            }
            PeerState::Following | PeerState::Leading => {
                election.out_of_election.insert(from, (vote.leader, state == PeerState::Leading));
                let leader = vote.leader;
                let supporters = election.out_of_election.values().filter(|(l, _)| *l == leader).count();
                let leader_says_leading = election
                    .out_of_election
                    .get(&leader)
                    .is_some_and(|(l, leading)| *l == leader && *leading);
                if leader != sid && leader_says_leading && self.is_quorum(supporters) {
                    let _ = now;
                    self.become_following(leader, out);
                }
            }
        }
    }

    /// The connection to `peer` ended while looking: its vote and its report of a leader no
    /// longer count (it may be dead). If our vote names it, start a new round with our own.
    pub(super) fn election_link_down(&mut self, peer: Sid, out: &mut Vec<Output>) {
        let State::Looking(election) = &mut self.state else { return };
        election.received.remove(&peer);
        election.out_of_election.remove(&peer);
        if election.vote.leader == peer {
            self.become_looking(out);
            return;
        }
        self.check_decision(out);
    }

    fn check_decision(&mut self, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let finalize = self.config.finalize_wait_ms;
        let voters = self.config.voters.len();
        let voters_down = self.links_down.iter().filter(|sid| self.is_voter(**sid)).count();
        let quorum = self.quorum;
        if self.is_observer() {
            return;
        }
        let State::Looking(election) = &mut self.state else { return };
        let vote = election.vote;
        let agreeing = election.received.values().filter(|v| **v == vote).count();
        if agreeing < quorum {
            election.decide_at_ms = None;
            return;
        }
        // The finalize wait gives a better vote time to arrive; a peer whose connection ended
        // cannot send one, so when every voter still connected agrees, decide now.
        let reachable = voters - voters_down;
        let decide_at = *election.decide_at_ms.get_or_insert(now + finalize);
        if agreeing >= reachable || now >= decide_at {
            if vote.leader == self.config.sid {
                self.become_leading(out);
            } else {
                self.become_following(vote.leader, out);
            }
        }
    }
}
