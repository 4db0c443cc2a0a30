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
mod ordering;
mod pipeline;
mod requests;
mod roles;
mod sessions;
mod snapshotter;
mod stats;

pub use self::consensus::Replica;
pub use self::core::{Core, RequestFault, VERSION};
