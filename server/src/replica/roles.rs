//! The server's role as zab decides it: what the four-letter words and metrics say, whether
//! clients are served and writes proposed, and what changes when the role does.

use super::core::Core;
use crate::tree::SessionId;
use crate::zab::{Role, Sid};

impl Core {
    pub(crate) fn role(&self) -> Role {
        self.replica.role
    }

    /// What 4lw `Mode:` and `zk_server_state` print.
    pub fn mode(&self) -> &'static str {
        match self.role() {
            _ if self.replica.standalone => "standalone",
            Role::Leading => "leader",
            Role::Following if self.is_observer() => "observer",
            Role::Following => "follower",
            Role::Looking if self.read_only_active() => "read-only",
            Role::Looking => "looking",
        }
    }

    /// mntr `zk_peer_state`, in an ensemble.
    pub fn peer_state(&self) -> Option<&'static str> {
        (!self.replica.standalone).then(|| match self.role() {
            Role::Leading => "leading - broadcast",
            Role::Following if self.is_observer() => "observing - broadcast",
            Role::Following => "following - broadcast",
            Role::Looking => "looking",
        })
    }

    /// mntr `zk_synced_followers` (an ensemble's leader only).
    pub fn synced_followers(&self) -> Option<usize> {
        let r = &self.replica;
        (!r.standalone && r.role == Role::Leading).then(|| r.peer.synced_followers())
    }

    /// Whether clients are served: when following or leading.
    pub(crate) fn serving(&self) -> bool {
        self.role() != Role::Looking
    }

    /// Whether this server may stamp txns (the established leader; standalone, always).
    pub(crate) fn may_propose(&self) -> bool {
        self.role() == Role::Leading
    }

    /// The zxid the next prepped txn gets, if this server may propose one now.
    pub(crate) fn prep_zxid(&self) -> Option<i64> {
        self.replica.peer.next_zxid()
    }

    /// Entering LOOKING: counts the election and opens its span.
    pub(crate) fn start_election(&mut self) {
        let now = self.io.now();
        let replica = &mut self.replica;
        if replica.election.is_none() {
            // A standalone server's election of itself is not one (ZooKeeper has none).
            let span = if replica.standalone {
                tracing::Span::none()
            } else {
                tracing::info_span!(
                    "election",
                    role = tracing::field::Empty,
                    leader = tracing::field::Empty,
                    epoch = tracing::field::Empty
                )
            };
            replica.election = Some((span, now));
            if !replica.standalone {
                self.metrics.elections.inc();
            }
        }
    }

    pub(crate) fn on_role_changed(&mut self, role: Role, leader: Option<Sid>, epoch: i64) {
        if role == Role::Looking {
            self.start_election();
        }
        let replica = &mut self.replica;
        let was = replica.role;
        replica.role = role;
        replica.leader = leader;
        if role != Role::Looking
            && let Some((span, started)) = replica.election.take()
        {
            span.record("role", tracing::field::debug(role));
            span.record("leader", leader);
            span.record("epoch", epoch);
            let seconds = self.io.now().saturating_duration_since(started).as_secs_f64();
            span.in_scope(|| tracing::info!(?role, ?leader, epoch, seconds, "election finished"));
            if !replica.standalone {
                self.metrics.observe_election(seconds);
            }
        }
        tracing::info!(?role, ?leader, epoch, "role changed");
        self.metrics.set_role(self.mode());
        if was == Role::Leading {
            // The leader's pipeline goes: clients reconnect elsewhere; the outcome of their
            // outstanding writes is unknown (forwarded ones: the followers close theirs).
            {
                let r = &mut self.replica;
                r.waiting_zxid.clear();
            }
            self.close_all_connections();
        } else if role == Role::Looking && was == Role::Following {
            // Writes in flight stay: the next leader's sync tells which were committed; the
            // others are forwarded again (`resume_after_election`).
            {
                let r = &mut self.replica;
                r.sync_waiters.clear();
            }
        }
        if was == Role::Leading && role != Role::Leading {
            // Proposals that may never commit: forget prep's overlay (its size, not the
            // tree's: no pause that grows with the tree).
            self.tree.discard_prepped();
        }
        if role != Role::Looking && was == Role::Looking {
            self.resume_after_election();
        }
        if role == Role::Leading {
            // The leader tracks every session afresh with its full timeout, as ZooKeeper does.
            let now = self.mono_ms();
            let sessions: Vec<(SessionId, i32)> =
                self.tree.sessions().iter().map(|(s, t)| (*s, *t)).collect();
            for (session, timeout) in sessions {
                self.tracker.add(session, timeout, now);
            }
        }
    }
}
