//! Client-side watch bookkeeping: which paths have watches (for setWatches on reconnect) and
//! who is waiting for a one-shot notification.

use std::collections::{HashMap, HashSet};

use ferrokeeper_proto::{SetWatches, SetWatches2};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::types::{Chroot, EventType, KeeperState, WatchedEvent};

/// A one-shot watch set by a `*_w` call: resolves with the first event for it.
#[derive(Debug)]
pub struct Watch {
    rx: oneshot::Receiver<WatchedEvent>,
}

impl Watch {
    pub(crate) fn new() -> (Watch, oneshot::Sender<WatchedEvent>) {
        let (tx, rx) = oneshot::channel();
        (Watch { rx }, tx)
    }

    /// Waits for the event that fires this watch. If the session expires or the client is
    /// closed first, the event carries state `Expired` / `Closed` and type `None`.
    pub async fn changed(self) -> Result<WatchedEvent> {
        self.rx.await.map_err(|_| Error::Closed)
    }
}

/// Which one-shot table a registration goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    Data,
    Exist,
    Child,
}

/// A registration to perform when the reply arrives.
#[derive(Debug)]
pub(crate) struct WatchReg {
    pub(crate) kind: WatchKind,
    /// Server path (chroot applied).
    pub(crate) path: String,
    pub(crate) notify: Option<oneshot::Sender<WatchedEvent>>,
}

type Waiters = HashMap<String, Vec<Option<oneshot::Sender<WatchedEvent>>>>;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    data: Waiters,
    exist: Waiters,
    child: Waiters,
    pub(crate) persistent: HashSet<String>,
    pub(crate) recursive: HashSet<String>,
}

fn add(table: &mut Waiters, path: String, notify: Option<oneshot::Sender<WatchedEvent>>) {
    let list = table.entry(path).or_default();
    match notify {
        Some(tx) => list.push(Some(tx)),
        None => {
            if !list.iter().any(Option::is_none) {
                list.push(None);
            }
        }
    }
}

fn fire(table: &mut Waiters, path: &str, event: &WatchedEvent) {
    if let Some(list) = table.remove(path) {
        for tx in list.into_iter().flatten() {
            let _ = tx.send(event.clone());
        }
    }
}

impl Registry {
    /// Records a watch after a successful (or NoNode for exists) reply.
    pub(crate) fn register(&mut self, reg: WatchReg, err: i32) {
        let no_node = err == ferrokeeper_proto::Code::NoNode.as_i32();
        let kind = match (reg.kind, err) {
            (_, 0) => reg.kind,
            (WatchKind::Exist, _) if no_node => WatchKind::Exist,
            _ => return,
        };
        let kind = if kind == WatchKind::Exist && err == 0 { WatchKind::Data } else { kind };
        let table = match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Exist => &mut self.exist,
            WatchKind::Child => &mut self.child,
        };
        add(table, reg.path, reg.notify);
    }

    /// Delivers a server notification to the one-shot waiters it triggers (removing them).
    /// `event.path` is the server path here.
    pub(crate) fn trigger(&mut self, server_path: &str, event: &WatchedEvent) {
        match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                fire(&mut self.data, server_path, event);
                fire(&mut self.exist, server_path, event);
            }
            EventType::NodeChildrenChanged => fire(&mut self.child, server_path, event),
            EventType::NodeDeleted => {
                fire(&mut self.data, server_path, event);
                fire(&mut self.exist, server_path, event);
                fire(&mut self.child, server_path, event);
            }
            _ => {}
        }
    }

    /// Drops local registrations after a successful removeWatches and returns the events
    /// Java's client would deliver for them.
    pub(crate) fn remove(
        &mut self,
        server_path: &str,
        watcher_type: i32,
        chroot: &Chroot,
    ) -> Vec<WatchedEvent> {
        use ferrokeeper_proto::op::watcher_type as wt;
        let client_path = Some(chroot.strip(server_path.to_owned()));
        let ev = |event_type| WatchedEvent {
            event_type,
            state: KeeperState::SyncConnected,
            path: client_path.clone(),
        };
        let mut out = Vec::new();
        if watcher_type == wt::DATA || watcher_type == wt::ANY {
            let e = ev(EventType::DataWatchRemoved);
            let had = self.data.contains_key(server_path) || self.exist.contains_key(server_path);
            fire(&mut self.data, server_path, &e);
            fire(&mut self.exist, server_path, &e);
            if had {
                out.push(e);
            }
        }
        if watcher_type == wt::CHILDREN || watcher_type == wt::ANY {
            let e = ev(EventType::ChildWatchRemoved);
            if self.child.contains_key(server_path) {
                out.push(e.clone());
            }
            fire(&mut self.child, server_path, &e);
        }
        if (watcher_type == wt::PERSISTENT || watcher_type == wt::ANY) && self.persistent.remove(server_path)
        {
            out.push(ev(EventType::PersistentWatchRemoved));
        }
        if (watcher_type == wt::PERSISTENT_RECURSIVE || watcher_type == wt::ANY)
            && self.recursive.remove(server_path)
        {
            out.push(ev(EventType::PersistentWatchRemoved));
        }
        out
    }

    /// Whether any watch is registered (so a reconnect must send setWatches).
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    /// The setWatches / setWatches2 messages re-registering everything, split into batches of
    /// at most ~128 KB of paths like Java's client.
    pub(crate) fn set_watches(&self, relative_zxid: i64) -> Vec<SetWatchesMsg> {
        const LIMIT: usize = 128 * 1024;
        let persistent = !self.persistent.is_empty() || !self.recursive.is_empty();
        let mut out = Vec::new();
        let mut cur = SetWatches2 { relative_zxid, ..Default::default() };
        let mut size = 0usize;
        let lists: [(usize, Vec<&String>); 5] = [
            (0, self.data.keys().collect()),
            (1, self.exist.keys().collect()),
            (2, self.child.keys().collect()),
            (3, self.persistent.iter().collect()),
            (4, self.recursive.iter().collect()),
        ];
        for (which, paths) in lists {
            for path in paths {
                if size + path.len() > LIMIT && size > 0 {
                    let full =
                        std::mem::replace(&mut cur, SetWatches2 { relative_zxid, ..Default::default() });
                    out.push(SetWatchesMsg::new(full, persistent));
                    size = 0;
                }
                size += path.len();
                let list = match which {
                    0 => &mut cur.data_watches,
                    1 => &mut cur.exist_watches,
                    2 => &mut cur.child_watches,
                    3 => &mut cur.persistent_watches,
                    _ => &mut cur.persistent_recursive_watches,
                };
                list.push(path.clone());
            }
        }
        if size > 0 {
            out.push(SetWatchesMsg::new(cur, persistent));
        }
        out
    }

    /// Sends a state event to every one-shot waiter and forgets all watches (expiry / close).
    pub(crate) fn clear(&mut self, state: KeeperState) {
        let e = WatchedEvent::state(state);
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, list) in table.drain() {
                for tx in list.into_iter().flatten() {
                    let _ = tx.send(e.clone());
                }
            }
        }
        self.persistent.clear();
        self.recursive.clear();
    }
}

/// One re-registration message.
#[derive(Debug)]
pub(crate) enum SetWatchesMsg {
    V1(SetWatches),
    V2(SetWatches2),
}

impl SetWatchesMsg {
    fn new(w: SetWatches2, persistent: bool) -> SetWatchesMsg {
        if persistent {
            SetWatchesMsg::V2(w)
        } else {
            SetWatchesMsg::V1(SetWatches {
                relative_zxid: w.relative_zxid,
                data_watches: w.data_watches,
                exist_watches: w.exist_watches,
                child_watches: w.child_watches,
            })
        }
    }
}

/// The session-wide event stream: every notification the server sends (path without chroot)
/// and every state change, in order.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl Events {
    /// The next event; `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }

    /// The next event if one is already queued.
    pub fn try_recv(&mut self) -> Option<WatchedEvent> {
        self.rx.try_recv().ok()
    }
}
