//! ferrokeeper server: a ZooKeeper-compatible coordination service.
//!
//! - [`tree`]: the pure state machine (znodes, sessions table, ACLs, watches, prep/apply).
//! - [`config`]: zoo.cfg parsing.
//! - [`server`]: the tokio shell: listener, connections, the core task that owns the tree.
//! - [`fourlw`]: four-letter-word commands.

pub mod tree;
