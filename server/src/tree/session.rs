//! Session liveness: expiry buckets of tickTime (ZooKeeper's ExpiryQueue), session ids and
//! passwords. Time is always an argument.

use std::collections::{BTreeMap, BTreeSet};

use ferrokeeper_proto::op::ephemeral_owner;

/// `java.util.Random`: a 48-bit linear congruential generator, reproduced bit for bit so
/// session passwords equal the ones a Java server would hand out.
struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom { seed: (seed as u64 ^ Self::MULTIPLIER) & Self::MASK }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> (48 - bits)) as i64 as i32
    }

    fn next_bytes(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            let mut rnd = self.next(32);
            let n = (out.len() - i).min(4);
            for _ in 0..n {
                out[i] = rnd as u8;
                i += 1;
                rnd >>= 8;
            }
        }
    }
}

/// The 16-byte password ZooKeeper derives for a session:
/// `new java.util.Random(sessionId ^ 0xB3415C00L).nextBytes(new byte[16])`.
pub fn session_password(session_id: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    JavaRandom::new(session_id ^ 0xB341_5C00).next_bytes(&mut out);
    out
}

/// Tracks when each session expires. Owned by the server that expires sessions (standalone or
/// leader); the session *table* itself lives in the tree and changes only by txns.
pub struct SessionTracker {
    tick_ms: i64,
    next_id: i64,
    /// Session → (timeout, current deadline bucket).
    sessions: BTreeMap<i64, (i32, i64)>,
    /// Deadline bucket → sessions expiring at it (ExpiryQueue's expiryMap).
    buckets: BTreeMap<i64, BTreeSet<i64>>,
    /// Sessions handed out by `expired` and not yet removed: touch fails for them.
    closing: BTreeSet<i64>,
}

impl SessionTracker {
    /// `server_id` goes into the top byte of every id, as ZooKeeper's
    /// `SessionTrackerImpl.initializeNextSessionId(now, sid)`.
    pub fn new(tick_ms: i64, server_id: u8, now_ms: i64) -> SessionTracker {
        assert!(tick_ms > 0, "tickTime must be positive");
        // `(now << 24) >>> 8`: the low 40 bits of the time in bits 16..56, then the server id
        // in the top byte.
        let mut next_id = (((now_ms << 24) as u64) >> 8) as i64 | (i64::from(server_id) << 56);
        if next_id == ephemeral_owner::CONTAINER {
            next_id += 1;
        }
        SessionTracker {
            tick_ms,
            next_id,
            sessions: BTreeMap::new(),
            buckets: BTreeMap::new(),
            closing: BTreeSet::new(),
        }
    }

    /// A fresh session id (never 0, never the container marker).
    pub fn next_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && id != ephemeral_owner::CONTAINER {
                return id;
            }
        }
    }

    /// ExpiryQueue.roundToNextInterval: the next tick boundary strictly after `time`.
    fn round_to_next_interval(&self, time: i64) -> i64 {
        (time / self.tick_ms + 1) * self.tick_ms
    }

    fn schedule(&mut self, session_id: i64, timeout_ms: i32, now_ms: i64) {
        let deadline = self.round_to_next_interval(now_ms + i64::from(timeout_ms));
        if let Some((_, old)) = self.sessions.get(&session_id).copied() {
            if old == deadline {
                return;
            }
            if let Some(set) = self.buckets.get_mut(&old) {
                set.remove(&session_id);
                if set.is_empty() {
                    self.buckets.remove(&old);
                }
            }
        }
        self.sessions.insert(session_id, (timeout_ms, deadline));
        self.buckets.entry(deadline).or_default().insert(session_id);
    }

    /// Starts tracking a session that expires `timeout_ms` after `now_ms` (rounded up to the
    /// next tick boundary as ExpiryQueue does).
    pub fn add(&mut self, session_id: i64, timeout_ms: i32, now_ms: i64) {
        self.closing.remove(&session_id);
        self.schedule(session_id, timeout_ms, now_ms);
    }

    /// Refreshes a session on any packet from it; false if unknown or already expiring.
    pub fn touch(&mut self, session_id: i64, now_ms: i64) -> bool {
        if self.closing.contains(&session_id) {
            return false;
        }
        let Some((timeout, _)) = self.sessions.get(&session_id).copied() else {
            return false;
        };
        self.schedule(session_id, timeout, now_ms);
        true
    }

    /// Stops tracking (closed session).
    pub fn remove(&mut self, session_id: i64) {
        if let Some((_, deadline)) = self.sessions.remove(&session_id)
            && let Some(set) = self.buckets.get_mut(&deadline)
        {
            set.remove(&session_id);
            if set.is_empty() {
                self.buckets.remove(&deadline);
            }
        }
        self.closing.remove(&session_id);
    }

    /// Sessions whose deadline has passed at `now_ms`; they are marked closing (touch fails)
    /// until `remove`.
    pub fn expired(&mut self, now_ms: i64) -> Vec<i64> {
        let due: Vec<i64> = self.buckets.range(..=now_ms).map(|(k, _)| *k).collect();
        let mut out = Vec::new();
        for deadline in due {
            if let Some(set) = self.buckets.remove(&deadline) {
                out.extend(set);
            }
        }
        for id in &out {
            self.closing.insert(*id);
        }
        out
    }

    /// The next tick boundary at which something could expire (for the shell's timer).
    pub fn next_expiry_ms(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    pub fn is_live(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id) && !self.closing.contains(&session_id)
    }

    /// The deadline bucket a tracked session currently sits in.
    pub fn deadline(&self, session_id: i64) -> Option<i64> {
        self.sessions.get(&session_id).map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_matches_java() {
        // `new java.util.Random(42).nextInt()` is -1170105035 in every JVM.
        assert_eq!(JavaRandom::new(42).next(32), -1_170_105_035);
        // Computed with a JVM: new Random(0x1234L ^ 0xB3415C00L).nextBytes(new byte[16]).
        assert_eq!(session_password(0x1234), JAVA_PASSWORD_0X1234);
    }

    const JAVA_PASSWORD_0X1234: [u8; 16] =
        [60, 24, 171, 224, 91, 14, 97, 130, 116, 29, 98, 93, 18, 124, 21, 176];

    #[test]
    fn ids_follow_initialize_next_session_id() {
        let now = 0x0123_4567_89ABi64;
        let mut t = SessionTracker::new(2000, 3, now);
        let expect = (((now << 24) as u64) >> 8) as i64 | (3i64 << 56);
        assert_eq!(t.next_session_id(), expect);
        assert_eq!(t.next_session_id(), expect + 1);
        // Server id 0 and time 0 would give id 0, which is skipped.
        let mut z = SessionTracker::new(2000, 0, 0);
        assert_eq!(z.next_session_id(), 1);
        // 0x80 << 56 is the container marker.
        let mut c = SessionTracker::new(2000, 0x80, 0);
        assert_eq!(c.next_session_id(), i64::MIN + 1);
    }

    #[test]
    fn expiry_is_bucketed_on_ticks() {
        let mut t = SessionTracker::new(2000, 1, 0);
        t.add(7, 5000, 1000);
        // (1000 + 5000) / 2000 * 2000 + 2000 = 8000.
        assert_eq!(t.deadline(7), Some(8000));
        assert_eq!(t.next_expiry_ms(), Some(8000));
        t.add(8, 4000, 0);
        assert_eq!(t.deadline(8), Some(6000));
        assert!(t.expired(5999).is_empty());
        assert_eq!(t.expired(6000), vec![8]);
        assert!(!t.touch(8, 6000));
        assert!(!t.is_live(8));
        assert!(t.touch(7, 3000));
        assert_eq!(t.deadline(7), Some(10000));
        assert!(t.expired(9999).is_empty());
        assert_eq!(t.expired(20000), vec![7]);
        t.remove(7);
        t.remove(8);
        assert_eq!(t.next_expiry_ms(), None);
        assert!(!t.touch(99, 0));
    }
}
