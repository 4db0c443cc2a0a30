//! Drives `fkcli` through the seed tutorial's commands, checks its output, and compares it
//! with Debian's `zkCli.sh` running the same commands (zxids, times and session ids
//! normalized). Each tool works under its own chroot of the same server so `ls /` matches.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrokeeper_client::*;
use support::{shared, unique};

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

const TUTORIAL: &[&str] = &[
    "create /java spring",
    "ls /",
    "get /java",
    "set /java springmvc",
    "stat /java",
    "create -e /java/tmp eph",
    "create -s /java/seq- s",
    "ls /java",
    "get -s /java",
    "delete /java",
    "create /java again",
    "getAcl /java",
    "get /missing",
    "delete /java/seq-0000000002",
    "delete /java",
    "ls /",
];

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn fkcli(server: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fkcli"));
    cmd.arg("-server").arg(server).args(args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = wait_output(child, Duration::from_secs(60));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_output(child: std::process::Child, limit: Duration) -> std::process::Output {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("process {id} did not finish within {limit:?}");
        }
    }
}

fn zkcli(server: &str, command: &str) -> Run {
    let mut cmd = Command::new(ZKCLI);
    cmd.arg("-server").arg(server).args(command.split_whitespace());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = wait_output(cmd.spawn().unwrap(), Duration::from_secs(60));
    let keep = |s: &[u8]| -> String {
        String::from_utf8_lossy(s)
            .lines()
            .filter(|l| {
                !(l.is_empty()
                    || l.starts_with("Connecting to ")
                    || l.starts_with("log4j")
                    || l.starts_with("SLF4J")
                    || *l == "WATCHER::"
                    || *l == "WatchedEvent state:SyncConnected type:None path:null")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    Run { ok: out.status.success(), stdout: keep(&out.stdout), stderr: keep(&out.stderr) }
}

/// Replaces zxids, session ids and dates, which legitimately differ between runs.
fn normalize(s: &str) -> String {
    s.lines()
        .map(|l| {
            if let Some((k, _)) = l.split_once(" = 0x") {
                format!("{k} = 0x?")
            } else if l.starts_with("ctime = ") || l.starts_with("mtime = ") {
                let (k, v) = l.split_once(" = ").unwrap();
                assert!(is_java_date(v), "bad date {v:?}");
                format!("{k} = DATE")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_java_date(v: &str) -> bool {
    let parts: Vec<&str> = v.split(' ').collect();
    parts.len() == 6
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&parts[0])
        && parts[1].len() == 3
        && parts[2].len() == 2
        && parts[3].len() == 8
        && parts[5].len() == 4
}

async fn make_root(addr: &str, root: &str) {
    let (zk, _) = ZooKeeper::connect(addr, Duration::from_secs(10)).await.unwrap();
    zk.ensure_path(root).await.unwrap();
    zk.close().await.unwrap();
}

#[tokio::test]
async fn tutorial_outputs() {
    let Some(server) = shared() else { return };
    let root = unique("cli");
    make_root(&server.addr(), &root).await;
    let target = format!("{}{root}", server.addr());
    let mut results = Vec::new();
    for line in TUTORIAL {
        let args: Vec<&str> = line.split_whitespace().collect();
        results.push(fkcli(&target, &args, None));
    }
    let out = |i: usize| results[i].stdout.trim_end().to_owned();
    assert_eq!(out(0), "Created /java");
    assert_eq!(out(1), "[java]");
    assert_eq!(out(2), "spring");
    assert!(results[3].ok && out(3).is_empty());
    let stat = normalize(&out(4));
    assert_eq!(
        stat,
        "cZxid = 0x?\nctime = DATE\nmZxid = 0x?\nmtime = DATE\npZxid = 0x?\ncversion = 0\ndataVersion = 1\n\
         aclVersion = 0\nephemeralOwner = 0x?\ndataLength = 9\nnumChildren = 0"
    );
    assert!(out(4).contains("ephemeralOwner = 0x0\n"));
    assert_eq!(out(5), "Created /java/tmp");
    // The ephemeral node went away with fkcli's one-shot session; cversion is now 1.
    assert_eq!(out(6), "Created /java/seq-0000000001");
    assert_eq!(out(7), "[seq-0000000001]");
    assert!(out(8).starts_with("springmvc\ncZxid = 0x"));
    assert!(!results[9].ok);
    assert_eq!(results[9].stderr.trim_end(), "Node not empty: /java");
    assert_eq!(results[10].stderr.trim_end(), "Node already exists: /java");
    assert_eq!(out(11), "'world,'anyone\n: cdrwa");
    assert_eq!(results[12].stderr.trim_end(), "Node does not exist: /missing");
    assert!(!results[12].ok);
    assert_eq!(results[13].stderr.trim_end(), "Node does not exist: /java/seq-0000000002");
    assert!(!results[14].ok, "still has seq-0000000001");
    assert_eq!(out(15), "[java]");
}

#[tokio::test]
async fn piped_commands_and_watches() {
    let Some(server) = shared() else { return };
    let root = unique("pipe");
    make_root(&server.addr(), &root).await;
    let target = format!("{}{root}", server.addr());
    let script =
        "create /w a\nget -w /w\nset /w b\nsync /w\nls -R /\nwhoami\nversion\nbogus\nhistory\nquit\n";
    let run = fkcli(&target, &[], Some(script));
    assert!(!run.ok, "a failed command makes the exit status non-zero");
    let stdout = run.stdout;
    assert!(stdout.contains("Created /w\na\n"), "{stdout}");
    assert!(
        stdout.contains("WATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/w\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Sync is OK\n"), "{stdout}");
    assert!(stdout.contains("/\n/w\n"), "{stdout}");
    assert!(stdout.contains("Auth scheme: User\nip: 127.0.0.1\n"), "{stdout}");
    assert!(stdout.contains("0 - create /w a\n"), "{stdout}");
    assert!(run.stderr.contains("Command not found: Command not found bogus"), "{}", run.stderr);
    let bad = fkcli(&target, &["create", "nopath"], None);
    assert!(!bad.ok);
    assert_eq!(bad.stderr.trim_end(), "Path must start with / character");
    let usage = fkcli(&target, &["create"], None);
    assert_eq!(usage.stderr.trim_end(), "create [-s] [-e] [-c] [-t ttl] path [data] [acl]");
    let down = Command::new(env!("CARGO_BIN_EXE_fkcli"))
        .args(["-server", &format!("127.0.0.1:{}", support::free_port()), "-timeout", "2000", "ls", "/"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("Connection failed"));
    assert!(!String::from_utf8_lossy(&down.stderr).contains("panicked"));
}

#[tokio::test]
async fn matches_zkcli_sh() {
    let Some(server) = shared() else { return };
    if !Path::new(ZKCLI).exists() {
        if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
            return;
        }
        panic!("{ZKCLI} not found: run scripts/install-test-deps.sh (or set FK_SKIP_ORACLE=1)");
    }
    let fk_root = unique("fk");
    let zk_root = unique("zk");
    make_root(&server.addr(), &fk_root).await;
    make_root(&server.addr(), &zk_root).await;
    let fk_target = format!("{}{fk_root}", server.addr());
    let zk_target = format!("{}{zk_root}", server.addr());
    // Both tools read the tutorial on stdin (one session each), stdout and stderr merged
    // (zkCli prints some results, e.g. `Created /java`, on stderr).
    let mut script = TUTORIAL.join("\n");
    script.push_str("\nquit\n");
    let fk_bin = env!("CARGO_BIN_EXE_fkcli");
    let ours = merged(&format!("{fk_bin} -server {fk_target} 2>&1"), &script);
    let theirs = merged(&format!("{ZKCLI} -server {zk_target} 2>&1"), &script);
    let ours: Vec<String> = normalize(&ours).lines().map(str::to_owned).collect();
    let theirs: Vec<String> = normalize(&theirs).lines().map(str::to_owned).collect();
    for (i, (a, b)) in ours.iter().zip(theirs.iter()).enumerate() {
        assert_eq!(a, b, "line {i} differs\nfkcli:\n{}\nzkCli:\n{}", ours.join("\n"), theirs.join("\n"));
    }
    assert_eq!(ours.len(), theirs.len(), "fkcli:\n{}\nzkCli:\n{}", ours.join("\n"), theirs.join("\n"));
    assert!(ours.len() > 20);
    eprintln!("fkcli and zkCli agree on:\n{}", ours.join("\n"));
    // One-shot mode: same exit status (zkCli exits 1 when the command failed).
    for line in ["ls /", "get /missing"] {
        let a = fkcli(&fk_target, &line.split_whitespace().collect::<Vec<_>>(), None);
        let b = zkcli(&zk_target, line);
        assert_eq!(a.ok, b.ok, "exit status of `{line}`");
        assert_eq!(
            normalize(&format!("{}{}", a.stdout, a.stderr)),
            normalize(&format!("{}{}", b.stdout, b.stderr))
        );
    }
}

/// Runs `command` through sh with `input` on stdin; keeps the lines both tools share
/// (drops banners, blank lines and the connection-state events).
fn merged(command: &str, input: &str) -> String {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = wait_output(child, Duration::from_secs(90));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("Connecting to ")
                || l.starts_with("log4j")
                || l.starts_with("SLF4J")
                || l.starts_with("Welcome to ZooKeeper")
                || l.starts_with("JLine support")
                || *l == "WATCHER::"
                || l.starts_with("WatchedEvent state:SyncConnected type:None")
                || l.starts_with("WatchedEvent state:Closed"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}
