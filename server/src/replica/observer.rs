//! What an observer changes in the shell: almost nothing. Its `zab::Peer` reports it as
//! `Role::Following` once synced (it forwards writes, answers syncs and serves reads as a
//! follower does); only what it shows differs: `Mode: observer`, `zk_peer_state observing -
//! broadcast`, the `observer` role in `/metrics`, and the leader's `zk_synced_observers`.

use super::core::Core;

impl Core {
    /// Whether this server is an ensemble observer (`server.N=...:observer`).
    pub fn is_observer(&self) -> bool {
        self.replica.peer.is_observer()
    }

    /// mntr `zk_synced_observers` (leader only).
    pub fn synced_observers(&self) -> Option<usize> {
        let r = &self.replica;
        (!r.standalone && r.role == crate::zab::Role::Leading).then(|| r.peer.synced_observers())
    }

    /// mntr `zk_observer_master_id`: the leader an observer serves under.
    pub fn observer_master_id(&self) -> Option<u64> {
        let r = &self.replica;
        if r.peer.is_observer() { r.leader } else { None }
    }
}
