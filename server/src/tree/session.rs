//! Session liveness: expiry buckets of tickTime (ZooKeeper's ExpiryQueue), session ids and
//! passwords. Time is always an argument.

/// The 16-byte password ZooKeeper derives for a session:
/// `new java.util.Random(sessionId ^ 0xB3415C00L).nextBytes(new byte[16])`.
pub fn session_password(session_id: i64) -> [u8; 16] {
    let _ = session_id;
    todo!()
}

/// Tracks when each session expires. Owned by the server that expires sessions (standalone or
/// leader); the session *table* itself lives in the tree and changes only by txns.
pub struct SessionTracker {
    tick_ms: i64,
}

impl SessionTracker {
    /// `server_id` goes into the top byte of every id, as ZooKeeper's
    /// `SessionTrackerImpl.initializeNextSessionId(now, sid)`.
    pub fn new(tick_ms: i64, server_id: u8, now_ms: i64) -> SessionTracker {
        let _ = (server_id, now_ms);
        SessionTracker { tick_ms }
    }

    /// A fresh session id (never 0, never the container marker).
    pub fn next_session_id(&mut self) -> i64 {
        todo!()
    }

    /// Starts tracking a session that expires `timeout_ms` after `now_ms` (rounded up to the
    /// next tick boundary as ExpiryQueue does).
    pub fn add(&mut self, session_id: i64, timeout_ms: i32, now_ms: i64) {
        let _ = (session_id, timeout_ms, now_ms, self.tick_ms);
        todo!()
    }

    /// Refreshes a session on any packet from it; false if unknown or already expiring.
    pub fn touch(&mut self, session_id: i64, now_ms: i64) -> bool {
        let _ = (session_id, now_ms);
        todo!()
    }

    /// Stops tracking (closed session).
    pub fn remove(&mut self, session_id: i64) {
        let _ = session_id;
        todo!()
    }

    /// Sessions whose deadline has passed at `now_ms`; they are marked closing (touch fails)
    /// until `remove`.
    pub fn expired(&mut self, now_ms: i64) -> Vec<i64> {
        let _ = now_ms;
        todo!()
    }

    /// The next tick boundary at which something could expire (for the shell's timer).
    pub fn next_expiry_ms(&self) -> Option<i64> {
        todo!()
    }

    pub fn is_live(&self, session_id: i64) -> bool {
        let _ = session_id;
        todo!()
    }
}
