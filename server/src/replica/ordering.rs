//! Per connection, requests complete in order: every request that must wait (behind the
//! connection's writes, or a `sync`) sits in the connection's `held` queue.

use std::time::Instant;

use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response as R;
use ferrokeeper_proto::{SyncResponse, op};

use super::core::Core;
use crate::tree::ConnId;
use crate::zab::Zxid;

/// A request waiting, in its connection's order.
pub enum Held {
    /// A write (or session creation) in flight; `done` once applied.
    Write { done: bool },
    /// A read to run once everything before it completed.
    Read { xid: i32, op: i32, request: Request, received: Instant },
    /// A sync: answered once the local tree has applied `target` (known once the leader told).
    Sync { xid: i32, path: String, received: Instant, target: Option<Zxid> },
}

impl Core {
    pub(crate) fn hold_write(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn) {
            state.queued += 1;
            state.held.push_back(Held::Write { done: false });
        }
    }

    /// A txn of this connection was applied (its reply is queued): run what waited behind it.
    pub(crate) fn write_applied(&mut self, conn: ConnId) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        for held in state.held.iter_mut() {
            if let Held::Write { done } = held
                && !*done
            {
                *done = true;
                break;
            }
        }
        self.drain_held(conn);
    }

    /// Completes the connection's held requests from the front while they can complete.
    pub(crate) fn drain_held(&mut self, conn: ConnId) {
        self.complete_held(conn, false);
    }

    /// A write of `conn` is about to be applied: everything the connection asked before it
    /// completes now, against the tree without it, so that replies keep request order and a
    /// read does not see a later write. A sync still waiting for its point (its answer from
    /// the leader was lost in an election, or comes later) is answered at the current zxid:
    /// every write committed before the sync was sent precedes this later write of the same
    /// client in the history, so it is applied already.
    pub(crate) fn complete_before_write(&mut self, conn: ConnId) {
        self.complete_held(conn, true);
    }

    fn complete_held(&mut self, conn: ConnId, before_write: bool) {
        loop {
            let applied = self.tree.last_processed_zxid();
            let Some(state) = self.connections.get_mut(&conn) else { return };
            match state.held.front() {
                None | Some(Held::Write { done: false }) => return,
                Some(Held::Write { done: true }) => {
                    state.held.pop_front();
                }
                Some(Held::Sync { target, .. })
                    if before_write || target.is_some_and(|target| target <= applied) =>
                {
                    let Some(Held::Sync { xid, path, received, .. }) = state.held.pop_front() else { return };
                    state.queued = state.queued.saturating_sub(1);
                    let response = Ok(R::Sync(SyncResponse { path }));
                    self.reply(conn, xid, applied, response, op::SYNC, received);
                }
                Some(Held::Sync { .. }) => {
                    self.replica.sync_waiters.insert(conn);
                    return;
                }
                Some(Held::Read { .. }) => {
                    let Some(Held::Read { xid, op, request, received }) = state.held.pop_front() else {
                        return;
                    };
                    state.queued = state.queued.saturating_sub(1);
                    self.execute(conn, xid, op, request, received);
                }
            }
        }
    }

    pub(crate) fn drain_sync_waiters(&mut self) {
        let r = &mut self.replica;
        if r.sync_waiters.is_empty() {
            return;
        }
        let waiters: Vec<ConnId> = r.sync_waiters.drain().collect();
        for conn in waiters {
            self.drain_held(conn);
        }
    }
}
