//! The ensemble shell: links between servers and (with `zab/`) replication.
//!
//! - [`transport`] — one TCP link per pair of servers, opaque framed messages.

pub mod transport;
