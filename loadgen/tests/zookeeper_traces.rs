//! fkload on Apache ZooKeeper's own records of traffic (issue 16): a real ZooKeeper 3.8 (Debian)
//! with its audit log on takes an fkload run (sets, create/delete, multis, ephemeral churn);
//! its transaction logs and its audit log, read as traces, hold exactly the writes the run made
//! (op mix, paths, sizes), and replayed against ferrokeeper they are all issued again, in the
//! same mix, without an error. A run starts from ZooKeeper's snapshot tree (`--tree-from`) and
//! from ferrokeeper's. One ZooKeeper run serves every check.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_client::ZooKeeper;
use fkload::run::{RunOptions, RunResult, Tree, prepare, run};
use fkload::workload::Workload;
use fkload::{snaptree, trace, zktrace};
use support::cluster::{four_letter, free_port, server_binary, tail};

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// slf4j's log4j binding and log4j itself: without them Debian's ZooKeeper logs nothing, the
/// audit log included.
const LOG_JARS: [&str; 2] = ["/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"];

/// A server process, killed by pid on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_serving(port: u16, proc: &mut Proc, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if four_letter(port, "srvr").is_ok_and(|t| t.contains("Mode:")) {
            return;
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("server exited ({status}):\n{}", tail(&proc.log, 40));
        }
        assert!(Instant::now() < deadline, "not serving after {limit:?}:\n{}", tail(&proc.log, 40));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_zookeeper(dir: &Path, port: u16) -> Proc {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        conf.join("log4j.properties"),
        format!(
            "log4j.rootLogger=WARN,CONSOLE\n\
             log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.CONSOLE.layout.ConversionPattern=%d{{ISO8601}} - %-5p [%t:%C{{1}}@%L] - %m%n\n\
             log4j.logger.org.apache.zookeeper.audit.Slf4jAuditLogger=INFO,AUDIT\n\
             log4j.additivity.org.apache.zookeeper.audit.Slf4jAuditLogger=false\n\
             log4j.appender.AUDIT=org.apache.log4j.FileAppender\n\
             log4j.appender.AUDIT.File={}\n\
             log4j.appender.AUDIT.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.AUDIT.layout.ConversionPattern=%d{{ISO8601}} %p %c{{2}}: %m%n\n",
            dir.join("audit.log").display()
        ),
    )
    .unwrap();
    // snapCount 200: the run leaves several snapshots and logs behind.
    let cfg = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
         audit.enable=true\nsnapCount=200\nautopurge.purgeInterval=0\n4lw.commands.whitelist=*\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    let log = dir.join("zk.log");
    let out = std::fs::File::create(&log).unwrap();
    let class_path =
        [conf.display().to_string(), ZK_JAR.to_owned(), LOG_JARS[0].to_owned(), LOG_JARS[1].to_owned()]
            .join(":");
    let child = Command::new("/usr/bin/java")
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            &class_path,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut proc = Proc { child, log };
    wait_serving(port, &mut proc, Duration::from_secs(40));
    proc
}

fn start_ferrokeeper(dir: &Path, port: u16) -> Proc {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
         snapCount=200\n4lw.commands.whitelist=*\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    let log = dir.join("fk.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(server_binary())
        .arg("--config")
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut proc = Proc { child, log };
    wait_serving(port, &mut proc, Duration::from_secs(20));
    proc
}

fn workload() -> Workload {
    Workload::from_yaml(
        "name: zk-traffic\n\
         ops: {get: 20, set: 40, create_delete: 20, multi: 10, ephemeral_churn: 10}\n\
         znodes: 60\n\
         tree: {fanout: 20}\n\
         value_size: {dist: uniform, min: 10, max: 300}\n\
         sessions: 4\n\
         inflight: 1\n\
         duration_secs: 2\n\
         warmup_secs: 0\n\
         rate: 150\n",
    )
    .unwrap()
}

fn counts(r: &RunResult) -> BTreeMap<String, u64> {
    r.ops.iter().map(|(k, v)| (k.clone(), v.count)).collect()
}

fn errors(r: &RunResult) -> u64 {
    r.ops.values().map(|v| v.errors).sum()
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn newest(dir: &Path, prefix: &str) -> PathBuf {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
            i64::from_str_radix(hex, 16).ok().map(|z| (z, e.path()))
        })
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("no {prefix}.* in {}", dir.display())).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_logs_and_audit_log_replay_against_ferrokeeper_with_the_same_op_mix() {
    if !Path::new(ZK_JAR).exists()
        || !Path::new("/usr/bin/java").exists()
        || !LOG_JARS.iter().all(|j| Path::new(j).exists())
    {
        assert!(
            std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1"),
            "Apache ZooKeeper (Debian `zookeeper`, with liblog4j1.2-java and libslf4j-java) is \
             missing: run scripts/install-test-deps.sh, or set FK_SKIP_ORACLE=1 to skip"
        );
        eprintln!("SKIPPED: Apache ZooKeeper missing and FK_SKIP_ORACLE=1");
        return;
    }
    let root = std::env::temp_dir().join(format!("fkload-zktraces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let zk_dir = root.join("zk");
    let zk_port = free_port();
    let mut zk = start_zookeeper(&zk_dir, zk_port);
    let target = format!("127.0.0.1:{zk_port}");

    // The key tree first, then a pause, so that on replay the tree is in place before the run's
    // sessions (other workers) start writing to it.
    let w = workload();
    let (session, _events) = ZooKeeper::builder(&target).connect().await.unwrap();
    let value = Bytes::from(vec![b'v'; 300]);
    let setup_creates =
        prepare(&session, &w, &Tree::new(&w), &value, fkload::worker::WorkerSpec::SOLE).await.unwrap();
    session.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut o = RunOptions::new(&target, w.clone());
    o.skip_setup = true;
    o.server_stats = false;
    let ran = tokio::time::timeout(Duration::from_secs(60), run(&o, None)).await.unwrap().unwrap();
    // Every op the run completed, the drain after its measured phase included.
    assert!(
        ran.completed.values().all(|c| c.error_codes.is_empty()),
        "errors on ZooKeeper: {:?}",
        ran.completed
    );
    let ran: BTreeMap<String, u64> = ran.completed.iter().map(|(k, c)| (k.clone(), c.count)).collect();
    assert!(get(&ran, "set") > 20 && get(&ran, "multi") > 3 && get(&ran, "session") > 3, "{ran:?}");
    // Let ZooKeeper log the last session closes, then stop it (SIGKILL: its log is complete
    // up to the last acknowledged write, which is all this test needs).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = zk.child.kill();
    let _ = zk.child.wait();

    // What ZooKeeper logged: every write of the run (reads leave no txn).
    let version_dir = zk_dir.join("data/version-2");
    let logs = zktrace::log_files(&zk_dir.join("data")).unwrap();
    assert!(logs.len() >= 2, "snapCount=200 should have rolled the log: {logs:?}");
    let from_log = zktrace::from_zk_logs(&logs).unwrap();
    let logged = from_log.op_counts();
    let expected_creates = setup_creates + get(&ran, "create") + get(&ran, "session");
    assert_eq!(get(&logged, "create"), expected_creates, "{logged:?} vs run {ran:?}");
    assert_eq!(get(&logged, "delete"), get(&ran, "delete"));
    assert_eq!(get(&logged, "set"), get(&ran, "set"));
    assert_eq!(get(&logged, "multi"), get(&ran, "multi"));
    assert_eq!(
        logged.keys().filter(|k| !["create", "delete", "set", "multi"].contains(&k.as_str())).count(),
        0
    );
    // Sessions are not replayed but are accounted for: the setup's, the run's 4, each churn's.
    assert!(from_log.skipped.get("createSession").copied().unwrap_or(0) >= 5 + get(&ran, "session"));
    // Sizes as written: multis set two keys with one value (check + set + set), sets 10..=300 B.
    for ev in &from_log.events {
        match ev.op.as_str() {
            "multi" => {
                let ops: Vec<&str> = ev.ops.iter().map(|o| o.op.as_str()).collect();
                assert_eq!(ops, ["check", "set", "set"]);
                assert_eq!(ev.ops[1].size, ev.ops[2].size);
            }
            "set" => assert!((10..=300).contains(&ev.size), "{ev:?}"),
            _ => {}
        }
    }
    assert!(from_log.events.iter().any(|e| e.mode.as_deref() == Some("ephemeral")));
    let span_ms = from_log.events.last().unwrap().t_us / 1000;
    assert!((2000..10_000).contains(&span_ms), "the log spans {span_ms} ms");

    // The audit log: the same writes, a multi as its two setData lines.
    let audit_path = zk_dir.join("audit.log");
    let audit = zktrace::from_audit_log(&std::fs::read_to_string(&audit_path).unwrap(), &audit_path).unwrap();
    let audited = audit.op_counts();
    assert_eq!(get(&audited, "create"), expected_creates, "{audited:?}");
    assert_eq!(get(&audited, "delete"), get(&ran, "delete"));
    assert_eq!(get(&audited, "set"), get(&ran, "set") + 2 * get(&ran, "multi"));

    // Replayed against ferrokeeper: every write issued again, same mix, no error.
    let fk_port = free_port();
    let _fk = start_ferrokeeper(&root.join("fk1"), fk_port);
    let fk = format!("127.0.0.1:{fk_port}");
    let replayed = tokio::time::timeout(
        Duration::from_secs(60),
        trace::replay_with(&fk, &zk_dir.join("data"), 1.0, 4, 1, false, None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(counts(&replayed), logged, "replay of the log");
    assert_eq!(errors(&replayed), 0, "replay of the log: {:?}", replayed.ops);
    // The same data: a key's value has the size of its last write in ZooKeeper's log (a key
    // whose last write had no other write to it in the 200 ms before, so replay cannot reorder).
    let (check, _e) = ZooKeeper::builder(&fk).connect().await.unwrap();
    let mut writes: BTreeMap<String, Vec<(u64, usize)>> = BTreeMap::new();
    for e in &from_log.events {
        let subs: Vec<(String, usize)> = if e.ops.is_empty() {
            vec![(e.path.clone(), e.size)]
        } else {
            e.ops.iter().filter(|o| o.op == "set").map(|o| (o.path.clone(), o.size)).collect()
        };
        if e.op == "set" || e.op == "multi" {
            for (path, size) in subs {
                writes.entry(path).or_default().push((e.t_us, size));
            }
        }
    }
    let (path, size) = writes
        .iter()
        .find_map(|(path, w)| match w.as_slice() {
            [.., (t1, _), (t2, size)] if t2 - t1 >= 200_000 => Some((path.clone(), *size)),
            [(_, size)] => Some((path.clone(), *size)),
            _ => None,
        })
        .unwrap();
    let (data, _stat) = check.get_data(&path).await.unwrap();
    assert_eq!(data.len(), size, "{path}");

    let fk2_port = free_port();
    let _fk2 = start_ferrokeeper(&root.join("fk2"), fk2_port);
    let fk2 = format!("127.0.0.1:{fk2_port}");
    let replayed = tokio::time::timeout(
        Duration::from_secs(60),
        trace::replay_with(&fk2, &audit_path, 4.0, 4, 1, false, None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(counts(&replayed), audited, "replay of the audit log");
    assert_eq!(errors(&replayed), 0, "replay of the audit log: {:?}", replayed.ops);

    // A run from ZooKeeper's newest snapshot's tree (on a fresh ferrokeeper), and the reverse:
    // ferrokeeper's own snapshot of the replayed tree read back.
    let zk_snap = newest(&version_dir, "snapshot");
    let loaded = snaptree::load(&zk_snap).unwrap();
    assert_eq!(loaded.format, "zookeeper");
    assert!(loaded.nodes.iter().any(|n| n.path == "/fkload/d2/k59"), "snapshot holds the key tree");
    let fk3_port = free_port();
    let _fk3 = start_ferrokeeper(&root.join("fk3"), fk3_port);
    let fk3 = format!("127.0.0.1:{fk3_port}");
    let mut small = Workload::from_yaml("name: on-snapshot\nops: {get: 50, set: 30, children: 20}\nsessions: 2\ninflight: 2\nduration_secs: 0.5\nwarmup_secs: 0\n").unwrap();
    small.value_size = fkload::workload::SizeDist::Fixed { size: 20 };
    let mut o = RunOptions::new(&fk3, small);
    o.server_stats = false;
    o.tree_from = Some(zk_snap.clone());
    let on_snapshot = tokio::time::timeout(Duration::from_secs(60), run(&o, None)).await.unwrap().unwrap();
    assert_eq!(errors(&on_snapshot), 0, "{:?}", on_snapshot.ops);
    assert!(get(&counts(&on_snapshot), "get") > 0);
    let (check3, _e) = ZooKeeper::builder(&fk3).connect().await.unwrap();
    let inner = loaded.nodes.iter().find(|n| n.has_children).unwrap();
    assert!(!check3.get_children(&inner.path).await.unwrap().is_empty());
    assert_eq!(check3.get_data(&inner.path).await.unwrap().0, inner.data);

    let fk_snap = newest(&root.join("fk1/data/fk-snap"), "snapshot");
    let fk_loaded = snaptree::load(&fk_snap).unwrap();
    assert_eq!(fk_loaded.format, "ferrokeeper");
    assert!(fk_loaded.nodes.iter().any(|n| n.path == "/fkload/d0/k0"), "{}", fk_snap.display());
    for zk in [check, check3] {
        let _ = zk.close().await;
    }
    let _ = std::fs::remove_dir_all(&root);
}
