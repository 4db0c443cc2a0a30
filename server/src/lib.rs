//! ferrokeeper server: a ZooKeeper-compatible coordination service.
//!
//! - [`tree`] — the pure state machine (znodes, session table, ACLs, watches, prep/apply).
//! - [`config`] — zoo.cfg parsing.
//! - [`auth`] — auth providers, SASL's JAAS section and rules, `enforce.auth.*`.
//! - [`replica`] — one server's state and behaviour as a state machine with no I/O: requests,
//!   sessions, the commit pipeline over [`zab`], forwarding, snapshots; effects through
//!   [`replica::io::Io`].
//! - [`server`] — the tokio shell: listener, connection tasks, the core task that drives the
//!   replica and carries out its effects, four-letter words.

pub mod auth;
pub mod config;
pub mod metrics;
pub mod quorum;
pub mod replica;
pub mod server;
pub mod telemetry;
pub mod tree;
pub mod txlog;
pub mod zab;
pub mod zkformat;
