//! Unit tests of `DataTree`: stats, sequential numbering, error paths, watches, the overlay.

use super::*;
use ferrokeeper_proto::multi::MultiRequest;
use ferrokeeper_proto::{CreateRequest, CreateTtlRequest, DeleteRequest, GetDataRequest, SetDataRequest};

fn cfg() -> TreeConfig {
    TreeConfig { extended_types_enabled: true, ..TreeConfig::default() }
}

fn caller(session: i64, conn: u64) -> Caller {
    Caller { session_id: session, conn, auth: vec![ferrokeeper_proto::Id::new("ip", "127.0.0.1")] }
}

struct T {
    tree: DataTree,
    zxid: i64,
}

impl T {
    fn new() -> T {
        let mut t = T { tree: DataTree::new(cfg()), zxid: 0 };
        t.session(1);
        t
    }
    fn session(&mut self, id: i64) {
        self.zxid += 1;
        let txn = self.tree.prep_create_session(id, 30000, self.zxid);
        let h = TxnHeader { client_id: id, cxid: 0, zxid: self.zxid, time: 1000, txn_type: txn.txn_type() };
        self.tree.apply(&h, &txn);
    }
    fn write(&mut self, c: &Caller, r: Request) -> ApplyOutcome {
        self.zxid += 1;
        let time = 1000 + self.zxid;
        let txn = self.tree.prep(c, &r, self.zxid, time);
        let h =
            TxnHeader { client_id: c.session_id, cxid: 0, zxid: self.zxid, time, txn_type: txn.txn_type() };
        self.tree.apply(&h, &txn)
    }
    fn create(&mut self, path: &str, flags: i32) -> Result<Response, Code> {
        let r = CreateRequest {
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
            acl: Acl::open_unsafe(),
            flags,
        };
        self.write(&caller(1, 1), Request::Create2(r)).reply
    }
    fn stat(&mut self, path: &str) -> Stat {
        match self.tree.read(
            &caller(1, 99),
            &Request::Exists(ferrokeeper_proto::ExistsRequest { path: path.into(), watch: false }),
        ) {
            Ok(Response::Exists(e)) => e.stat,
            other => panic!("exists {path}: {other:?}"),
        }
    }
}

#[test]
fn initial_tree_matches_zookeeper() {
    let mut t = T::new();
    let root = t.stat("/");
    assert_eq!((root.cversion, root.num_children, root.czxid, root.data_length), (-1, 1, 0, 0));
    let zk = t.stat("/zookeeper");
    assert_eq!((zk.cversion, zk.num_children), (-2, 2));
    let cfgn = t.stat("/zookeeper/config");
    assert_eq!(cfgn.aversion, -1);
    assert_eq!(t.tree.node_count(), 5);
    assert_eq!(t.tree.approximate_data_size(), 1 + 10 + 16 + 17);
    let r = t
        .tree
        .read(&caller(1, 1), &Request::GetData(GetDataRequest { path: "/zookeeper".into(), watch: false }));
    assert!(matches!(r, Ok(Response::GetData(GetDataResponse { data: Some(ref d), .. })) if d.is_empty()));
}

#[test]
fn sequential_numbering_uses_stored_cversion() {
    let mut t = T::new();
    match t.create("/s", 2) {
        Ok(Response::Create2(c)) => assert_eq!(c.path, "/s0000000000"),
        other => panic!("{other:?}"),
    }
    match t.create("/s", 2) {
        Ok(Response::Create2(c)) => assert_eq!(c.path, "/s0000000001"),
        other => panic!("{other:?}"),
    }
    let root = t.stat("/");
    assert_eq!(root.cversion, 1);
    assert_eq!(root.num_children, 3);
}

#[test]
fn overlay_pipelines_dependent_writes() {
    let mut t = T::new();
    let c = caller(1, 1);
    let a =
        Request::Create(CreateRequest { path: "/a".into(), data: None, acl: Acl::open_unsafe(), flags: 0 });
    let b =
        Request::Create(CreateRequest { path: "/a/b".into(), data: None, acl: Acl::open_unsafe(), flags: 0 });
    let ta = t.tree.prep(&c, &a, 10, 5);
    let tb = t.tree.prep(&c, &b, 11, 6);
    assert!(matches!(tb, Txn::Create { .. }), "{tb:?}");
    let h =
        |z: i64, txn: &Txn| TxnHeader { client_id: 1, cxid: 0, zxid: z, time: 5, txn_type: txn.txn_type() };
    assert!(t.tree.apply(&h(10, &ta), &ta).reply.is_ok());
    assert!(t.tree.has_pending());
    assert!(t.tree.apply(&h(11, &tb), &tb).reply.is_ok());
    assert!(!t.tree.has_pending());
}

/// A leader stepping down forgets its prepped writes; the tree is as applied, and prep sees
/// only applied state again (no rebuild of the tree).
#[test]
fn discard_prepped_forgets_unapplied_writes() {
    let mut t = T::new();
    let c = caller(1, 1);
    assert!(t.create("/kept", 0).is_ok());
    let before = crate::txlog::snapshot::encode(&t.tree);
    let a =
        Request::Create(CreateRequest { path: "/a".into(), data: None, acl: Acl::open_unsafe(), flags: 0 });
    let del = Request::Delete(ferrokeeper_proto::DeleteRequest { path: "/kept".into(), version: -1 });
    assert!(matches!(t.tree.prep(&c, &a, 10, 5), Txn::Create { .. }));
    assert!(matches!(t.tree.prep(&c, &del, 11, 5), Txn::Delete { .. }));
    // Against the overlay, /a exists and /kept is gone.
    assert!(matches!(t.tree.prep(&c, &a, 12, 5), Txn::Error(_)));
    t.tree.discard_prepped();
    assert!(!t.tree.has_pending());
    assert_eq!(crate::txlog::snapshot::encode(&t.tree), before, "the applied tree changed");
    assert!(matches!(t.tree.prep(&c, &a, 10, 5), Txn::Create { .. }), "prep still sees the discarded create");
    t.tree.discard_prepped();
    assert!(
        matches!(t.tree.prep(&c, &del, 10, 5), Txn::Delete { .. }),
        "prep still sees the discarded delete"
    );
}

fn creq(path: &str, flags: i32, acl: Vec<Acl>) -> CreateRequest {
    CreateRequest { path: path.into(), data: None, acl, flags }
}

#[test]
fn create_error_paths() {
    let mut t = T::new();
    let c = caller(1, 1);
    let open = Acl::open_unsafe;
    let run = |t: &mut T, r: Request| t.write(&c, r).reply.err();
    assert_eq!(run(&mut t, Request::Create(creq("/x", 7, open()))), Some(Code::BadArguments));
    assert_eq!(run(&mut t, Request::Create(creq("x", 0, open()))), Some(Code::BadArguments));
    assert_eq!(run(&mut t, Request::Create(creq("/x", 0, vec![]))), Some(Code::InvalidAcl));
    assert_eq!(run(&mut t, Request::Create(creq("/x", 0, Acl::creator_all()))), Some(Code::InvalidAcl));
    assert_eq!(
        run(&mut t, Request::Create(creq("/x", 0, vec![Acl::new(31, "world", "x")]))),
        Some(Code::InvalidAcl)
    );
    assert_eq!(run(&mut t, Request::Create(creq("/no/x", 0, open()))), Some(Code::NoNode));
    assert_eq!(run(&mut t, Request::Create(creq("/zookeeper", 0, open()))), Some(Code::NodeExists));
    assert_eq!(run(&mut t, Request::Create(creq("/", 0, open()))), Some(Code::NodeExists));
    assert_eq!(run(&mut t, Request::Create(creq("/x/", 0, open()))), Some(Code::NoNode));
    // TTL mode through plain create: ttl -1 is invalid.
    assert_eq!(run(&mut t, Request::Create(creq("/x", 5, open()))), Some(Code::BadArguments));
    let ttl = |flags, ttl| {
        Request::CreateTtl(ferrokeeper_proto::CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: open(),
            flags,
            ttl,
        })
    };
    assert_eq!(run(&mut t, ttl(5, 0)), Some(Code::BadArguments));
    assert_eq!(run(&mut t, ttl(5, ephemeral_owner::TTL_MAX + 1)), Some(Code::BadArguments));
    assert_eq!(run(&mut t, ttl(0, 100)), Some(Code::BadArguments));
    assert_eq!(run(&mut t, ttl(5, 100)), None);
    assert_eq!(t.stat("/t").ephemeral_owner, 0, "TTL owners are hidden from clients");
    // Without extended types TTL is Unimplemented.
    let mut plain = T { tree: DataTree::new(TreeConfig::default()), zxid: 0 };
    assert_eq!(run(&mut plain, ttl(5, 100)), Some(Code::Unimplemented));
    // Ephemeral needs a live session; children of ephemerals are refused.
    assert_eq!(
        t.write(&caller(77, 1), Request::Create(creq("/e", 1, open()))).reply.err(),
        Some(Code::SessionExpired)
    );
    assert_eq!(run(&mut t, Request::Create(creq("/e", 1, open()))), None);
    assert_eq!(t.stat("/e").ephemeral_owner, 1);
    assert_eq!(run(&mut t, Request::Create(creq("/e/c", 0, open()))), Some(Code::NoChildrenForEphemerals));
    // CREATE permission on the parent.
    assert_eq!(run(&mut t, Request::Create(creq("/ro", 0, Acl::read_unsafe()))), None);
    assert_eq!(run(&mut t, Request::Create(creq("/ro/c", 0, open()))), Some(Code::NoAuth));
    let sup = Caller { auth: vec![ferrokeeper_proto::Id::new("super", "")], ..caller(1, 1) };
    assert!(t.write(&sup, Request::Create(creq("/ro/c", 0, open()))).reply.is_ok());
    // Error txns still advance the zxid.
    assert_eq!(t.tree.last_processed_zxid(), t.zxid);
}

#[test]
fn stats_follow_create_delete_set() {
    let mut t = T::new();
    t.create("/p", 0).expect("create");
    let z_create = t.zxid;
    t.create("/p/a", 0).expect("create");
    let z_child = t.zxid;
    let p = t.stat("/p");
    assert_eq!((p.czxid, p.pzxid, p.cversion, p.num_children, p.data_length), (z_create, z_child, 1, 1, 1));
    let c = caller(1, 1);
    let r = t.write(&c, Request::Delete(DeleteRequest { path: "/p/a".into(), version: -1 }));
    assert_eq!(r.reply, Ok(Response::Empty));
    let p = t.stat("/p");
    // Delete moves pzxid; the client-visible cversion counts the delete as a change.
    assert_eq!((p.pzxid, p.cversion, p.num_children), (t.zxid, 2, 0));
    let set = |v| Request::SetData(SetDataRequest { path: "/p".into(), data: None, version: v });
    assert_eq!(t.write(&c, set(5)).reply.err(), Some(Code::BadVersion));
    match t.write(&c, set(0)).reply {
        Ok(Response::SetData(s)) => {
            assert_eq!(
                (s.stat.version, s.stat.mzxid, s.stat.data_length, s.stat.mtime),
                (1, t.zxid, 0, 1000 + t.zxid)
            )
        }
        other => panic!("{other:?}"),
    }
    // Null data is stored as null.
    match t.tree.read(&c, &Request::GetData(GetDataRequest { path: "/p".into(), watch: false })) {
        Ok(Response::GetData(g)) => assert_eq!(g.data, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.write(&c, set(-1)).reply.map(|_| ()), Ok(()));
    assert_eq!(t.stat("/p").version, 2);
}

#[test]
fn delete_and_set_acl_error_paths() {
    let mut t = T::new();
    let c = caller(1, 1);
    t.create("/p", 0).expect("create");
    t.create("/p/a", 0).expect("create");
    let del = |p: &str, v| Request::Delete(DeleteRequest { path: p.into(), version: v });
    assert_eq!(t.write(&c, del("/p", -1)).reply.err(), Some(Code::NotEmpty));
    assert_eq!(t.write(&c, del("/p/a", 3)).reply.err(), Some(Code::BadVersion));
    assert_eq!(t.write(&c, del("/nope", -1)).reply.err(), Some(Code::NoNode));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(t.write(&c, del(special, -1)).reply.err(), Some(Code::BadArguments), "{special}");
    }
    let setacl = |p: &str, acl: Vec<Acl>, v| {
        Request::SetAcl(ferrokeeper_proto::SetAclRequest { path: p.into(), acl, version: v })
    };
    assert_eq!(t.write(&c, setacl("/p", vec![], -1)).reply.err(), Some(Code::InvalidAcl));
    assert_eq!(t.write(&c, setacl("/p", Acl::open_unsafe(), 4)).reply.err(), Some(Code::BadVersion));
    match t.write(&c, setacl("/p/a", vec![Acl::new(perms::READ, "world", "anyone")], 0)).reply {
        Ok(Response::SetAcl(s)) => assert_eq!(s.stat.aversion, 1),
        other => panic!("{other:?}"),
    }
    // DELETE perm is checked on the parent, WRITE/ADMIN on the node.
    t.write(&c, setacl("/p", vec![Acl::new(perms::READ, "world", "anyone")], -1)).reply.expect("setacl");
    assert_eq!(t.write(&c, del("/p/a", -1)).reply.err(), Some(Code::NoAuth));
    let sd = Request::SetData(SetDataRequest { path: "/p".into(), data: None, version: -1 });
    assert_eq!(t.write(&c, sd).reply.err(), Some(Code::NoAuth));
    assert_eq!(t.write(&c, setacl("/p", Acl::open_unsafe(), -1)).reply.err(), Some(Code::NoAuth));
    let sd = Request::SetData(SetDataRequest { path: "/zookeeper/config".into(), data: None, version: -1 });
    assert_eq!(t.write(&c, sd).reply.err(), Some(Code::NoAuth));
    assert_eq!(
        t.write(&c, Request::Check(ferrokeeper_proto::CheckVersionRequest::default())).reply.err(),
        Some(Code::Unimplemented)
    );
}

#[test]
fn get_acl_masks_digest_without_admin() {
    let mut t = T::new();
    let user = ferrokeeper_proto::Id::new("digest", "u:hash");
    let c = Caller { auth: vec![user.clone()], ..caller(1, 1) };
    let acl = vec![Acl::new(perms::READ, "digest", "u:hash")];
    t.write(&c, Request::Create(creq("/d", 0, acl))).reply.expect("create");
    match t.tree.read(&c, &Request::GetAcl(ferrokeeper_proto::GetAclRequest { path: "/d".into() })) {
        Ok(Response::GetAcl(g)) => assert_eq!(g.acl[0].id.id, "u:x"),
        other => panic!("{other:?}"),
    }
    let other = caller(1, 2);
    assert_eq!(
        t.tree.read(&other, &Request::GetAcl(ferrokeeper_proto::GetAclRequest { path: "/d".into() })).err(),
        Some(Code::NoAuth)
    );
    // creator_all expands to the caller's digest id.
    t.write(&c, Request::Create(creq("/e", 0, Acl::creator_all()))).reply.expect("create");
    let sup = Caller { auth: vec![ferrokeeper_proto::Id::new("super", "")], ..caller(1, 1) };
    match t.tree.read(&sup, &Request::GetAcl(ferrokeeper_proto::GetAclRequest { path: "/e".into() })) {
        Ok(Response::GetAcl(g)) => assert_eq!(g.acl, vec![Acl { perms: perms::ALL, id: user }]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn multi_all_or_nothing() {
    let mut t = T::new();
    let c = caller(1, 1);
    let ok_multi = MultiRequest {
        ops: vec![
            MultiOp::Create { op: op::CREATE, request: creq("/m", 0, Acl::open_unsafe()) },
            MultiOp::Create { op: op::CREATE2, request: creq("/m/a", 0, Acl::open_unsafe()) },
            MultiOp::Check(ferrokeeper_proto::CheckVersionRequest { path: "/m/a".into(), version: 0 }),
            MultiOp::SetData(SetDataRequest { path: "/m/a".into(), data: None, version: 0 }),
            MultiOp::Delete(DeleteRequest { path: "/m/a".into(), version: 1 }),
        ],
    };
    match t.write(&c, Request::Multi(ok_multi)).reply {
        Ok(Response::Multi(m)) => {
            assert_eq!(m.results[0], OpResult::Create { path: "/m".into() });
            // ZooKeeper turns a create2 inside a multi into a plain create: no stat.
            assert_eq!(m.results[1], OpResult::Create { path: "/m/a".into() });
            assert_eq!(m.results[2], OpResult::Check);
            assert!(matches!(m.results[3], OpResult::SetData { .. }));
            assert_eq!(m.results[4], OpResult::Delete);
        }
        other => panic!("{other:?}"),
    }
    let before = t.tree.digest();
    let bad = MultiRequest {
        ops: vec![
            MultiOp::Create { op: op::CREATE, request: creq("/n", 0, Acl::open_unsafe()) },
            MultiOp::Check(ferrokeeper_proto::CheckVersionRequest { path: "/n".into(), version: 3 }),
            MultiOp::Delete(DeleteRequest { path: "/m".into(), version: -1 }),
        ],
    };
    let zxid_before = t.zxid;
    match t.write(&c, Request::Multi(bad)).reply {
        Ok(Response::Multi(m)) => assert_eq!(
            m.results,
            vec![OpResult::Error { err: 0 }, OpResult::Error { err: -103 }, OpResult::Error { err: -2 }]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.tree.digest(), before);
    assert_eq!(t.tree.last_processed_zxid(), zxid_before + 1);
    assert!(!t.tree.has_pending(), "failed multi must roll back its overlay");
    assert_eq!(
        t.tree
            .read(&c, &Request::Exists(ferrokeeper_proto::ExistsRequest { path: "/n".into(), watch: false }))
            .err(),
        Some(Code::NoNode)
    );
}

fn ev(conn: u64, kind: i32, path: &str) -> (u64, WatcherEvent) {
    (conn, event(kind, path))
}

#[test]
fn watch_trigger_table() {
    let mut t = T::new();
    let w = caller(1, 7);
    // exists on a missing node registers a data watch that fires on create.
    let ex = |p: &str| Request::Exists(ferrokeeper_proto::ExistsRequest { path: p.into(), watch: true });
    assert_eq!(t.tree.read(&w, &ex("/a")).err(), Some(Code::NoNode));
    let gc = Request::GetChildren(ferrokeeper_proto::GetChildrenRequest { path: "/".into(), watch: true });
    t.tree.read(&w, &gc).expect("getChildren");
    let out = t.write(&caller(1, 1), Request::Create(creq("/a", 0, Acl::open_unsafe())));
    assert_eq!(
        out.events_plain(),
        vec![ev(7, event_type::NODE_CREATED, "/a"), ev(7, event_type::NODE_CHILDREN_CHANGED, "/")]
    );
    // One-shot: a second create fires nothing.
    let out = t.write(&caller(1, 1), Request::Create(creq("/b", 0, Acl::open_unsafe())));
    assert!(out.events_plain().is_empty());
    // Data + child watch on the same path: one NodeDeleted for the connection.
    let gd = Request::GetData(GetDataRequest { path: "/a".into(), watch: true });
    t.tree.read(&w, &gd).expect("getData");
    let gca = Request::GetChildren(ferrokeeper_proto::GetChildrenRequest { path: "/a".into(), watch: true });
    t.tree.read(&w, &gca).expect("getChildren");
    let out = t.write(&caller(1, 1), Request::Delete(DeleteRequest { path: "/a".into(), version: -1 }));
    assert_eq!(out.events_plain(), vec![ev(7, event_type::NODE_DELETED, "/a")]);
    assert_eq!(t.tree.watch_stats(), WatchStats::default());
    // setData fires NodeDataChanged; setACL fires nothing.
    t.tree.read(&w, &Request::GetData(GetDataRequest { path: "/b".into(), watch: true })).expect("getData");
    let setacl = Request::SetAcl(ferrokeeper_proto::SetAclRequest {
        path: "/b".into(),
        acl: Acl::open_unsafe(),
        version: -1,
    });
    assert!(t.write(&caller(1, 1), setacl).events_plain().is_empty());
    let sd = Request::SetData(SetDataRequest { path: "/b".into(), data: None, version: -1 });
    assert_eq!(t.write(&caller(1, 1), sd).events_plain(), vec![ev(7, event_type::NODE_DATA_CHANGED, "/b")]);
}

#[test]
fn persistent_and_recursive_watches() {
    let mut t = T::new();
    let w = caller(1, 7);
    let r = caller(1, 8);
    let add = |p: &str, mode| Request::AddWatch(ferrokeeper_proto::AddWatchRequest { path: p.into(), mode });
    assert_eq!(t.tree.read(&w, &add("/p", 0)), Ok(Response::AddWatch(ErrorResponse { err: 0 })));
    t.tree.read(&r, &add("/", 1)).expect("addWatch");
    let out = t.write(&caller(1, 1), Request::Create(creq("/p", 0, Acl::open_unsafe())));
    assert_eq!(
        out.events_plain(),
        vec![ev(7, event_type::NODE_CREATED, "/p"), ev(8, event_type::NODE_CREATED, "/p")]
    );
    let out = t.write(&caller(1, 1), Request::Create(creq("/p/c", 0, Acl::open_unsafe())));
    assert_eq!(
        out.events_plain(),
        vec![ev(8, event_type::NODE_CREATED, "/p/c"), ev(7, event_type::NODE_CHILDREN_CHANGED, "/p")]
    );
    let out = t.write(&caller(1, 1), Request::Create(creq("/p/c/d", 0, Acl::open_unsafe())));
    assert_eq!(out.events_plain(), vec![ev(8, event_type::NODE_CREATED, "/p/c/d")]);
    // Still there after firing.
    let chk = |p: &str, ty| {
        Request::CheckWatches(ferrokeeper_proto::CheckWatchesRequest { path: p.into(), watcher_type: ty })
    };
    assert_eq!(t.tree.read(&w, &chk("/p", 4)), Ok(Response::Empty));
    // ZooKeeper's containsWatcher: any watch on the exact path matches a Data check.
    assert_eq!(t.tree.read(&w, &chk("/p", 2)), Ok(Response::Empty));
    assert_eq!(t.tree.read(&w, &chk("/q", 2)).err(), Some(Code::NoWatcher));
    assert_eq!(t.tree.read(&r, &chk("/", 5)), Ok(Response::Empty));
    assert_eq!(t.tree.read(&r, &chk("/", 3)), Ok(Response::Empty));
    let rm = |p: &str, ty| {
        Request::RemoveWatches(ferrokeeper_proto::RemoveWatchesRequest { path: p.into(), watcher_type: ty })
    };
    assert_eq!(t.tree.read(&w, &rm("/p", 4)), Ok(Response::Empty));
    assert_eq!(t.tree.read(&w, &rm("/p", 4)).err(), Some(Code::NoWatcher));
    assert_eq!(t.tree.watches_by_path().keys().cloned().collect::<Vec<_>>(), vec!["/".to_owned()]);
    t.tree.remove_connection(8);
    assert_eq!(t.tree.watch_stats().total, 0);
}

#[test]
fn set_watches_relative_zxid() {
    let mut t = T::new();
    t.create("/old", 0).expect("create");
    let rel = t.zxid;
    t.create("/new", 0).expect("create");
    t.create("/old/c", 0).expect("create");
    let sw = SetWatches2 {
        relative_zxid: rel,
        data_watches: vec!["/old".into(), "/new".into(), "/gone".into()],
        exist_watches: vec!["/new".into(), "/absent".into()],
        child_watches: vec!["/old".into(), "/new".into(), "/gone".into()],
        persistent_watches: vec!["/x".into()],
        persistent_recursive_watches: vec!["/y".into()],
    };
    let evs = t.tree.set_watches(5, &sw);
    assert_eq!(
        evs,
        vec![
            event(event_type::NODE_DATA_CHANGED, "/new"),
            event(event_type::NODE_DELETED, "/gone"),
            event(event_type::NODE_CREATED, "/new"),
            event(event_type::NODE_CHILDREN_CHANGED, "/old"),
            event(event_type::NODE_CHILDREN_CHANGED, "/new"),
            event(event_type::NODE_DELETED, "/gone"),
        ]
    );
    let by_conn = t.tree.watches_by_connection();
    assert_eq!(by_conn[&5], vec!["/absent", "/old", "/x", "/y"]);
}

#[test]
fn close_session_deletes_ephemerals_and_reads() {
    let mut t = T::new();
    t.session(2);
    let c2 = caller(2, 2);
    t.write(&c2, Request::Create(creq("/e1", 1, Acl::open_unsafe()))).reply.expect("create");
    t.write(&c2, Request::Create(creq("/e2", 3, Acl::open_unsafe()))).reply.expect("create");
    let ge =
        |p: &str| Request::GetEphemerals(ferrokeeper_proto::GetEphemeralsRequest { prefix_path: p.into() });
    assert_eq!(
        t.tree.read(&c2, &ge("/")),
        Ok(Response::GetEphemerals(GetEphemeralsResponse {
            ephemerals: vec!["/e1".into(), "/e20000000001".into()]
        }))
    );
    assert_eq!(
        t.tree.read(&c2, &ge("/e2")),
        Ok(Response::GetEphemerals(GetEphemeralsResponse { ephemerals: vec!["/e20000000001".into()] }))
    );
    assert_eq!(
        t.tree.read(&caller(1, 1), &ge("")),
        Ok(Response::GetEphemerals(GetEphemeralsResponse { ephemerals: vec![] }))
    );
    let n =
        Request::GetAllChildrenNumber(ferrokeeper_proto::GetAllChildrenNumberRequest { path: "/".into() });
    assert_eq!(
        t.tree.read(&c2, &n),
        Ok(Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 5 }))
    );
    t.tree
        .read(
            &caller(1, 9),
            &Request::Exists(ferrokeeper_proto::ExistsRequest { path: "/e1".into(), watch: true }),
        )
        .expect("exists");
    let out = t.write(&c2, Request::CloseSession);
    assert_eq!(out.events_plain(), vec![ev(9, event_type::NODE_DELETED, "/e1")]);
    assert!(t.tree.ephemerals().is_empty());
    assert!(!t.tree.sessions().contains_key(&2));
    assert_eq!(
        t.tree.read(&c2, &Request::Sync(ferrokeeper_proto::SyncRequest::default())).err(),
        Some(Code::Unimplemented)
    );
}

#[test]
fn reapable_containers_and_ttls() {
    let mut t = T::new();
    let c = caller(1, 1);
    t.write(&c, Request::CreateContainer(creq("/c", 4, Acl::open_unsafe()))).reply.expect("create");
    t.write(&c, Request::CreateContainer(creq("/unused", 4, Acl::open_unsafe()))).reply.expect("create");
    t.write(&c, Request::Create(creq("/c/x", 0, Acl::open_unsafe()))).reply.expect("create");
    let ttl = Request::CreateTtl(ferrokeeper_proto::CreateTtlRequest {
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 5,
        ttl: 100,
    });
    t.write(&c, ttl).reply.expect("create");
    assert_eq!(t.stat("/c").ephemeral_owner, 0);
    assert!(t.tree.reapable(1_000_000, 10).contains(&"/t".to_owned()));
    assert!(t.tree.reapable(1000, 10).is_empty());
    t.write(&c, Request::Delete(DeleteRequest { path: "/c/x".into(), version: -1 })).reply.expect("delete");
    assert_eq!(t.tree.reapable(1_000_000, 10), vec!["/c".to_owned(), "/t".to_owned()]);
    assert_eq!(t.tree.reapable(1_000_000, 1).len(), 1);
    t.tree.config.container_max_never_used_interval_ms = 10;
    assert_eq!(t.tree.reapable(1_000_000, 10).len(), 3);
    let dc = |p: &str| Request::DeleteContainer(ferrokeeper_proto::DeleteContainerRequest { path: p.into() });
    assert!(t.write(&c, dc("/c")).reply.is_ok());
    t.write(&c, Request::Create(creq("/eph", 1, Acl::open_unsafe()))).reply.expect("create");
    assert_eq!(t.write(&c, dc("/eph")).reply.err(), Some(Code::BadVersion));
}

mod model {
    //! A proptest of the tree against a plain map of path → (data, version).
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Create(usize, Option<Vec<u8>>),
        Delete(usize, i32),
        Set(usize, Option<Vec<u8>>, i32),
    }

    const PATHS: [&str; 6] = ["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/q"];

    fn op() -> impl Strategy<Value = Op> {
        let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4));
        prop_oneof![
            (0..PATHS.len(), data.clone()).prop_map(|(p, d)| Op::Create(p, d)),
            (0..PATHS.len(), -1..3i32).prop_map(|(p, v)| Op::Delete(p, v)),
            (0..PATHS.len(), data, -1..3i32).prop_map(|(p, d, v)| Op::Set(p, d, v)),
        ]
    }

    fn request(o: &Op) -> Request {
        match o {
            Op::Create(p, d) => Request::Create(CreateRequest {
                path: PATHS[*p].into(),
                data: d.clone().map(Bytes::from),
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            Op::Delete(p, v) => Request::Delete(DeleteRequest { path: PATHS[*p].into(), version: *v }),
            Op::Set(p, d, v) => Request::SetData(SetDataRequest {
                path: PATHS[*p].into(),
                data: d.clone().map(Bytes::from),
                version: *v,
            }),
        }
    }

    type Model = BTreeMap<String, (Option<Vec<u8>>, i32)>;

    fn model_apply(m: &mut Model, o: &Op) -> Result<(), Code> {
        match o {
            Op::Create(p, d) => {
                let path = PATHS[*p];
                let parent = path::parent(path);
                if parent != "/" && !m.contains_key(parent) {
                    return Err(Code::NoNode);
                }
                if m.contains_key(path) {
                    return Err(Code::NodeExists);
                }
                m.insert(path.into(), (d.clone(), 0));
                Ok(())
            }
            Op::Delete(p, v) => {
                let path = PATHS[*p];
                let (_, ver) = m.get(path).ok_or(Code::NoNode)?;
                if *v != -1 && v != ver {
                    return Err(Code::BadVersion);
                }
                if m.keys().any(|k| k.starts_with(&format!("{path}/"))) {
                    return Err(Code::NotEmpty);
                }
                m.remove(path);
                Ok(())
            }
            Op::Set(p, d, v) => {
                let path = PATHS[*p];
                let entry = m.get_mut(path).ok_or(Code::NoNode)?;
                if *v != -1 && *v != entry.1 {
                    return Err(Code::BadVersion);
                }
                *entry = (d.clone(), entry.1 + 1);
                Ok(())
            }
        }
    }

    proptest! {
        #[test]
        fn tree_matches_model(ops in proptest::collection::vec(op(), 1..40), pipeline in 1usize..4) {
            let c = caller(1, 1);
            let mut tree = DataTree::new(cfg());
            let mut replica = DataTree::new(cfg());
            let mut m = Model::new();
            let mut zxid = 0;
            // Prep up to `pipeline` txns ahead of apply, as the group-commit shell does.
            for chunk in ops.chunks(pipeline) {
                let mut prepped = Vec::new();
                for o in chunk {
                    zxid += 1;
                    let txn = tree.prep(&c, &request(o), zxid, zxid * 10);
                    prepped.push((o, zxid, txn));
                }
                for (o, z, txn) in prepped {
                    let h = TxnHeader { client_id: 1, cxid: 0, zxid: z, time: z * 10, txn_type: txn.txn_type() };
                    let out = tree.apply(&h, &txn);
                    replica.apply(&h, &txn);
                    let expect = model_apply(&mut m, o);
                    prop_assert_eq!(out.reply.clone().map(|_| ()), expect, "op {:?}", o);
                }
            }
            prop_assert!(!tree.has_pending());
            prop_assert_eq!(tree.digest(), replica.digest());
            for (p, (d, v)) in &m {
                let r = tree.read(&c, &Request::GetData(GetDataRequest { path: p.clone(), watch: false }));
                match r {
                    Ok(Response::GetData(g)) => {
                        prop_assert_eq!(g.data.map(|b| b.to_vec()), d.clone());
                        prop_assert_eq!(g.stat.version, *v);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            prop_assert_eq!(tree.node_count(), m.len() + 5);
        }
    }
}

#[test]
fn multi_create_kind_comes_from_the_flags() {
    let mut t = T::new();
    let c = caller(1, 1);
    // createTTL with a non-TTL mode is a plain create inside a multi (the ttl is dropped).
    let ttl_plain =
        CreateTtlRequest { path: "/t".into(), data: None, acl: Acl::open_unsafe(), flags: 0, ttl: 5 };
    let container = MultiOp::Create { op: op::CREATE, request: creq("/k", 4, Acl::open_unsafe()) };
    match t
        .write(&c, Request::Multi(MultiRequest { ops: vec![MultiOp::CreateTtl(ttl_plain), container] }))
        .reply
    {
        Ok(Response::Multi(m)) => {
            assert_eq!(m.results[0], OpResult::Create { path: "/t".into() });
            assert!(matches!(m.results[1], OpResult::Create2 { .. }), "{:?}", m.results[1]);
        }
        other => panic!("{other:?}"),
    }
    // A create header with TTL flags cannot be prepped at all: the whole multi fails, but only
    // when no earlier op failed first.
    let ttl_via_create = MultiOp::Create { op: op::CREATE, request: creq("/u", 5, Acl::open_unsafe()) };
    let multi = MultiRequest { ops: vec![ttl_via_create.clone()] };
    assert_eq!(t.write(&c, Request::Multi(multi)).reply, Err(Code::MarshallingError));
    let earlier_failure = MultiOp::Delete(DeleteRequest { path: "/missing".into(), version: -1 });
    let multi = MultiRequest { ops: vec![earlier_failure, ttl_via_create] };
    match t.write(&c, Request::Multi(multi)).reply {
        Ok(Response::Multi(m)) => assert_eq!(
            m.results,
            vec![
                OpResult::Error { err: Code::NoNode.as_i32() },
                OpResult::Error { err: Code::RuntimeInconsistency.as_i32() }
            ]
        ),
        other => panic!("{other:?}"),
    }
}

/// Children are the node map's keys just under the parent: names that sort around '/' (a
/// sibling "a-x" sorts between "a" and "a/..."), subtrees skipped, counts kept by create,
/// delete and restore.
#[test]
fn children_come_from_the_node_map() {
    let mut t = T::new();
    for p in ["/p", "/p/a", "/p/a/deep", "/p/a/deep/er", "/p/a-x", "/p/a-x/y", "/p/a!", "/p/b", "/p/a0", "/q"]
    {
        assert!(t.create(p, 0).is_ok(), "{p}");
    }
    let list = |t: &mut T, path: &str| match t.tree.read(
        &caller(1, 99),
        &Request::GetChildren(ferrokeeper_proto::GetChildrenRequest { path: path.into(), watch: false }),
    ) {
        Ok(Response::GetChildren(r)) => r.children,
        other => panic!("getChildren {path}: {other:?}"),
    };
    assert_eq!(list(&mut t, "/p"), ["a", "a!", "a-x", "a0", "b"]);
    assert_eq!(list(&mut t, "/p/a"), ["deep"]);
    assert_eq!(list(&mut t, "/p/b"), Vec::<String>::new());
    assert_eq!(list(&mut t, "/"), ["p", "q", "zookeeper"]);
    assert_eq!(t.stat("/p").num_children, 5);
    let delete = Request::Delete(DeleteRequest { path: "/p/a!".into(), version: -1 });
    assert!(t.write(&caller(1, 1), delete).reply.is_ok());
    assert_eq!(list(&mut t, "/p"), ["a", "a-x", "a0", "b"]);
    assert_eq!(t.stat("/p").num_children, 4);
    // Restored from a snapshot: the same lists and counts.
    let bytes = crate::txlog::snapshot::encode(&t.tree);
    let mut restored =
        T { tree: crate::txlog::snapshot::decode(&bytes, cfg()).expect("restore"), zxid: t.zxid };
    assert_eq!(list(&mut restored, "/p"), ["a", "a-x", "a0", "b"]);
    assert_eq!(restored.stat("/p").num_children, 4);
    assert_eq!(restored.stat("/").num_children, 3);
}
