//! Unit tests of `DataTree`: stats, sequential numbering, error paths, watches, the overlay.

use super::*;
use ferrokeeper_proto::multi::MultiRequest;
use ferrokeeper_proto::{CreateRequest, DeleteRequest, GetDataRequest, SetDataRequest};

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
    let _ = (MultiRequest::default(), DeleteRequest::default(), SetDataRequest::default());
}
