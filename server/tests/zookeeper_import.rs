//! `ferrokeeper import-zookeeper` against a real Apache ZooKeeper 3.8 (Debian): ZooKeeper runs
//! with a low snapCount (so its dataDir holds several snapshots and log files), real client
//! sessions write a varied tree, ZooKeeper is stopped (SIGTERM, or SIGKILL plus a torn record
//! at the end of its newest log), the dataDir is imported, ferrokeeper starts on the result and
//! every node's data, ACL and full Stat must be what ZooKeeper served before the stop; the
//! session still open at the stop keeps its ephemerals and can resume; a sequential create
//! continues the parent's counter. A log with a flipped byte is refused, naming the file and
//! offset, with nothing written. The ZooKeeper files are never changed by the import. And back:
//! `ferrokeeper export-zookeeper` of a ferrokeeper dataDir, Apache ZooKeeper started on it. And a
//! stopped 3-node ZooKeeper ensemble restarted as ferrokeeper on the same zoo.cfg files.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use ferrokeeper_proto::multi::{MultiOp, MultiRequest};
use ferrokeeper_proto::op::{self, perms};
use ferrokeeper_proto::records::*;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use support::{ConnectOptions, ServerKind, ServerProcess, TempDir, TestClient};

const SESSION_TIMEOUT_MS: i32 = 30_000;

fn extras(data_dir: Option<&Path>) -> Vec<(String, String)> {
    let mut extras: Vec<(String, String)> =
        ServerProcess::standard_extras().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    // A snapshot every 5..10 txns and small preallocation: several snapshots and logs.
    extras.push(("snapCount".into(), "10".into()));
    extras.push(("preAllocSize".into(), "64".into()));
    extras.push(("autopurge.purgeInterval".into(), "0".into()));
    if let Some(dir) = data_dir {
        extras.push(("dataDir".into(), dir.display().to_string()));
    }
    extras
}

fn start(kind: ServerKind, data_dir: Option<&Path>) -> ServerProcess {
    let extras = extras(data_dir);
    let refs: Vec<(&str, &str)> = extras.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ServerProcess::start(kind, &refs)
}

fn ok(client: &mut TestClient, request: Request) -> Response {
    let (header, body) = client.call(&request).expect("call");
    assert_eq!(header.err, 0, "{request:?} failed with {}", header.err);
    body.expect("reply body")
}

fn err(client: &mut TestClient, request: Request) -> i32 {
    client.call(&request).expect("call").0.err
}

fn bytes(text: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(text.as_bytes()))
}

fn create(client: &mut TestClient, path: &str, data: &str, acl: Vec<Acl>, flags: i32) -> String {
    let request = CreateRequest { path: path.into(), data: bytes(data), acl, flags };
    match ok(client, Request::Create2(request)) {
        Response::Create2(reply) => reply.path,
        other => panic!("create2 answered {other:?}"),
    }
}

fn open() -> Vec<Acl> {
    vec![Acl::new(perms::ALL, "world", "anyone")]
}

fn set_data(client: &mut TestClient, path: &str, data: &str) {
    ok(client, Request::SetData(SetDataRequest { path: path.into(), data: bytes(data), version: -1 }));
}

fn delete(client: &mut TestClient, path: &str) {
    ok(client, Request::Delete(DeleteRequest { path: path.into(), version: -1 }));
}

/// Writes the tree through real sessions; returns the session left open (owner of ephemerals).
fn write_tree(port: u16) -> TestClient {
    let mut admin = TestClient::connect(port).expect("connect");
    assert_eq!(admin.auth("digest", b"alice:secret").unwrap(), 0);
    let alice = support::digest("alice", "secret");
    create(&mut admin, "/app", "root of the app", open(), 0);
    create(&mut admin, "/app/config", "v0", open(), 0);
    create(&mut admin, "/app/config/db", "", open(), 0);
    create(&mut admin, "/app/config/db/primary", "host=10.0.0.1", open(), 0);
    for version in 1..=4 {
        set_data(&mut admin, "/app/config", &format!("v{version}"));
    }
    // ACLs: a digest id, an ip id, world read, and auth (expanded to the digest).
    let secure = vec![Acl::new(perms::ALL, "digest", &alice), Acl::new(perms::READ, "world", "anyone")];
    create(&mut admin, "/secure", "secret data", secure, 0);
    let mixed = vec![Acl::new(perms::ALL, "ip", "127.0.0.1"), Acl::new(perms::READ, "digest", &alice)];
    create(&mut admin, "/secure/ip", "by address", mixed, 0);
    create(&mut admin, "/secure/auth", "creator", vec![Acl::new(perms::ALL, "auth", "")], 0);
    let acl = vec![Acl::new(perms::READ | perms::WRITE, "world", "anyone")];
    ok(&mut admin, Request::SetAcl(SetAclRequest { path: "/app/config/db".into(), acl, version: -1 }));
    // Sequential children, some deleted (cversion and pzxid of the parent move on).
    create(&mut admin, "/app/queue", "", open(), 0);
    let mut items = Vec::new();
    for i in 0..6 {
        items.push(create(&mut admin, "/app/queue/item-", &format!("job {i}"), open(), 2));
    }
    delete(&mut admin, &items[1]);
    delete(&mut admin, &items[4]);
    // A container with a child, and TTL nodes (extendedTypesEnabled).
    ok(
        &mut admin,
        Request::CreateContainer(CreateRequest {
            path: "/app/jobs".into(),
            data: bytes("container"),
            acl: open(),
            flags: 4,
        }),
    );
    create(&mut admin, "/app/jobs/job-1", "pending", open(), 0);
    for (path, flags) in [("/app/ttl", 5), ("/app/ttl-seq-", 6)] {
        let request = CreateTtlRequest {
            path: path.into(),
            data: bytes("expires"),
            acl: open(),
            flags,
            ttl: 3_600_000,
        };
        ok(&mut admin, Request::CreateTtl(request));
    }
    // A multi (one zxid, several changes) and failed writes (error txns).
    let multi = MultiRequest {
        ops: vec![
            MultiOp::Create {
                op: op::CREATE,
                request: CreateRequest { path: "/app/multi".into(), data: bytes("m"), acl: open(), flags: 0 },
            },
            MultiOp::SetData(SetDataRequest { path: "/app/multi".into(), data: bytes("m2"), version: 0 }),
        ],
    };
    ok(&mut admin, Request::Multi(multi));
    let duplicate = CreateRequest { path: "/app".into(), data: None, acl: open(), flags: 0 };
    assert_eq!(err(&mut admin, Request::Create(duplicate)), -110);
    let failing = MultiRequest {
        ops: vec![
            MultiOp::Create {
                op: op::CREATE,
                request: CreateRequest { path: "/app/never".into(), data: None, acl: open(), flags: 0 },
            },
            MultiOp::Delete(DeleteRequest { path: "/app/missing".into(), version: -1 }),
        ],
    };
    // A failed multi: ZooKeeper answers err 0 with per-op errors and logs an error txn.
    let _ = err(&mut admin, Request::Multi(failing));
    let check = CreateRequest { path: "/app/never".into(), data: None, acl: open(), flags: 0 };
    assert_eq!(err(&mut admin, Request::Create(check)), 0, "the failed multi created nothing");
    delete(&mut admin, "/app/never");
    // Ephemerals of a session that ends (deleted by its closeSession) ...
    let mut gone = TestClient::connect(port).expect("connect");
    create(&mut gone, "/app/lock", "", open(), 0);
    create(&mut gone, "/app/lock/gone-", "", open(), 3);
    gone.close_session().expect("close");
    // ... and of a session still open when ZooKeeper stops.
    let options = ConnectOptions { timeout_ms: SESSION_TIMEOUT_MS, ..ConnectOptions::default() };
    let mut live = TestClient::connect_with(port, &options).expect("connect");
    create(&mut live, "/app/lock/live-", "owner", open(), 3);
    create(&mut live, "/app/presence", "here", open(), 1);
    // Enough further writes for several more snapshots and log rolls.
    create(&mut admin, "/app/counter", "0", open(), 0);
    for i in 1..=40 {
        set_data(&mut admin, "/app/counter", &i.to_string());
    }
    delete(&mut admin, &items[5]);
    create(&mut admin, "/app/empty-data", "", open(), 0);
    admin.close_session().expect("close");
    live
}

/// Every node: path → (data, ACL, full Stat), read as super.
fn dump(port: u16) -> BTreeMap<String, String> {
    let mut client = TestClient::connect(port).expect("connect");
    let auth = format!("super:{}", support::SUPER_PASSWORD);
    assert_eq!(client.auth("digest", auth.as_bytes()).unwrap(), 0);
    let mut out = BTreeMap::new();
    let mut queue = vec!["/".to_owned()];
    while let Some(path) = queue.pop() {
        let Response::GetData(data) =
            ok(&mut client, Request::GetData(GetDataRequest { path: path.clone(), watch: false }))
        else {
            panic!("getData of {path}")
        };
        let Response::GetAcl(acl) = ok(&mut client, Request::GetAcl(GetAclRequest { path: path.clone() }))
        else {
            panic!("getACL of {path}")
        };
        assert_eq!(acl.stat, data.stat, "getACL and getData of {path} disagree on the stat");
        let Response::GetChildren(children) =
            ok(&mut client, Request::GetChildren(GetChildrenRequest { path: path.clone(), watch: false }))
        else {
            panic!("getChildren of {path}")
        };
        let acl: Vec<String> =
            acl.acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect();
        let s = &data.stat;
        let line = format!(
            "data={:?} acl={acl:?} czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} version={} \
             cversion={} aversion={} ephemeralOwner={:#x} dataLength={} numChildren={}",
            data.data.as_deref().map(String::from_utf8_lossy),
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.ctime,
            s.mtime,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children
        );
        out.insert(path.clone(), line);
        for child in children.children {
            queue.push(if path == "/" { format!("/{child}") } else { format!("{path}/{child}") });
        }
    }
    let _ = client.close_session();
    out
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn import(zk_data: &Path, to: &Path) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
    cmd.arg("import-zookeeper").arg("--data-dir").arg(zk_data).arg("--to").arg(to);
    support::run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("import ran")
}

fn export(fk_data: &Path, to: &Path) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
    cmd.arg("export-zookeeper").arg("--data-dir").arg(fk_data).arg("--to").arg(to);
    support::run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("export ran")
}

fn signal(server: &ServerProcess, name: &str) {
    let pid = server.pid().expect("running").to_string();
    let status = Command::new("kill").args([name, &pid]).status().expect("kill");
    assert!(status.success(), "kill {name} {pid}");
}

/// The log file with the highest start zxid and where its data ends.
fn newest_log(version_dir: &Path) -> (PathBuf, usize) {
    let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(version_dir)
        .expect("read_dir")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let zxid = u64::from_str_radix(name.strip_prefix("log.")?, 16).ok()?;
            Some((zxid, path))
        })
        .collect();
    logs.sort();
    let (_, path) = logs.pop().expect("a log file");
    let bytes = std::fs::read(&path).expect("read log");
    let mut offset = 16;
    loop {
        let len = bytes.get(offset + 8..offset + 12).map(|b| i32::from_be_bytes(b.try_into().unwrap()));
        match len {
            Some(len) if len > 0 => offset += 12 + len as usize + 1,
            _ => return (path, offset),
        }
    }
}

fn run(kill: bool) {
    if !support::oracle_available() {
        return;
    }
    let mut zookeeper = start(ServerKind::ZooKeeper, None);
    let live = write_tree(zookeeper.port);
    let before = dump(zookeeper.port);
    assert!(before.len() >= 25, "the tree has {} nodes", before.len());
    signal(&zookeeper, if kill { "-KILL" } else { "-TERM" });
    assert!(zookeeper.wait_exit(Duration::from_secs(20)).is_some(), "ZooKeeper did not stop");
    let zk_data = zookeeper.dir().join("data");
    let version_dir = zk_data.join("version-2");
    let names: Vec<String> =
        files(&version_dir).keys().filter_map(|p| p.file_name()?.to_str().map(str::to_owned)).collect();
    let snapshots = names.iter().filter(|n| n.starts_with("snapshot.")).count();
    let logs = names.iter().filter(|n| n.starts_with("log.")).count();
    assert!(snapshots >= 3 && logs >= 3, "ZooKeeper wrote {snapshots} snapshots and {logs} logs: {names:?}");
    if kill {
        // A torn write at the end of the newest log: a record cut short in the preallocation.
        let (path, end) = newest_log(&version_dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = [0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 40, 0, 0, 0, 9, 1, 2];
        if bytes.len() < end + torn.len() {
            bytes.resize(end + torn.len(), 0);
        }
        bytes[end..end + torn.len()].copy_from_slice(&torn);
        std::fs::write(&path, bytes).unwrap();
    }
    let originals = files(&zk_data);

    let target = TempDir::new("import");
    let to = target.path().join("data");
    let (success, stdout, stderr) = import(&zk_data, &to);
    assert!(success, "import failed:\n{stdout}\n{stderr}");
    eprintln!("{stdout}{stderr}");
    assert!(stdout.contains("replayed"), "{stdout}");
    assert_eq!(files(&zk_data), originals, "the import changed ZooKeeper's files");
    // Importing twice into the same place is refused.
    let (again, _, stderr) = import(&zk_data, &to);
    assert!(!again && stderr.contains("already holds ferrokeeper data"), "{stderr}");

    replay_from_older_snapshots(&zk_data, &only_file(&to.join("fk-snap")));

    let ferrokeeper = start(ServerKind::Ferrokeeper, Some(&to));
    check_served(&before, ferrokeeper.port, &live);
    drop(live);
}

/// A ferrokeeper snapshot as lines (sessions, then each node), for readable differences.
fn snapshot_lines(bytes: &[u8]) -> Vec<String> {
    let config = ferrokeeper_server::tree::TreeConfig { extended_types_enabled: true, ..Default::default() };
    let tree = ferrokeeper_server::txlog::snapshot::decode(bytes, config).expect("a ferrokeeper snapshot");
    let mut lines = vec![format!("zxid {:#x} sessions {:?}", tree.last_processed_zxid(), tree.sessions())];
    tree.for_each_node(|path, data, acl, stat| lines.push(format!("{path} {data:?} {acl:?} {stat:?}")));
    lines
}

/// Both ferrokeeper snapshots hold the same state, byte for byte.
fn assert_same_snapshot(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(snapshot_lines(actual), snapshot_lines(expected), "{what}");
    assert!(actual == expected, "{what}: same nodes but different bytes");
}

/// The one file in `dir`, read.
fn only_file(dir: &Path) -> Vec<u8> {
    let all = files(dir);
    assert_eq!(all.len(), 1, "{:?}", all.keys().collect::<Vec<_>>());
    all.into_values().next().unwrap()
}

/// Copies of the ZooKeeper dataDir that make the import replay much more of the logs: with
/// only the oldest snapshot left, and with the newest snapshot damaged (skipped, as ZooKeeper
/// skips it). Both must give exactly the same ferrokeeper snapshot.
fn replay_from_older_snapshots(zk_data: &Path, expected: &[u8]) {
    let copy_of = |dir: &Path| {
        for (path, bytes) in files(zk_data) {
            let target = dir.join(path.strip_prefix(zk_data).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, bytes).unwrap();
        }
    };
    let snapshots = |dir: &Path| -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = files(&dir.join("version-2"))
            .into_keys()
            .filter_map(|p| {
                let zxid =
                    u64::from_str_radix(p.file_name()?.to_str()?.strip_prefix("snapshot.")?, 16).ok()?;
                Some((zxid, p))
            })
            .collect();
        found.sort();
        found
    };
    let scratch = TempDir::new("zk-copy");
    let oldest_only = scratch.path().join("oldest-only");
    copy_of(&oldest_only);
    for (_, path) in snapshots(&oldest_only).into_iter().skip(1) {
        std::fs::remove_file(path).unwrap();
    }
    let to = scratch.path().join("to-oldest");
    let (success, stdout, stderr) = import(&oldest_only, &to);
    assert!(success, "import from the oldest snapshot failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("(zxid 0x0)"), "{stdout}");
    assert_same_snapshot(&only_file(&to.join("fk-snap")), expected, "replaying from the oldest snapshot");

    let damaged = scratch.path().join("damaged");
    copy_of(&damaged);
    let (_, newest) = snapshots(&damaged).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let to = scratch.path().join("to-damaged");
    let (success, stdout, stderr) = import(&damaged, &to);
    assert!(success, "import with a damaged newest snapshot failed:\n{stdout}\n{stderr}");
    let warning = format!("warning: {}: at offset", newest.display());
    assert!(stderr.contains(&warning), "no warning about the damaged snapshot: {stderr}");
    assert_same_snapshot(&only_file(&to.join("fk-snap")), expected, "replaying past a damaged snapshot");

    // Into ZooKeeper's own dataDir (ferrokeeper's files live in fk-snap/, beside version-2/):
    // ZooKeeper's files stay as they were.
    let same = scratch.path().join("same");
    copy_of(&same);
    let before = files(&same);
    let (success, stdout, stderr) = import(&same, &same);
    assert!(success, "import into the same dataDir failed:\n{stdout}\n{stderr}");
    let after = files(&same);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    assert_same_snapshot(&only_file(&same.join("fk-snap")), expected, "importing in place");
}

/// The server on `port` serves exactly the `before` dump; the session `live` (open when the
/// previous server stopped) resumes with its ephemerals; sequential numbering continues.
fn check_served(before: &BTreeMap<String, String>, port: u16, live: &TestClient) {
    let after = dump(port);
    for (path, line) in before {
        assert_eq!(after.get(path), Some(line), "{path} differs");
    }
    let extra: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(extra.is_empty(), "nodes only the new server has: {extra:?}");
    let options = ConnectOptions {
        session_id: live.session_id,
        passwd: live.passwd.clone(),
        timeout_ms: SESSION_TIMEOUT_MS,
        last_zxid_seen: live.last_zxid,
        ..ConnectOptions::default()
    };
    let mut resumed = TestClient::connect_with(port, &options).expect("reconnect");
    assert_eq!(resumed.session_id, live.session_id, "the session did not survive");
    assert!(resumed.negotiated_timeout > 0);
    // Sequential creates continue the parent's counter: its stored cversion, which a client
    // sees as 2 * cversion - numChildren (DataNode.copyStat).
    let queue = &before["/app/queue"];
    let field = |name: &str| -> i32 {
        queue.split(&format!(" {name}=")).nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
    };
    let stored = (field("cversion") + field("numChildren")) / 2;
    assert!(stored >= 6, "{queue}");
    let next = create(&mut resumed, "/app/queue/item-", "after", open(), 2);
    assert_eq!(next, format!("/app/queue/item-{stored:010}"));
    resumed.close_session().expect("close");
    let gone = dump(port);
    assert!(!gone.contains_key("/app/presence"), "closing the resumed session deletes its ephemerals");
}

#[test]
fn import_after_sigterm_serves_the_same_tree() {
    run(false);
}

#[test]
fn import_after_sigkill_with_a_torn_log_tail_serves_the_same_tree() {
    run(true);
}

#[test]
fn a_damaged_log_is_refused_naming_file_and_offset_with_nothing_written() {
    if !support::oracle_available() {
        return;
    }
    let mut zookeeper = start(ServerKind::ZooKeeper, None);
    let live = write_tree(zookeeper.port);
    signal(&zookeeper, "-TERM");
    assert!(zookeeper.wait_exit(Duration::from_secs(20)).is_some(), "ZooKeeper did not stop");
    drop(live);
    let zk_data = zookeeper.dir().join("data");
    // Flip one payload byte of the first record of the newest log.
    let (path, end) = newest_log(&zk_data.join("version-2"));
    assert!(end > 16 + 13, "the newest log has records");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16 + 12 + 3] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let target = TempDir::new("import");
    let to = target.path().join("data");
    let (success, _, stderr) = import(&zk_data, &to);
    assert!(!success, "a damaged log was imported");
    let name = path.display().to_string();
    assert!(stderr.contains(&format!("{name}: at offset 16: checksum mismatch")), "{stderr}");
    assert!(!to.exists(), "something was written: {:?}", files(&to).keys().collect::<Vec<_>>());
}

#[test]
fn export_back_to_zookeeper_serves_the_same_tree() {
    if !support::oracle_available() {
        return;
    }
    let mut ferrokeeper = start(ServerKind::Ferrokeeper, None);
    let live = write_tree(ferrokeeper.port);
    let before = dump(ferrokeeper.port);
    assert!(before.len() >= 25, "the tree has {} nodes", before.len());
    signal(&ferrokeeper, "-TERM");
    assert!(ferrokeeper.wait_exit(Duration::from_secs(20)).is_some(), "ferrokeeper did not stop");
    let fk_data = ferrokeeper.dir().join("data");
    let originals = files(&fk_data);
    let target = TempDir::new("export");
    let to = target.path().join("zk");
    let (success, stdout, stderr) = export(&fk_data, &to);
    assert!(success, "export failed:\n{stdout}\n{stderr}");
    assert_eq!(files(&fk_data), originals, "the export changed ferrokeeper's files");
    let (again, _, stderr) = export(&fk_data, &to);
    assert!(!again && stderr.contains("already holds ZooKeeper data"), "{stderr}");
    let zookeeper = start(ServerKind::ZooKeeper, Some(&to));
    check_served(&before, zookeeper.port, &live);
    drop(live);
}

#[test]
fn ferrokeeper_starts_on_zookeepers_data_dir_and_imports_once() {
    if !support::oracle_available() {
        return;
    }
    let mut zookeeper = start(ServerKind::ZooKeeper, None);
    let live = write_tree(zookeeper.port);
    let before = dump(zookeeper.port);
    signal(&zookeeper, "-TERM");
    assert!(zookeeper.wait_exit(Duration::from_secs(20)).is_some(), "ZooKeeper did not stop");
    let zk_data = zookeeper.dir().join("data");
    let originals = files(&zk_data);
    // The same zoo.cfg keys and dataDir ZooKeeper ran with (on another port).
    let mut ferrokeeper = start(ServerKind::Ferrokeeper, Some(&zk_data));
    check_served(&before, ferrokeeper.port, &live);
    let after_import = files(&zk_data);
    for (path, bytes) in &originals {
        assert_eq!(after_import.get(path), Some(bytes), "{} changed", path.display());
    }
    // What ferrokeeper changed since survives a restart: the import is not repeated.
    let changed = dump(ferrokeeper.port);
    assert_ne!(changed, before);
    signal(&ferrokeeper, "-TERM");
    assert!(ferrokeeper.wait_exit(Duration::from_secs(20)).is_some(), "ferrokeeper did not stop");
    let restarted = start(ServerKind::Ferrokeeper, Some(&zk_data));
    assert_eq!(dump(restarted.port), changed);
    drop(live);
}

/// A 3-node ZooKeeper ensemble, stopped with no write in flight, restarted as ferrokeeper on the
/// same zoo.cfg files and dataDirs: each member imports its own data (with its epoch files), the
/// ensemble elects and converges, and every member serves what ZooKeeper served.
#[test]
fn a_stopped_zookeeper_ensemble_restarts_as_ferrokeeper() {
    if !support::oracle_available() {
        return;
    }
    let superdigest = support::digest("super", support::SUPER_PASSWORD);
    let extras = [
        ("snapCount", "10"),
        ("autopurge.purgeInterval", "0"),
        ("extendedTypesEnabled", "true"),
        ("DigestAuthenticationProvider.superDigest", superdigest.as_str()),
    ];
    let mut cluster = support::Ensemble::build(ServerKind::ZooKeeper, &extras, false);
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(40));
    let port = cluster.port(leader);
    let live = write_tree(port);
    let mut before = dump(port);
    // Each member writes the membership into /zookeeper/config when it starts (not a txn,
    // its own clock), ZooKeeper and ferrokeeper alike: compared apart (`ensemble_config.rs`).
    assert!(before.remove("/zookeeper/config").is_some_and(|line| line.contains("server.1=")));
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.kill(i);
    }
    cluster.set_kind(ServerKind::Ferrokeeper);
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    cluster.wait_stable(Duration::from_secs(30));
    cluster.wait_converged(Duration::from_secs(30));
    for i in 0..support::ENSEMBLE_SIZE {
        let after = dump(cluster.port(i));
        for (path, line) in &before {
            assert_eq!(after.get(path), Some(line), "node {}: {path} differs", i + 1);
        }
        assert_eq!(after.len(), before.len() + 1, "node {}: only /zookeeper/config is extra", i + 1);
    }
    let mut with_config = before.clone();
    with_config.insert("/zookeeper/config".into(), dump(cluster.port(leader))["/zookeeper/config"].clone());
    check_served(&with_config, cluster.port(leader), &live);
}

/// What the traffic threads of the rolling migration saw.
#[derive(Default)]
struct Traffic {
    stop: std::sync::atomic::AtomicBool,
    /// The highest counter value a setData was acknowledged for.
    acked: std::sync::atomic::AtomicU64,
    /// The highest counter value read.
    max_read: std::sync::atomic::AtomicU64,
    reads: std::sync::atomic::AtomicU64,
    /// Reads that returned less than an earlier read (the tree going back in time).
    went_back: std::sync::Mutex<Vec<String>>,
    /// Reads that found the never-committed node.
    saw_uncommitted: std::sync::atomic::AtomicU64,
    /// The longest time without an acknowledged write, in ms.
    longest_write_gap_ms: std::sync::atomic::AtomicU64,
}

const COUNTER: &str = "/m/counter";
const UNCOMMITTED: &str = "/m/uncommitted";

/// A session on one of `ports` (trying them in turn from `*next`), announcing `last_zxid` so
/// that a server behind what the client saw refuses it, as a ZooKeeper client's reconnect does.
fn connect_any(ports: &[u16], next: &mut usize, last_zxid: i64) -> Option<TestClient> {
    for _ in 0..ports.len() {
        let port = ports[*next % ports.len()];
        *next += 1;
        let options = ConnectOptions {
            last_zxid_seen: last_zxid,
            handshake_timeout: Duration::from_secs(1),
            ..ConnectOptions::default()
        };
        if let Ok(client) = TestClient::connect_with(port, &options) {
            client.set_read_timeout(Duration::from_secs(1)).ok()?;
            return Some(client);
        }
    }
    None
}

fn writer(ports: Vec<u16>, traffic: std::sync::Arc<Traffic>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut next, mut last_zxid) = (0usize, 0i64);
    let mut last_ack = std::time::Instant::now();
    while !traffic.stop.load(Relaxed) {
        let Some(mut client) = connect_any(&ports, &mut next, last_zxid) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        while !traffic.stop.load(Relaxed) {
            let value = traffic.acked.load(Relaxed) + 1;
            let request = Request::SetData(SetDataRequest {
                path: COUNTER.into(),
                data: bytes(&value.to_string()),
                version: -1,
            });
            match client.call(&request) {
                Ok((header, _)) if header.err == 0 => {
                    last_zxid = last_zxid.max(header.zxid);
                    traffic.acked.store(value, Relaxed);
                    let gap = last_ack.elapsed().as_millis() as u64;
                    traffic.longest_write_gap_ms.fetch_max(gap, Relaxed);
                    last_ack = std::time::Instant::now();
                }
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn reader(ports: Vec<u16>, traffic: std::sync::Arc<Traffic>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut next, mut last_zxid) = (1usize, 0i64);
    while !traffic.stop.load(Relaxed) {
        let Some(mut client) = connect_any(&ports, &mut next, last_zxid) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // A few reads per server, then the next one: every member is read from.
        for _ in 0..10 {
            let request = Request::GetData(GetDataRequest { path: COUNTER.into(), watch: false });
            let Ok((header, Ok(Response::GetData(reply)))) = client.call(&request) else { break };
            last_zxid = last_zxid.max(header.zxid);
            let value: u64 =
                reply.data.as_deref().and_then(|d| std::str::from_utf8(d).ok()?.parse().ok()).unwrap_or(0);
            let before = traffic.max_read.fetch_max(value, Relaxed);
            if value < before {
                traffic
                    .went_back
                    .lock()
                    .unwrap()
                    .push(format!("read {value} after {before} (zxid {:#x})", header.zxid));
            }
            traffic.reads.fetch_add(1, Relaxed);
            let exists = Request::Exists(ExistsRequest { path: UNCOMMITTED.into(), watch: false });
            match client.call(&exists) {
                Ok((header, _)) if header.err == 0 => {
                    traffic.saw_uncommitted.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits until both traffic threads made progress (5 acknowledged writes, 5 reads).
fn progress(cluster: &support::Ensemble, traffic: &Traffic, budget: Duration, what: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    let (writes, reads) = (traffic.acked.load(Relaxed), traffic.reads.load(Relaxed));
    wait_for(cluster, budget, what, || {
        traffic.acked.load(Relaxed) >= writes + 5 && traffic.reads.load(Relaxed) >= reads + 5
    });
}

/// Waits until `done` holds, polling; panics with the ensemble's logs after `budget`.
fn wait_for(cluster: &support::Ensemble, budget: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + budget;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} within {budget:?}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether ZooKeeper's log files in `version_dir` hold a create of `path`.
fn zk_logs_create(version_dir: &Path, path: &str) -> bool {
    use ferrokeeper_proto::txn::Txn;
    std::fs::read_dir(version_dir).unwrap().any(|entry| {
        let file = entry.unwrap().path();
        if !file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("log.")) {
            return false;
        }
        let (entries, _) = ferrokeeper_proto::zkfile::log::decode(&std::fs::read(&file).unwrap()).unwrap();
        entries.iter().any(|e| matches!(&e.txn, Txn::Create { txn, .. } if txn.path == path))
    })
}

/// A running 3-node ZooKeeper ensemble replaced member by member, under a client writing and a
/// client reading throughout (fresh sessions on every member in turn, each announcing the
/// highest zxid it saw, as a ZooKeeper client reconnects):
///
/// 1. a ZooKeeper follower is stopped and started as ferrokeeper on its zoo.cfg (it imports its
///    dataDir and waits for a ferrokeeper quorum; the ZooKeeper pair keeps serving);
/// 2. the other follower is frozen (SIGSTOP), and a write sent to the ZooKeeper leader then is
///    logged by it but never committed; the leader loses its quorum. The frozen follower is
///    stopped and started as ferrokeeper: the two ferrokeeper members form a quorum and serve
///    every acknowledged write;
/// 3. the old ZooKeeper leader, whose log ends in that uncommitted proposal, is stopped and
///    started as ferrokeeper: it joins, and the proposal is dropped (the new leader's sync
///    replaces its state), as ZooKeeper's own recovery would drop it without that member.
///
/// No read ever returns less than an earlier read, the uncommitted node is never seen, every
/// acknowledged write is on every member, and the members converge on the whole tree.
#[test]
fn a_running_zookeeper_ensemble_migrates_member_by_member() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    if !support::oracle_available() {
        return;
    }
    let superdigest = support::digest("super", support::SUPER_PASSWORD);
    let extras = [
        ("autopurge.purgeInterval", "0"),
        ("extendedTypesEnabled", "true"),
        ("DigestAuthenticationProvider.superDigest", superdigest.as_str()),
    ];
    let mut cluster = support::Ensemble::build(ServerKind::ZooKeeper, &extras, false);
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(40));
    let followers: Vec<usize> = (0..support::ENSEMBLE_SIZE).filter(|&i| i != leader).collect();
    let (first, second) = (followers[0], followers[1]);
    let ports: Vec<u16> = (0..support::ENSEMBLE_SIZE).map(|i| cluster.port(i)).collect();
    let live = write_tree(cluster.port(leader));
    let mut setup = TestClient::connect(cluster.port(leader)).unwrap();
    create(&mut setup, "/m", "", open(), 0);
    create(&mut setup, COUNTER, "0", open(), 0);
    drop(setup);
    let mut before = dump(cluster.port(leader));
    // Not replicated in ZooKeeper (each member's own), and the counter moves.
    before.remove("/zookeeper/config");
    before.remove(COUNTER);

    let traffic = Arc::new(Traffic::default());
    let threads: Vec<_> = [writer as fn(Vec<u16>, Arc<Traffic>), reader]
        .into_iter()
        .map(|f| {
            let (ports, traffic) = (ports.clone(), traffic.clone());
            std::thread::spawn(move || f(ports, traffic))
        })
        .collect();
    progress(&cluster, &traffic, Duration::from_secs(10), "traffic on ZooKeeper");

    // 1. The first follower becomes ferrokeeper; ZooKeeper's remaining pair serves on.
    cluster.kill(first);
    cluster.set_kind(ServerKind::Ferrokeeper);
    cluster.start(first);
    std::thread::sleep(Duration::from_millis(500));
    progress(
        &cluster,
        &traffic,
        Duration::from_secs(10),
        "ZooKeeper's pair serving beside a ferrokeeper member",
    );
    assert_eq!(cluster.mode(first), "not serving", "a lone ferrokeeper member must not serve");

    // 2. An uncommitted proposal in the ZooKeeper leader's log: its last follower frozen, a
    // write sent to it (no reply can come), then its quorum is lost.
    let mut doomed = TestClient::connect(cluster.port(leader)).unwrap();
    cluster.signal(second, "-STOP");
    doomed
        .send(&Request::Create(CreateRequest {
            path: UNCOMMITTED.into(),
            data: bytes("never"),
            acl: open(),
            flags: 0,
        }))
        .unwrap();
    wait_for(&cluster, Duration::from_secs(10), "the ZooKeeper leader losing its quorum", || {
        cluster.mode(leader) != "leader"
    });
    cluster.kill(second);
    cluster.start(second);
    wait_for(&cluster, Duration::from_secs(30), "a ferrokeeper quorum of two", || {
        let modes = [cluster.mode(first), cluster.mode(second)];
        modes.contains(&"leader".to_owned()) && modes.contains(&"follower".to_owned())
    });
    progress(&cluster, &traffic, Duration::from_secs(20), "traffic on the ferrokeeper pair");

    // 3. The old ZooKeeper leader, its log ending in the uncommitted create, becomes ferrokeeper.
    cluster.kill(leader);
    drop(doomed);
    let version_dir = cluster.log_path(leader).with_file_name("data").join("version-2");
    assert!(zk_logs_create(&version_dir, UNCOMMITTED), "the ZooKeeper leader did not log the doomed create");
    cluster.start(leader);
    cluster.wait_stable(Duration::from_secs(30));
    cluster.wait_converged(Duration::from_secs(30));
    progress(&cluster, &traffic, Duration::from_secs(20), "traffic on the ferrokeeper ensemble");
    traffic.stop.store(true, Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }

    let went_back = traffic.went_back.lock().unwrap().clone();
    assert!(went_back.is_empty(), "the tree went back in time: {went_back:?}");
    assert_eq!(traffic.saw_uncommitted.load(Relaxed), 0, "a read saw the never-committed create");
    let acked = traffic.acked.load(Relaxed);
    eprintln!(
        "member-by-member: {acked} writes acknowledged, {} reads, longest time without an acknowledged write {} ms",
        traffic.reads.load(Relaxed),
        traffic.longest_write_gap_ms.load(Relaxed)
    );
    // /zookeeper/config is server-local (its mtime is each server's start, as in ZooKeeper).
    let dump_replicated = |port| {
        let mut tree = dump(port);
        tree.remove("/zookeeper/config");
        tree
    };
    let reference = dump_replicated(cluster.port(leader));
    for i in 0..support::ENSEMBLE_SIZE {
        let tree = dump_replicated(cluster.port(i));
        assert!(!tree.contains_key(UNCOMMITTED), "node {}: the uncommitted create was resurrected", i + 1);
        let line = &tree[COUNTER];
        let value: u64 = line.split('"').nth(1).unwrap().parse().unwrap();
        assert!(value >= acked, "node {}: counter {value} < acknowledged {acked}", i + 1);
        assert_eq!(tree, reference, "node {} differs", i + 1);
    }
    // The tree written before the migration is served as ZooKeeper served it, every stat
    // field included, and the session open throughout still resumes.
    for (path, line) in &before {
        assert_eq!(reference.get(path), Some(line), "{path} differs from what ZooKeeper served");
    }
    check_resumes(&live, cluster.port(leader));
}

/// The session `live` (opened on ZooKeeper) resumes on `port`.
fn check_resumes(live: &TestClient, port: u16) {
    let options = ConnectOptions {
        session_id: live.session_id,
        passwd: live.passwd.clone(),
        timeout_ms: SESSION_TIMEOUT_MS,
        last_zxid_seen: live.last_zxid,
        ..ConnectOptions::default()
    };
    let resumed = TestClient::connect_with(port, &options).expect("reconnect");
    assert_eq!(resumed.session_id, live.session_id, "the session did not survive");
}
