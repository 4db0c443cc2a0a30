//! The replica: the state of one server and everything it does with it, as a state machine
//! with no I/O. It owns the tree, the session tracker, the [`zab::Peer`](crate::zab::Peer)
//! (one voter when standalone), the client table and the commit queue. It is driven by
//! method calls, one event at a time (a connect, a request, a closed connection, a peer
//! message or link end, the log's durable watermark, a timer tick, a snapshot chunk), and acts
//! on the world only through the [`Io`](io::Io) trait: client bytes and closes, peer sends, log
//! appends / rolls / restarts, epoch and snapshot files, purge, fatal errors, the clock and
//! randomness. The tokio shell (`server::shell`) implements `Io` with channels, threads and
//! files; a simulator can implement it in memory.
//!
//! **Architecture Invariant:** nothing under `replica/` names tokio, `std::fs`, `std::net`,
//! threads, `Instant::now`, `SystemTime` or a global RNG (`server/tests/tidy.rs`).
//!
//! Each file is one concept, an `impl Core` block: `core.rs` (the state), `clients.rs`
//! (connections, replies, flush), `requests.rs` (routing, requests with no txn),
//! `ordering.rs` (each connection's `held` queue: requests complete in order), `pipeline.rs`
//! (propose → commit → apply), `consensus.rs` (executing zab's outputs), `forwarding.rs`
//! (messages between servers other than zab's), `sessions.rs`, `roles.rs`, `failover.rs`
//! (kept connections while LOOKING), `leader_queue.rs` (writes waiting for a zxid),
//! `snapshotter.rs`, `housekeeping.rs` (timer), `stats.rs`, `io.rs` (the effects).

mod clients;
mod consensus;
pub mod core;
mod failover;
mod forwarding;
mod housekeeping;
pub mod io;
mod leader_queue;
mod local_sessions;
mod observer;
mod ordering;
mod pipeline;
mod readonly;
mod requests;
mod roles;
mod sasl;
mod session_moved;
mod sessions;
pub mod sim;
mod snapshotter;
mod stats;

pub use self::consensus::Replica;
pub use self::core::{Core, RequestFault, VERSION};

/// A hash map whose hasher is fixed by the replica's inputs: its behaviour, iteration order
/// included, depends only on them, so a simulator seed replays exactly. (Its keys are ids the
/// server assigns or learns from its peers, not client-chosen strings.) The simulator varies
/// the hasher's key with the seed, so that each seed also explores other iteration orders.
pub type Map<K, V> = std::collections::HashMap<K, V, SeededState>;
/// A hash set with the replica's hasher (see [`Map`]).
pub type Set<K> = std::collections::HashSet<K, SeededState>;

/// The replica's [`std::hash::BuildHasher`]: SipHash-free multiply-rotate hashing keyed by
/// [`SeededState::key`] (0 in the server; the simulator sets one per seed).
#[derive(Clone, Copy, Debug)]
pub struct SeededState(u64);

impl SeededState {
    /// The key every map made on this thread from now on uses.
    pub fn set_key(key: u64) {
        HASH_KEY.with(|k| k.set(key));
    }
}

thread_local! {
    static HASH_KEY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Default for SeededState {
    fn default() -> SeededState {
        SeededState(HASH_KEY.with(std::cell::Cell::get))
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0 ^ 0x243f_6a88_85a3_08d3)
    }
}

/// Multiply-rotate hashing of the replica's integer keys.
#[derive(Clone, Copy, Debug)]
pub struct KeyedHasher(u64);

impl std::hash::Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }
    fn write_i32(&mut self, value: i32) {
        self.write_u64(value as u32 as u64);
    }
}
