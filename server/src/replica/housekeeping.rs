//! The core's timer: gauges, session expiry and container/TTL reaping (leader only), the
//! followers' session touches, kept connections without a leader, autopurge.

use std::time::Duration;

use ferrokeeper_proto::Id;
use ferrokeeper_proto::request::Request;

use super::core::{Core, Origin};
use crate::tree::Caller;

impl Core {
    pub(crate) fn update_gauges(&self) {
        let m = &self.metrics;
        m.connections.set(self.connections.len() as i64);
        m.sessions.set(self.tree.sessions().len() as i64);
        m.znodes.set(self.tree.node_count() as i64);
        m.watches.set(self.tree.watch_stats().total as i64);
        m.ephemerals.set(self.tree.ephemerals().values().map(|v| v.len() as i64).sum());
        m.approximate_data_size.set(self.tree.approximate_data_size() as i64);
        m.last_zxid.set(self.tree.last_processed_zxid());
        m.epoch.set(self.tree.last_processed_zxid() >> 32);
    }

    pub fn on_tick(&mut self) {
        self.read_only_tick();
        self.expire_local_sessions();
        self.update_gauges();
        let now = self.mono_ms();
        self.send_touches();
        self.expire_parked();
        if !self.may_propose() {
            // Ensemble: only the leader expires sessions and reaps nodes.
            return;
        }
        for session_id in self.tracker.expired(now) {
            tracing::info!(session = format_args!("0x{session_id:x}"), "session expired");
            let caller = Caller { session_id, conn: 0, auth: Vec::new() };
            let Some(zxid) = self.prep_zxid() else { break };
            let txn = self.tree.prep(&caller, &Request::CloseSession, zxid, self.io.wall_ms());
            self.propose(&caller, 0, txn, Origin::Internal);
            self.tracker.remove(session_id);
            if let Some(conn) = self.session_conn.remove(&session_id) {
                self.close_connection(conn);
            }
        }
        if self.config.purge_interval_hours > 0
            && self.io.now().saturating_duration_since(self.last_purge)
                >= Duration::from_secs(self.config.purge_interval_hours * 3600)
        {
            self.last_purge = self.io.now();
            self.io.purge();
        }
        let interval = Duration::from_millis(self.config.container_check_interval_ms.max(1));
        // Reap only when nothing is in flight, so a node is never proposed for deletion twice.
        if self.io.now().saturating_duration_since(self.last_reap) >= interval && self.pending.is_empty() {
            self.last_reap = self.io.now();
            let per_interval = (u128::from(self.config.container_max_per_minute) * interval.as_millis()
                / 60_000)
                .max(1) as usize;
            let system = Caller { session_id: 0, conn: 0, auth: vec![Id::new("super", "")] };
            for path in self.tree.reapable(self.io.wall_ms(), per_interval) {
                let request = Request::DeleteContainer(ferrokeeper_proto::DeleteContainerRequest { path });
                let Some(zxid) = self.prep_zxid() else { break };
                let txn = self.tree.prep(&system, &request, zxid, self.io.wall_ms());
                self.propose(&system, 0, txn, Origin::Internal);
            }
        }
    }
}
