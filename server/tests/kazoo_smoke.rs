//! Runs `tests/kazoo/smoke.py` and `tests/kazoo/creator_acl.py` (the kazoo Python client)
//! against ferrokeeper and against Apache ZooKeeper; the scripts assert every result and exit
//! non-zero on failure.
//!
//! kazoo must be importable by `python3` (see `scripts/install-test-deps.sh`); otherwise the
//! test fails, unless `FK_SKIP_ORACLE=1` (skips the ZooKeeper run and a missing kazoo).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::{ServerKind, ServerProcess};

fn kazoo_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo.client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED: python3 cannot import kazoo and FK_SKIP_ORACLE=1");
        return false;
    }
    panic!("python3 cannot import kazoo: run `scripts/install-test-deps.sh` (or set FK_SKIP_ORACLE=1)");
}

fn run_smoke(kind: ServerKind) {
    run_script(kind, "smoke.py", "kazoo smoke: OK");
}

fn run_script(kind: ServerKind, script: &str, ok_line: &str) {
    let server = ServerProcess::start_standard(kind);
    let script = format!("{}/tests/kazoo/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(server.addr());
    let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{script} against {} did not finish: {e}", kind.name()));
    assert!(
        ok && stdout.contains(ok_line),
        "{script} failed against {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log tail:\n{}",
        kind.name(),
        server.log_tail()
    );
}

/// kazoo's CREATOR_ALL_ACL reaches the server with a null id (issue 14).
#[test]
fn kazoo_creator_all_acl_ferrokeeper() {
    if !kazoo_available() {
        return;
    }
    run_script(ServerKind::Ferrokeeper, "creator_acl.py", "kazoo creator acl: OK");
}

#[test]
fn kazoo_creator_all_acl_zookeeper() {
    if !kazoo_available() || !support::oracle_available() {
        return;
    }
    run_script(ServerKind::ZooKeeper, "creator_acl.py", "kazoo creator acl: OK");
}

#[test]
fn kazoo_smoke_ferrokeeper() {
    if !kazoo_available() {
        return;
    }
    run_smoke(ServerKind::Ferrokeeper);
}

#[test]
fn kazoo_smoke_zookeeper() {
    if !kazoo_available() || !support::oracle_available() {
        return;
    }
    run_smoke(ServerKind::ZooKeeper);
}
