//! Drives Debian's real `zkCli.sh` (Apache ZooKeeper's Java CLI) with the tutorial's
//! commands against ferrokeeper and against Apache ZooKeeper, and compares the normalised
//! output (zxid/session hex renamed by first appearance, times blanked, JVM/log noise dropped).
//!
//! `FK_SKIP_ORACLE=1` skips when Apache ZooKeeper is not installed.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use support::{ServerKind, ServerProcess, TempDir, ZKCLI};

/// The tutorial session, piped into zkCli's stdin (JLine is disabled, so no prompts).
const SCRIPT: &str = "\
create /java spring
ls /
get /java
set /java springmvc
get /java
stat /java
create -e /java/eph x
create -s /java/seq- y
ls /java
get -s /java
delete /java
getAcl /java
create /java again
ls -R /
get /nosuch
delete /java/eph
delete /java/seq-0000000001
delete /java
ls /
stat /java
quit
";

/// Runs the script through zkCli against `port`; returns stdout+stderr as one stream.
fn run_cli(port: u16) -> String {
    let dir = TempDir::new("zkcli");
    let script = dir.path().join("script.txt");
    fs::write(&script, SCRIPT).unwrap();
    let out_path = dir.path().join("out.txt");
    let out = fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(ZKCLI);
    cmd.arg("-server")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(fs::File::open(&script).unwrap())
        .env("CLIENT_JVMFLAGS", "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC");
    // One file for both streams keeps error lines in order with normal output.
    let err = out.try_clone().unwrap();
    let mut child = cmd.stdout(out).stderr(err).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zkCli timed out; output so far:\n{}", fs::read_to_string(&out_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::read_to_string(&out_path).unwrap()
}

/// Drops JVM/log noise and connection chatter; renames 0x… numbers canonically; blanks times.
fn normalize(raw: &str) -> Vec<String> {
    let mut hex: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end();
        if line.is_empty()
            || line.starts_with("SLF4J:")
            || line.starts_with("Connecting to ")
            || line.starts_with("Welcome to ZooKeeper")
            || line.starts_with("JLine support")
            || line.starts_with("WATCHER::")
            || line.starts_with("WatchedEvent state:")
            || line.contains(" INFO ")
            || line.contains(" WARN ")
            || line.contains("log4j")
        {
            continue;
        }
        if let Some(key) = ["ctime = ", "mtime = "].iter().find(|k| line.starts_with(**k)) {
            out.push(format!("{key}<time>"));
            continue;
        }
        let mut norm = String::new();
        let mut rest = line;
        while let Some(pos) = rest.find("0x") {
            norm.push_str(&rest[..pos]);
            let tail = &rest[pos + 2..];
            let len = tail.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(tail.len());
            let digits = &tail[..len];
            if digits.is_empty() || digits.chars().all(|c| c == '0') {
                norm.push_str(&rest[pos..pos + 2 + len]);
            } else {
                let n = hex.len();
                let id = *hex.entry(digits.to_owned()).or_insert(n);
                norm.push_str(&format!("0x<{id}>"));
            }
            rest = &tail[len..];
        }
        norm.push_str(rest);
        out.push(norm);
    }
    out
}

/// Checks that the oracle's output contains what the tutorial expects, so the comparison
/// is against a meaningful transcript.
fn check_transcript(lines: &[String]) {
    let text = lines.join("\n");
    for expected in [
        "[java, zookeeper]",
        "spring",
        "springmvc",
        "dataVersion = 1",
        "Created /java/eph",
        "Created /java/seq-0000000001",
        "[eph, seq-0000000001]",
        "Node not empty: /java",
        "'world,'anyone",
        "Node already exists: /java",
        "/java/seq-0000000001",
        "/zookeeper/quota",
        "Node does not exist: /nosuch",
        "[zookeeper]",
        "Node does not exist: /java",
    ] {
        assert!(text.contains(expected), "transcript lacks {expected:?}:\n{text}");
    }
}

#[test]
fn zkcli_tutorial_matches_zookeeper() {
    if !support::oracle_available() {
        return;
    }
    let other = support::server_under_test();
    let zk = ServerProcess::start_standard(ServerKind::ZooKeeper);
    let zk_out = normalize(&run_cli(zk.port));
    drop(zk);
    eprintln!("zookeeper transcript (normalised):\n{}", zk_out.join("\n"));
    check_transcript(&zk_out);

    let fk = ServerProcess::start_standard(other);
    let fk_raw = run_cli(fk.port);
    let fk_out = normalize(&fk_raw);
    if fk_out != zk_out {
        let mut report = String::from("zkCli transcript differs (line: zookeeper | other)\n");
        for i in 0..zk_out.len().max(fk_out.len()) {
            let a = zk_out.get(i).map_or("<none>", String::as_str);
            let b = fk_out.get(i).map_or("<none>", String::as_str);
            let mark = if a == b { "  " } else { "!!" };
            report.push_str(&format!("{mark} {i:3}: {a:<40} | {b}\n"));
        }
        panic!("{report}\nraw {} output:\n{fk_raw}\nserver log tail:\n{}", other.name(), fk.log_tail());
    }
}
