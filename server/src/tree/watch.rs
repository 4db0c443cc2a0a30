//! The watch table: one-shot data and child watches, persistent and persistent-recursive
//! watches, keyed by connection.
//!
//! As in ZooKeeper's `WatchManager`, there are two managers (data and child); each maps a
//! path to the connections watching it, with a set of modes per (connection, path).
//! Persistent watches live in both managers, persistent-recursive ones only in the data
//! manager, so they never see NodeChildrenChanged.

use std::collections::{BTreeMap, BTreeSet};

use super::ConnId;

/// Counts for `wchs` and `mntr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStats {
    /// Connections holding at least one watch.
    pub connections: usize,
    /// Distinct watched paths.
    pub paths: usize,
    /// Total (connection, path, kind) registrations.
    pub total: usize,
}

/// `WatcherMode` bits, as ZooKeeper's `WatchStats` flags.
pub(crate) const STANDARD: u8 = 1;
pub(crate) const PERSISTENT: u8 = 2;
pub(crate) const RECURSIVE: u8 = 4;

/// One of ZooKeeper's two `WatchManager`s.
#[derive(Debug, Default, Clone)]
pub(crate) struct WatchManager {
    /// path → connection → mode bits (never 0).
    by_path: BTreeMap<String, BTreeMap<ConnId, u8>>,
    /// connection → paths it watches here (the reverse index of `by_path`).
    by_conn: BTreeMap<ConnId, BTreeSet<String>>,
}

/// The parent of a path for the walk up to the root; `None` at the root.
fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

impl WatchManager {
    pub(crate) fn add(&mut self, path: &str, conn: ConnId, mode: u8) {
        debug_assert!(mode != 0);
        *self.by_path.entry(path.to_owned()).or_default().entry(conn).or_insert(0) |= mode;
        self.by_conn.entry(conn).or_default().insert(path.to_owned());
    }

    /// Whether any connection watches exactly `path`.
    pub(crate) fn watched(&self, path: &str) -> bool {
        self.by_path.get(path).is_some_and(|conns| !conns.is_empty())
    }

    /// Whether `conn` watches `path` with one of `mode`'s bits (any mode when `mode` is 0).
    pub(crate) fn contains(&self, path: &str, conn: ConnId, mode: u8) -> bool {
        self.by_path.get(path).and_then(|m| m.get(&conn)).is_some_and(|bits| mode == 0 || bits & mode != 0)
    }

    /// Removes `mode` (every mode when 0); true if something was removed.
    pub(crate) fn remove(&mut self, path: &str, conn: ConnId, mode: u8) -> bool {
        let Some(conns) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(bits) = conns.get_mut(&conn) else {
            return false;
        };
        let old = *bits;
        let new = if mode == 0 { 0 } else { old & !mode };
        if new == old {
            return false;
        }
        if new == 0 {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_path.remove(path);
            }
            self.unindex(conn, path);
        } else {
            *bits = new;
        }
        true
    }

    fn unindex(&mut self, conn: ConnId, path: &str) {
        if let Some(paths) = self.by_conn.get_mut(&conn) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// WatchManager.triggerWatch: every watcher on `path` itself fires (its one-shot mode is
    /// consumed); recursive watchers on ancestors fire too. `suppress` holds connections that
    /// already got an event for this change.
    pub(crate) fn trigger(&mut self, path: &str, suppress: &BTreeSet<ConnId>) -> BTreeSet<ConnId> {
        let mut fired = BTreeSet::new();
        if let Some(conns) = self.by_path.get_mut(path) {
            let mut emptied = Vec::new();
            for (conn, bits) in conns.iter_mut() {
                fired.insert(*conn);
                *bits &= !STANDARD;
                if *bits == 0 {
                    emptied.push(*conn);
                }
            }
            for conn in &emptied {
                conns.remove(conn);
            }
            if conns.is_empty() {
                self.by_path.remove(path);
            }
            for conn in emptied {
                self.unindex(conn, path);
            }
        }
        let mut cur = parent_of(path);
        while let Some(p) = cur {
            if let Some(conns) = self.by_path.get(p) {
                for (conn, bits) in conns {
                    if bits & RECURSIVE != 0 {
                        fired.insert(*conn);
                    }
                }
            }
            cur = parent_of(p);
        }
        fired.retain(|c| !suppress.contains(c));
        fired
    }

    pub(crate) fn remove_connection(&mut self, conn: ConnId) {
        if let Some(paths) = self.by_conn.remove(&conn) {
            for p in paths {
                if let Some(conns) = self.by_path.get_mut(&p) {
                    conns.remove(&conn);
                    if conns.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }

    pub(crate) fn by_conn(&self) -> &BTreeMap<ConnId, BTreeSet<String>> {
        &self.by_conn
    }

    pub(crate) fn by_path(&self) -> &BTreeMap<String, BTreeMap<ConnId, u8>> {
        &self.by_path
    }

    fn registrations(&self) -> usize {
        self.by_conn.values().map(BTreeSet::len).sum()
    }
}

/// Both managers of a tree.
#[derive(Debug, Default, Clone)]
pub(crate) struct Watches {
    pub(crate) data: WatchManager,
    pub(crate) child: WatchManager,
}

impl Watches {
    pub(crate) fn stats(&self) -> WatchStats {
        let mut conns: BTreeSet<ConnId> = self.data.by_conn().keys().copied().collect();
        conns.extend(self.child.by_conn().keys().copied());
        let mut paths: BTreeSet<&str> = self.data.by_path().keys().map(String::as_str).collect();
        paths.extend(self.child.by_path().keys().map(String::as_str));
        WatchStats {
            connections: conns.len(),
            paths: paths.len(),
            total: self.data.registrations() + self.child.registrations(),
        }
    }

    pub(crate) fn by_connection(&self) -> BTreeMap<ConnId, Vec<String>> {
        let mut out: BTreeMap<ConnId, BTreeSet<String>> = BTreeMap::new();
        for m in [&self.data, &self.child] {
            for (conn, paths) in m.by_conn() {
                out.entry(*conn).or_default().extend(paths.iter().cloned());
            }
        }
        out.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect()
    }

    pub(crate) fn by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        let mut out: BTreeMap<String, BTreeSet<ConnId>> = BTreeMap::new();
        for m in [&self.data, &self.child] {
            for (path, conns) in m.by_path() {
                out.entry(path.clone()).or_default().extend(conns.keys().copied());
            }
        }
        out.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect()
    }

    pub(crate) fn remove_connection(&mut self, conn: ConnId) {
        self.data.remove_connection(conn);
        self.child.remove_connection(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_one_shot_persistent_stays() {
        let mut m = WatchManager::default();
        m.add("/a", 1, STANDARD);
        m.add("/a", 2, PERSISTENT);
        m.add("/a", 2, STANDARD);
        let none = BTreeSet::new();
        assert_eq!(m.trigger("/a", &none), BTreeSet::from([1, 2]));
        assert!(!m.contains("/a", 1, 0));
        assert!(m.contains("/a", 2, PERSISTENT));
        assert!(!m.contains("/a", 2, STANDARD));
        assert_eq!(m.trigger("/a", &none), BTreeSet::from([2]));
    }

    #[test]
    fn recursive_fires_for_descendants_only_when_recursive() {
        let mut m = WatchManager::default();
        m.add("/", 1, RECURSIVE);
        m.add("/a", 2, PERSISTENT);
        m.add("/a", 3, STANDARD);
        let none = BTreeSet::new();
        assert_eq!(m.trigger("/a/b/c", &none), BTreeSet::from([1]));
        assert_eq!(m.trigger("/a", &BTreeSet::from([2])), BTreeSet::from([1, 3]));
    }

    #[test]
    fn remove_modes_and_connections() {
        let mut m = WatchManager::default();
        m.add("/a", 1, STANDARD | PERSISTENT);
        assert!(m.remove("/a", 1, STANDARD));
        assert!(!m.remove("/a", 1, STANDARD));
        assert!(m.contains("/a", 1, 0));
        m.add("/b", 1, STANDARD);
        m.remove_connection(1);
        assert!(m.by_path().is_empty());
        assert!(m.by_conn().is_empty());
    }
}
