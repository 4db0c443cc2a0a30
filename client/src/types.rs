//! Public value types: events, states, connect strings and chroot handling.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use ferrokeeper_proto::op::{event_type, keeper_state};

use crate::error::{Error, Result};

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A state change of the session (no node involved).
    None,
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
    DataWatchRemoved,
    ChildWatchRemoved,
    PersistentWatchRemoved,
}

impl EventType {
    /// The type for a wire value (unknown values map to `None`).
    pub fn from_i32(value: i32) -> EventType {
        match value {
            event_type::NODE_CREATED => EventType::NodeCreated,
            event_type::NODE_DELETED => EventType::NodeDeleted,
            event_type::NODE_DATA_CHANGED => EventType::NodeDataChanged,
            event_type::NODE_CHILDREN_CHANGED => EventType::NodeChildrenChanged,
            event_type::DATA_WATCH_REMOVED => EventType::DataWatchRemoved,
            event_type::CHILD_WATCH_REMOVED => EventType::ChildWatchRemoved,
            event_type::PERSISTENT_WATCH_REMOVED => EventType::PersistentWatchRemoved,
            _ => EventType::None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `Watcher.Event.KeeperState`: the session's state as events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeeperState {
    Disconnected,
    SyncConnected,
    AuthFailed,
    ConnectedReadOnly,
    /// A SASL login succeeded (after SyncConnected, on every connection).
    SaslAuthenticated,
    Closed,
    Expired,
}

impl KeeperState {
    /// The state for a wire value (unknown values map to `Disconnected`).
    pub fn from_i32(value: i32) -> KeeperState {
        match value {
            keeper_state::SYNC_CONNECTED => KeeperState::SyncConnected,
            keeper_state::AUTH_FAILED => KeeperState::AuthFailed,
            keeper_state::CONNECTED_READ_ONLY => KeeperState::ConnectedReadOnly,
            keeper_state::SASL_AUTHENTICATED => KeeperState::SaslAuthenticated,
            keeper_state::CLOSED => KeeperState::Closed,
            keeper_state::EXPIRED => KeeperState::Expired,
            _ => KeeperState::Disconnected,
        }
    }
}

impl fmt::Display for KeeperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A watch notification or a session state change.
///
/// `Display` matches Java's `WatchedEvent.toString()` (3.8):
/// `WatchedEvent state:SyncConnected type:NodeDataChanged path:/java`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    /// The node's path as the caller sees it (chroot removed); `None` for state changes.
    pub path: Option<String>,
}

impl WatchedEvent {
    pub(crate) fn state(state: KeeperState) -> WatchedEvent {
        WatchedEvent { event_type: EventType::None, state, path: None }
    }
}

impl fmt::Display for WatchedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WatchedEvent state:{} type:{} path:{}",
            self.state,
            self.event_type,
            self.path.as_deref().unwrap_or("null")
        )
    }
}

/// The session's state as [`crate::ZooKeeper::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Looking for a server (initially and after a connection loss).
    Connecting,
    /// A server accepted the session; requests flow.
    Connected,
    /// The server declared the session expired; every later call fails with `SessionExpired`.
    Expired,
    /// Authentication failed; the server closed the connection.
    AuthFailed,
    /// [`crate::ZooKeeper::close`] was called (or every handle was dropped).
    Closed,
}

impl SessionState {
    /// Whether requests can still succeed (now or after a reconnect).
    pub fn is_alive(self) -> bool {
        matches!(self, SessionState::Connecting | SessionState::Connected)
    }

    /// zkCli's spelling (`CONNECTED`, `CONNECTING`, `CLOSED`, ...).
    pub fn cli_name(self) -> &'static str {
        match self {
            SessionState::Connecting => "CONNECTING",
            SessionState::Connected => "CONNECTED",
            SessionState::Expired => "EXPIRED",
            SessionState::AuthFailed => "AUTH_FAILED",
            SessionState::Closed => "CLOSED",
        }
    }
}

/// A parsed connect string: `host1:port1,host2:port2[/chroot]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` entries in the order given (port defaults to 2181).
    pub hosts: Vec<String>,
    /// The chroot, without trailing slash; `None` when absent or `/`.
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses `h1:p1,h2:p2[/chroot]`.
    pub fn parse(s: &str) -> Result<ConnectString> {
        let s = s.trim();
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) => {
                let chroot = &s[i..];
                ferrokeeper_proto::path::validate(chroot).map_err(Error::ConnectString)?;
                (&s[..i], if chroot == "/" { None } else { Some(chroot.to_owned()) })
            }
            None => (s, None),
        };
        let mut hosts = Vec::new();
        for host in hosts_part.split(',') {
            let host = host.trim();
            if host.is_empty() {
                continue;
            }
            let entry = if host.starts_with('[') {
                // [v6]:port
                match host.rfind("]:") {
                    Some(_) => host.to_owned(),
                    None => format!("{host}:2181"),
                }
            } else {
                match host.rsplit_once(':') {
                    Some((h, p)) => {
                        p.parse::<u16>().map_err(|_| Error::ConnectString(format!("bad port in {host}")))?;
                        format!("{h}:{p}")
                    }
                    None => format!("{host}:2181"),
                }
            };
            hosts.push(entry);
        }
        if hosts.is_empty() {
            return Err(Error::ConnectString(format!("no hosts in {s:?}")));
        }
        Ok(ConnectString { hosts, chroot })
    }

    /// Resolves every host (each may yield several addresses).
    pub(crate) fn resolve(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for host in &self.hosts {
            if let Ok(addrs) = host.to_socket_addrs() {
                out.extend(addrs);
            }
        }
        out
    }
}

/// Maps client paths to server paths and back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chroot(pub(crate) Option<String>);

impl Chroot {
    pub(crate) fn prepend(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_owned(),
            Some(root) if path == "/" => root.clone(),
            Some(root) => {
                let mut s = String::with_capacity(root.len() + path.len());
                s.push_str(root);
                s.push_str(path);
                s
            }
        }
    }

    pub(crate) fn strip(&self, path: String) -> String {
        match &self.0 {
            None => path,
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => path,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_strings() {
        let cs = ConnectString::parse("a:1,b:2/app/x").expect("parse");
        assert_eq!(cs.hosts, vec!["a:1", "b:2"]);
        assert_eq!(cs.chroot.as_deref(), Some("/app/x"));
        let cs = ConnectString::parse("localhost").expect("parse");
        assert_eq!(cs.hosts, vec!["localhost:2181"]);
        assert_eq!(cs.chroot, None);
        assert!(ConnectString::parse("a:x").is_err());
        assert!(ConnectString::parse("a:1/bad/").is_err());
        assert!(ConnectString::parse("").is_err());
    }

    #[test]
    fn chroot_round_trip() {
        let c = Chroot(Some("/app".into()));
        assert_eq!(c.prepend("/"), "/app");
        assert_eq!(c.prepend("/x"), "/app/x");
        assert_eq!(c.strip("/app".into()), "/");
        assert_eq!(c.strip("/app/x".into()), "/x");
        assert_eq!(c.strip("/apple".into()), "/apple");
    }

    #[test]
    fn event_display_matches_java() {
        let e = WatchedEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: Some("/java".into()),
        };
        assert_eq!(e.to_string(), "WatchedEvent state:SyncConnected type:NodeDataChanged path:/java");
        assert_eq!(
            WatchedEvent::state(KeeperState::SyncConnected).to_string(),
            "WatchedEvent state:SyncConnected type:None path:null"
        );
    }
}
