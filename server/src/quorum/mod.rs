//! The ensemble shell: links between servers and (with `zab/`) replication.
//!
//! - [`transport`] — one TCP link per pair of servers, opaque framed messages. It listens on
//!   each server's *quorum* port (`server.N=host:quorumPort:electionPort`); election
//!   notifications travel on the same links, so the election port is parsed but not bound.
//! - [`tls`] — `sslQuorum`: mutual TLS on those links from the `ssl.quorum.*` keys.
//! - [`wire`] — the bytes of a frame: Zab messages plus the shell's own (forwarded writes,
//!   sync, session touches).
//! - [`epochs`] — the `currentEpoch` / `acceptedEpoch` files.
//!
//! The replica loop itself lives in the core task (`server/replica.rs`), which owns both the
//! data tree and the [`crate::zab::Peer`].

pub mod epochs;
pub mod tls;
pub mod transport;
pub mod wire;
