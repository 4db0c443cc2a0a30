//! Unit tests of the ZooKeeper formats and of the replay rules (the integration test
//! `server/tests/zookeeper_import.rs` runs them against files a real ZooKeeper wrote).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use bytes::Bytes;
use ferrokeeper_proto::op;
use ferrokeeper_proto::txn::*;
use ferrokeeper_proto::{Acl, StatPersisted};

use super::log::{self, End};
use super::replay::{Replay, ttl_owner};
use super::*;

fn stat(zxid: i64, cversion: i32, owner: i64) -> StatPersisted {
    StatPersisted {
        czxid: zxid,
        mzxid: zxid,
        ctime: 1000 + zxid,
        mtime: 1000 + zxid,
        version: 0,
        cversion,
        aversion: 0,
        ephemeral_owner: owner,
        pzxid: zxid,
    }
}

fn node(zxid: i64, cversion: i32, owner: i64, children: &[&str]) -> ZkNode {
    ZkNode {
        data: Some(Bytes::from_static(b"d")),
        acl: open_acl_unsafe(),
        stat: stat(zxid, cversion, owner),
        children: children.iter().map(|c| (*c).to_owned()).collect::<BTreeSet<_>>(),
    }
}

/// "/" → "/a" (cversion 1) → "/a/x" (ephemeral of session 7); "/b" with a digest ACL.
fn sample() -> ZkState {
    let mut state = ZkState { zxid: 5, ..ZkState::default() };
    state.sessions.insert(7, 30_000);
    state.nodes.insert("/".into(), node(0, 2, 0, &["a", "b"]));
    state.nodes.insert("/a".into(), node(2, 1, 0, &["x"]));
    state.nodes.insert("/a/x".into(), node(3, 0, 7, &[]));
    let mut b = node(4, 0, 0, &[]);
    b.acl = vec![Acl::new(31, "digest", "alice:hash="), Acl::new(1, "world", "anyone")];
    b.data = None;
    state.nodes.insert("/b".into(), b);
    state
}

fn header(zxid: i64, client_id: i64, txn: &Txn) -> TxnHeader {
    TxnHeader { client_id, cxid: 1, zxid, time: 2000 + zxid, txn_type: txn.txn_type() }
}

fn create(path: &str, parent_c_version: i32, ephemeral: bool) -> Txn {
    let acl = open_acl_unsafe();
    let txn = CreateTxn { path: path.into(), data: None, acl, ephemeral, parent_c_version };
    Txn::Create { op: op::CREATE, txn }
}

#[test]
fn snapshot_round_trips_and_every_cut_or_flip_is_an_error() {
    let state = sample();
    let bytes = snap::encode(&state);
    assert!(snap::looks_whole(&bytes));
    assert_eq!(snap::decode(&bytes, 5).unwrap(), state);
    for len in 0..bytes.len() {
        assert!(snap::decode(&bytes[..len], 5).is_err(), "a snapshot cut at {len} was accepted");
    }
    let seal = bytes.len() - 13;
    for at in 0..seal {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x20;
        let (offset, _) = snap::decode(&flipped, 5).expect_err("a flipped byte was accepted");
        assert!(offset <= bytes.len() as u64, "offset {offset} past the end");
    }
}

#[test]
fn snapshot_errors_name_the_offset() {
    let bytes = snap::encode(&sample());
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert_eq!(snap::decode(&wrong_magic, 5).unwrap_err().0, 0);
    let mut data = bytes.clone();
    let last_data = bytes.len() - 60;
    data[last_data] ^= 1;
    let (offset, reason) = snap::decode(&data, 5).unwrap_err();
    assert!(reason.contains("checksum mismatch") || offset > 0, "{offset} {reason}");
}

fn sample_log() -> (Vec<u8>, Vec<(TxnHeader, Txn)>) {
    let txns = vec![
        Txn::CreateSession(CreateSessionTxn { time_out: 10_000 }),
        create("/c", 3, true),
        Txn::SetData(SetDataTxn { path: "/c".into(), data: Some(Bytes::from_static(b"v")), version: 1 }),
        Txn::Multi(vec![
            create("/d", 4, false),
            Txn::Delete { op: op::DELETE, txn: DeleteTxn { path: "/b".into() } },
        ]),
        Txn::CloseSession(CloseSessionTxn { paths_to_delete: vec!["/c".into()] }),
    ];
    let mut bytes = Vec::new();
    log::encode_header(&mut bytes);
    let mut logged = Vec::new();
    for (i, txn) in txns.into_iter().enumerate() {
        let h = header(6 + i as i64, 9, &txn);
        log::encode_entry(&mut bytes, &h, &txn);
        logged.push((h, txn));
    }
    (bytes, logged)
}

#[test]
fn log_reads_records_up_to_preallocation_or_a_torn_tail() {
    let (bytes, logged) = sample_log();
    let (entries, end) = log::decode(&bytes).unwrap();
    assert_eq!(end, End::Clean);
    let read: Vec<_> = entries.into_iter().map(|e| (e.header, e.txn)).collect();
    assert_eq!(read, logged);
    let mut padded = bytes.clone();
    padded.resize(bytes.len() + 4096, 0);
    assert_eq!(log::decode(&padded).unwrap().0.len(), logged.len());
    // Every cut inside the records is a torn tail with the whole records before it.
    for len in 16..bytes.len() {
        let (entries, end) = log::decode(&bytes[..len]).unwrap();
        assert!(entries.len() < logged.len() || end == End::Clean);
        if let End::Torn(at) = end {
            assert!(at as usize <= len);
        }
    }
    // A record whose 'B' is missing (torn write over preallocated zeros) ends the data.
    let (entries, _) = log::decode(&padded).unwrap();
    let last = entries.last().unwrap().offset as usize;
    let mut no_end_byte = padded.clone();
    no_end_byte[bytes.len() - 1] = 0;
    let (entries, end) = log::decode(&no_end_byte).unwrap();
    assert_eq!((entries.len(), end), (logged.len() - 1, End::Torn(last as u64)));
}

#[test]
fn log_damage_is_an_error_naming_the_offset() {
    let (bytes, _) = sample_log();
    let (entries, _) = log::decode(&bytes).unwrap();
    let second = entries[1].offset as usize;
    let mut flipped = bytes.clone();
    flipped[second + 20] ^= 0x01;
    let (offset, reason) = log::decode(&flipped).unwrap_err();
    assert_eq!(offset, second as u64);
    assert!(reason.contains("checksum mismatch"), "{reason}");
    let mut magic = bytes.clone();
    magic[1] = 0;
    assert_eq!(log::decode(&magic).unwrap_err().0, 0);
    let mut negative = bytes.clone();
    negative[second + 8..second + 12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(log::decode(&negative).unwrap_err().0, second as u64 + 8);
}

#[test]
fn garbage_never_panics() {
    let (log_bytes, _) = sample_log();
    let snap_bytes = snap::encode(&sample());
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..2000 {
        let mut l = log_bytes.clone();
        let mut s = snap_bytes.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % l.len() as u64) as usize;
            l[at] = (seed >> 8) as u8;
            let at = (seed % s.len() as u64) as usize;
            s[at] = (seed >> 16) as u8;
        }
        let _ = log::decode(&l);
        let _ = snap::decode(&s, 1);
    }
}

#[test]
fn replay_applies_a_log_and_closes_sessions() {
    let (bytes, _) = sample_log();
    let mut replay = Replay::new(sample());
    for entry in log::decode(&bytes).unwrap().0 {
        replay.apply(&entry.header, &entry.txn);
    }
    let state = &replay.state;
    assert_eq!(state.zxid, 10);
    assert!(!state.nodes.contains_key("/c"), "closeSession deleted the ephemeral");
    assert!(!state.nodes.contains_key("/b"), "the multi's delete");
    assert_eq!(state.nodes["/d"].stat.czxid, 9);
    assert_eq!(state.nodes["/"].stat.cversion, 4, "from the txns' parentCVersion");
    assert_eq!(state.nodes["/"].stat.pzxid, 10, "the delete at closeSession moved pzxid");
    assert_eq!(state.sessions.keys().copied().collect::<Vec<_>>(), vec![7]);
}

#[test]
fn replay_onto_a_fuzzy_snapshot_follows_zookeeper() {
    let mut replay = Replay::new(sample());
    // A create already in the snapshot: NodeExists sets the node's ACL and, for opcode 1,
    // the parent's cversion/pzxid when the txn's is higher.
    let mut txn = create("/a/x", 5, false);
    if let Txn::Create { txn, .. } = &mut txn {
        txn.acl = vec![Acl::new(1, "world", "anyone")];
    }
    replay.apply(&header(11, 7, &txn), &txn);
    assert_eq!(replay.state.nodes["/a"].stat.cversion, 5);
    assert_eq!(replay.state.nodes["/a"].stat.pzxid, 11);
    assert_eq!(replay.state.nodes["/a/x"].acl, vec![Acl::new(1, "world", "anyone")]);
    assert_eq!(replay.state.nodes["/a/x"].stat.czxid, 3, "the node itself is kept");
    // create2 (15) gets no such fix-up.
    let txn = Txn::Create { op: op::CREATE2, txn: CreateTxn { parent_c_version: 9, ..Default::default() } };
    let mut txn2 = txn.clone();
    if let Txn::Create { txn, .. } = &mut txn2 {
        txn.path = "/a/x".into();
    }
    replay.apply(&header(12, 7, &txn2), &txn2);
    assert_eq!(replay.state.nodes["/a"].stat.cversion, 5);
    // A delete of a node already gone still moves its parent's pzxid, never its cversion.
    let delete = Txn::Delete { op: op::DELETE, txn: DeleteTxn { path: "/a/gone".into() } };
    replay.apply(&header(13, 7, &delete), &delete);
    assert_eq!((replay.state.nodes["/a"].stat.pzxid, replay.state.nodes["/a"].stat.cversion), (13, 5));
    // setData of a missing node and a multi with an error change nothing.
    let multi = Txn::Multi(vec![create("/never", 3, false), Txn::Error(ErrorTxn { err: -101 })]);
    replay.apply(&header(14, 7, &multi), &multi);
    assert!(!replay.state.nodes.contains_key("/never"));
    assert_eq!(replay.failed, 3, "NodeExists twice, NoNode once; the failed multi is an error txn");
    assert_eq!(replay.applied, 4);
    // TTL and container owners are not sessions; a session gone from the table loses its
    // ephemerals at load.
    let ttl = Txn::CreateTtl(CreateTtlTxn {
        path: "/t".into(),
        ttl: 5000,
        parent_c_version: 3,
        ..Default::default()
    });
    replay.apply(&header(15, 7, &ttl), &ttl);
    assert_eq!(replay.state.nodes["/t"].stat.ephemeral_owner, ttl_owner(5000));
    replay.state.sessions.clear();
    replay.kill_dead_sessions();
    assert!(!replay.state.nodes.contains_key("/a/x"));
    assert!(replay.state.nodes.contains_key("/t"));
    assert_eq!(replay.state.nodes["/a"].stat.pzxid, 15, "deleted at the last zxid");
}

#[test]
fn reachable_skips_orphans_and_orders_parents_first() {
    let mut state = sample();
    state.nodes.insert("/zz/orphan".into(), node(9, 0, 0, &[]));
    let paths: Vec<&str> = state.reachable().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, vec!["/", "/a", "/a/x", "/b"]);
}
