//! The replicated state and its request semantics, as a pure state machine: the znode tree,
//! stats, ACLs, ephemerals, the session table, watches, and the validation ("prep") that
//! turns a write request into a transaction.
//!
//! **Architecture Invariant:** nothing under `tree/` touches sockets, files, the clock, a
//! thread or a global RNG. Time arrives as `TxnHeader.time` or a `now_ms` argument; ids are
//! arguments. The same inputs give the same outputs, byte for byte, so the standalone server,
//! a quorum replica and the simulator all run this code unchanged.
//!
//! The write path is two steps, as in ZooKeeper's PrepRequestProcessor + DataTree:
//! 1. [`DataTree::prep`] validates a write against the tree *as it will be once every
//!    prepped-but-not-yet-applied txn is applied* (an overlay of pending changes, ZooKeeper's
//!    `outstandingChanges`) and returns the [`Txn`] to log. A failed check becomes an error txn
//!    (it still consumes a zxid, as in ZooKeeper).
//! 2. [`DataTree::apply`] applies a txn in zxid order. It is the only way the tree changes and
//!    it never fails for a txn that prep produced; it returns the reply and the watch events.
//!
//! Reads ([`DataTree::read`]) run against the applied tree and may register watches.

pub mod acl;
mod data_tree;
mod prep;
pub mod session;
mod watch;

pub use data_tree::{DataTree, new_stat};
pub use session::{SessionTracker, session_password};
pub use watch::WatchStats;

use ferrokeeper_proto::Id;
use ferrokeeper_proto::WatcherEvent;
use ferrokeeper_proto::response::Response;

/// Identifies one client connection: the owner of watches.
pub type ConnId = u64;
pub type SessionId = i64;

/// Settings of the state machine that come from zoo.cfg / system properties.
#[derive(Debug, Clone, Default)]
pub struct TreeConfig {
    /// `zookeeper.skipACL=yes`: no permission checks.
    pub skip_acl: bool,
    /// `zookeeper.extendedTypesEnabled=true`: TTL nodes allowed (else createTTL → Unimplemented).
    pub extended_types_enabled: bool,
    /// `znode.container.maxNeverUsedIntervalMs` (0 = never reap unused containers).
    pub container_max_never_used_interval_ms: i64,
    /// Auth providers registered beyond the built-in ones (`authProvider.N`).
    pub providers: acl::Providers,
    /// An ensemble member's `/zookeeper/config` (`None` standalone: empty data).
    pub config_node: Option<ConfigNode>,
}

/// `/zookeeper/config` as an ensemble member serves it. The node is server-local, as in
/// ZooKeeper (`ZKDatabase.initConfigInZKDatabase`): every tree this server builds, fresh,
/// recovered or installed from the leader's snapshot, carries this member's own copy, with
/// mzxid = the configuration's version (0 for a static one), dataVersion -1 and the time the
/// server started as mtime. It never changes through a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigNode {
    /// `server.N=...` lines and `version=<hex>` (`QuorumConfig::membership`).
    pub data: bytes::Bytes,
    /// When the server set it up (ms since the epoch; the shell reads the clock).
    pub mtime_ms: i64,
}

/// Who is asking.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub session_id: SessionId,
    pub conn: ConnId,
    /// Authenticated ids: `ip:<addr>` always, `digest:user:hash` after addauth, `super:` when
    /// the super digest matched. Used for ACL checks and `auth`-scheme ACL expansion.
    pub auth: Vec<Id>,
}

/// What applying one txn produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The reply for the client that issued the txn: a body, or the error code.
    pub reply: Result<Response, ferrokeeper_proto::Code>,
    /// Watch notifications in the order they must be delivered, each to one connection, with
    /// the ACL of the node the event is about: the shell delivers an event only if that
    /// connection has READ on it (as ZooKeeper's `ServerCnxn.process(event, znodeAcl)`); the
    /// watch is consumed either way. (For a multi: the events of every sub-op, in order.)
    pub events: Vec<(ConnId, WatcherEvent, std::sync::Arc<Vec<ferrokeeper_proto::Acl>>)>,
}

impl ApplyOutcome {
    /// The events without their ACLs (tests and tools).
    pub fn events_plain(&self) -> Vec<(ConnId, WatcherEvent)> {
        self.events.iter().map(|(conn, event, _)| (*conn, event.clone())).collect()
    }
}

pub use ferrokeeper_proto::txn::{Txn, TxnHeader};
