//! Snapshots: the whole tree and session table at one zxid, in one checksummed file.
//!
//! ```text
//! snapshot = header(32) body trailer(8)
//! header   = "FKSN" | version u32 | zxid i64 | reserved[12] | crc32c u32 (of bytes 0..28)
//! body     = session_count i32 | (session_id i64, timeout i32)*
//!            node_count i64   | (path ustring, data buffer, acl vector<ACL>, StatPersisted)*
//! trailer  = crc32c u32 (of body) | "FKSE"
//! ```
//! A snapshot is written to `snapshot.<zxid>.tmp`, fsynced, renamed into place and the
//! directory fsynced, so a file named `snapshot.<zxid>` is whole or absent; a damaged one is
//! skipped (with a warning) in favour of the next older.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes};
use ferrokeeper_proto::jute::Jute;
use ferrokeeper_proto::{Acl, StatPersisted};

use crate::tree::{DataTree, TreeConfig};

use ferrokeeper_proto::fksnap::{self, END, MAGIC, VERSION};

/// Serializes the tree as of its last applied zxid, in one go.
pub fn encode(tree: &DataTree) -> Vec<u8> {
    let mut encoder = Encoder::start(tree.last_processed_zxid(), tree.sessions(), 0);
    tree.for_each_node(|path, data, acl, stat| encoder.node(path, data, acl, stat));
    encoder.finish()
}

/// Writes a snapshot file's bytes: the header and sessions at start, nodes one by one.
pub struct Encoder {
    out: Vec<u8>,
    body_start: usize,
    count_at: usize,
    count: i64,
    zxid: i64,
}

impl Encoder {
    /// `capacity`: the expected size in bytes (0: unknown).
    pub fn start(zxid: i64, sessions: &BTreeMap<i64, i32>, capacity: usize) -> Encoder {
        let mut out = Vec::with_capacity(capacity.max(64 * 1024));
        out.extend_from_slice(&MAGIC);
        out.put_u32(VERSION);
        out.put_i64(zxid);
        out.extend_from_slice(&[0u8; 12]);
        let crc = crc32c::crc32c(&out[0..28]);
        out.put_u32(crc);
        let body_start = out.len();
        out.put_i32(sessions.len() as i32);
        for (id, timeout) in sessions {
            out.put_i64(*id);
            out.put_i32(*timeout);
        }
        let count_at = out.len();
        out.put_i64(0);
        Encoder { out, body_start, count_at, count: 0, zxid }
    }

    /// The zxid the snapshot is taken at.
    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    /// One node record (the jute encoding of path, data, ACL vector and StatPersisted).
    pub fn node(&mut self, path: &str, data: &Option<Bytes>, acl: &[Acl], stat: &StatPersisted) {
        let out = &mut self.out;
        out.put_i32(path.len() as i32);
        out.put_slice(path.as_bytes());
        data.write(out);
        out.put_i32(acl.len() as i32);
        for entry in acl {
            entry.write(out);
        }
        stat.write(out);
        self.count += 1;
    }

    /// Runs one chunk of `tree`'s snapshot under way ([`DataTree::snapshot_begin`]): up to
    /// `limit` nodes. True when all nodes are in.
    pub fn chunk(&mut self, tree: &mut DataTree, limit: usize) -> bool {
        tree.snapshot_chunk(limit, |path, data, acl, stat| self.node(path, data, acl, stat))
    }

    pub fn finish(mut self) -> Vec<u8> {
        let count_at = self.count_at;
        self.out[count_at..count_at + 8].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.out[self.body_start..]);
        self.out.put_u32(crc);
        self.out.extend_from_slice(&END);
        self.out
    }
}

/// Parses a snapshot file's bytes into a tree.
pub fn decode(bytes: &[u8], config: TreeConfig) -> Result<DataTree, String> {
    let snap = fksnap::decode(bytes)?;
    DataTree::restore(config, snap.zxid, snap.sessions, snap.nodes)
}

pub fn file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:016x}")
}

fn parse_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("snapshot.")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(zxid) = entry.file_name().to_str().and_then(parse_name) {
            found.push((zxid, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes a snapshot durably: temp file, fsync, rename, directory fsync.
pub fn write(dir: &Path, zxid: i64, bytes: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(file_name(zxid));
    let temp = dir.join(format!("{}.tmp", file_name(zxid)));
    {
        let file = std::fs::File::create(&temp)?;
        io::Write::write_all(&mut &file, bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, &path)?;
    super::writer::sync_dir(dir)?;
    Ok(path)
}

/// The newest snapshot that loads, if any. Damaged snapshots are skipped with a warning.
pub fn load_newest(dir: &Path, config: &TreeConfig) -> io::Result<Option<(PathBuf, DataTree)>> {
    for (_, path) in list(dir)?.into_iter().rev() {
        let bytes = std::fs::read(&path)?;
        match decode(&bytes, config.clone()) {
            Ok(tree) => return Ok(Some((path, tree))),
            Err(reason) => tracing::warn!(path = %path.display(), %reason, "skipping unusable snapshot"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tree::Caller;
    use ferrokeeper_proto::response::Response;
    use ferrokeeper_proto::txn::TxnHeader;
    use ferrokeeper_proto::{CreateRequest, GetDataRequest, request::Request};

    fn sample_tree() -> DataTree {
        let mut tree = DataTree::new(TreeConfig::default());
        let session = 0x100;
        let create_session = tree.prep_create_session(session, 30_000, 1);
        let header = |zxid, txn: &crate::tree::Txn| TxnHeader {
            client_id: session,
            cxid: 0,
            zxid,
            time: 1000 + zxid,
            txn_type: txn.txn_type(),
        };
        tree.apply(&header(1, &create_session), &create_session);
        let caller = Caller { session_id: session, conn: 1, auth: vec![] };
        for (zxid, (path, flags)) in [("/a", 0), ("/a/b", 0), ("/a/e", 1), ("/c", 2)].into_iter().enumerate()
        {
            let zxid = zxid as i64 + 2;
            let request = Request::Create(CreateRequest {
                path: path.into(),
                data: Some(Bytes::from(path.as_bytes().to_vec())),
                acl: Acl::open_unsafe(),
                flags,
            });
            let txn = tree.prep(&caller, &request, zxid, 1000 + zxid);
            let outcome = tree.apply(&header(zxid, &txn), &txn);
            assert!(outcome.reply.is_ok(), "{:?}", outcome.reply);
        }
        tree
    }

    #[test]
    fn a_member_keeps_its_own_config_node() {
        let config_node = |data: &'static str, mtime_ms| crate::tree::ConfigNode {
            data: bytes::Bytes::from_static(data.as_bytes()),
            mtime_ms,
        };
        let leader_config = TreeConfig {
            config_node: Some(config_node("server.1=a\nversion=0", 7)),
            ..TreeConfig::default()
        };
        let mut tree = DataTree::new(leader_config);
        let caller = Caller { session_id: 0, conn: 0, auth: vec![] };
        let request = Request::GetData(GetDataRequest { path: "/zookeeper/config".into(), watch: false });
        let Ok(Response::GetData(fresh)) = tree.read(&caller, &request) else { panic!("no config node") };
        assert_eq!(fresh.data.as_deref(), Some(&b"server.1=a\nversion=0"[..]));
        assert_eq!(
            (fresh.stat.mzxid, fresh.stat.mtime, fresh.stat.version, fresh.stat.aversion),
            (0, 7, -1, -1)
        );
        // The leader's snapshot installed at a member: the member's own copy, same digest.
        let member_config = TreeConfig {
            config_node: Some(config_node("server.2=b\nversion=0", 9)),
            ..TreeConfig::default()
        };
        let mut member = decode(&encode(&tree), member_config).unwrap();
        let Ok(Response::GetData(installed)) = member.read(&caller, &request) else {
            panic!("no config node")
        };
        assert_eq!(installed.data.as_deref(), Some(&b"server.2=b\nversion=0"[..]));
        assert_eq!(installed.stat.mtime, 9);
        assert_eq!(member.digest(), tree.digest(), "the server-local node is not replicated state");
    }

    #[test]
    fn round_trips_with_equal_digest() {
        let tree = sample_tree();
        let bytes = encode(&tree);
        let restored = decode(&bytes, TreeConfig::default()).unwrap();
        assert_eq!(restored.digest(), tree.digest());
        assert_eq!(restored.last_processed_zxid(), tree.last_processed_zxid());
        assert_eq!(restored.node_count(), tree.node_count());
        assert_eq!(restored.ephemerals(), tree.ephemerals());
        assert_eq!(restored.ephemerals().get(&0x100).map(Vec::len), Some(1));
    }

    #[test]
    fn damage_is_detected() {
        let bytes = encode(&sample_tree());
        for at in [3, 12, 40, bytes.len() / 2, bytes.len() - 3] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(decode(&damaged, TreeConfig::default()).is_err(), "flip at {at} not detected");
        }
        assert!(decode(&bytes[..bytes.len() - 1], TreeConfig::default()).is_err());
    }

    /// Random txns on a small tree (test helper).
    struct Sim {
        tree: DataTree,
        zxid: i64,
        rng: u64,
    }

    impl Sim {
        const SESSIONS: [i64; 2] = [0x100, 0x200];
        const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

        fn next(&mut self, n: u64) -> u64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng % n
        }

        fn apply(&mut self, session: i64, txn: crate::tree::Txn) {
            self.zxid += 1;
            let header = TxnHeader {
                client_id: session,
                cxid: 0,
                zxid: self.zxid,
                time: 1000 + self.zxid,
                txn_type: txn.txn_type(),
            };
            self.tree.apply(&header, &txn);
        }

        fn open(&mut self, session: i64) {
            let txn = self.tree.prep_create_session(session, 30_000, self.zxid + 1);
            self.apply(session, txn);
        }

        /// A create, delete, setData or setAcl of a random path, or a session closed (its
        /// ephemerals go) and opened again.
        fn random_op(&mut self) {
            use ferrokeeper_proto::{DeleteRequest, Id, SetAclRequest, SetDataRequest};
            let depth = 1 + self.next(3);
            let path: String =
                (0..depth).map(|_| format!("/{}", Self::NAMES[self.next(5) as usize])).collect();
            let session = Self::SESSIONS[self.next(2) as usize];
            let caller = Caller { session_id: session, conn: 1, auth: vec![] };
            let request = match self.next(10) {
                0..=3 => Request::Create(CreateRequest {
                    path,
                    data: Some(Bytes::from(vec![self.next(256) as u8; self.next(4) as usize])),
                    acl: Acl::open_unsafe(),
                    flags: if self.next(4) == 0 { 1 } else { 0 },
                }),
                4..=5 => Request::Delete(DeleteRequest { path, version: -1 }),
                6..=7 => Request::SetData(SetDataRequest {
                    path,
                    data: Some(Bytes::from(vec![self.next(256) as u8; 3])),
                    version: -1,
                }),
                8 => Request::SetAcl(SetAclRequest {
                    path,
                    acl: vec![
                        Acl { perms: 31, id: Id::new("world", "anyone") },
                        Acl { perms: 1, id: Id::new("ip", "10.0.0.1") },
                    ],
                    version: -1,
                }),
                _ => Request::CloseSession,
            };
            let close = matches!(request, Request::CloseSession);
            let txn = self.tree.prep(&caller, &request, self.zxid + 1, 1000 + self.zxid + 1);
            self.apply(session, txn);
            if close {
                self.open(session);
            }
        }
    }

    /// A chunked snapshot taken while txns keep being applied between chunks is byte for byte
    /// the snapshot taken in one go at its start: creates, deletes (also of nodes not yet
    /// emitted, and re-creates at the same path), data and ACL changes, ephemerals dropped by a
    /// closed session, sessions closed and opened.
    #[test]
    fn chunked_snapshot_is_the_state_at_its_start() {
        for seed in 1..=300u64 {
            let mut sim = Sim {
                tree: DataTree::new(TreeConfig::default()),
                zxid: 0,
                rng: seed.wrapping_mul(0x9e37_79b9) | 1,
            };
            for session in Sim::SESSIONS {
                sim.open(session);
            }
            for _ in 0..40 {
                sim.random_op();
            }
            let whole = encode(&sim.tree);
            let (zxid, sessions) = sim.tree.snapshot_begin();
            let mut encoder = Encoder::start(zxid, &sessions, 0);
            let mut changes_during = 0;
            loop {
                for _ in 0..1 + sim.next(4) {
                    sim.random_op();
                    changes_during += 1;
                }
                let limit = 1 + sim.next(3) as usize;
                if encoder.chunk(&mut sim.tree, limit) {
                    break;
                }
            }
            assert!(!sim.tree.snapshot_in_progress());
            assert!(changes_during > 0);
            assert_eq!(encoder.finish(), whole, "seed {seed}");
            // The tree went on: its own snapshot now differs (the test is not vacuous).
            assert_ne!(encode(&sim.tree), whole, "seed {seed}: nothing changed during the snapshot");
        }
    }

    #[test]
    fn newest_valid_snapshot_wins() {
        let dir = std::env::temp_dir().join(format!("fk-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tree = sample_tree();
        let good = encode(&tree);
        write(&dir, 3, &good).unwrap();
        let mut bad = good.clone();
        bad[50] ^= 1;
        write(&dir, 9, &bad).unwrap();
        let (path, loaded) = load_newest(&dir, &TreeConfig::default()).unwrap().unwrap();
        assert!(path.ends_with(file_name(3)));
        assert_eq!(loaded.digest(), tree.digest());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
