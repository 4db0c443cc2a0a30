//! `scripts/cluster.sh start 3` (with the debug ferrokeeper binary) returns only once the
//! ensemble serves, and its status then shows one leader and two followers, never "not serving".
//! Bounded: the script's own FK_START_TIMEOUT (30 s) and `timeout 90`; `stop` runs on drop, and
//! the nodes are stopped by the pids the script recorded.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A port offset whose client, quorum, election and metrics ports are all free now.
fn free_offset() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    for attempt in 0..50 {
        let offset = 30_000 + (nanos / 7 + attempt * 97) % 20_000;
        let ports = (1..=3).flat_map(|i| [2180 + i, 2880 + i, 3880 + i, 7000 + i]);
        if ports.map(|p| p + offset).all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok()) {
            return offset;
        }
    }
    panic!("no free port range found");
}

struct Cluster {
    dir: PathBuf,
    offset: u32,
}

impl Cluster {
    fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .arg("90")
            .arg("bash")
            .arg(repo_root().join("scripts/cluster.sh"))
            .args(args)
            .env("FK_BIN", support::cluster::server_binary())
            .env("FK_CLUSTER_DIR", &self.dir)
            .env("FK_CLUSTER_PORT_OFFSET", self.offset.to_string())
            .env("FK_START_TIMEOUT", "30")
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["stop", "3"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn cluster_start_waits_until_the_ensemble_serves() {
    let dir = std::env::temp_dir().join(format!("fk-cluster-script-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = Cluster { dir, offset: free_offset() };
    let out = cluster.script(&["start", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "start failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ensemble serving after"), "{stdout}");
    let statuses: Vec<&str> =
        stdout.lines().filter(|l| l.contains("Mode: ") || l.contains("not serving")).collect();
    assert_eq!(statuses.len(), 3, "a status line per node:\n{stdout}");
    assert_eq!(statuses.iter().filter(|l| l.ends_with("Mode: leader")).count(), 1, "{stdout}");
    assert_eq!(statuses.iter().filter(|l| l.ends_with("Mode: follower")).count(), 2, "{stdout}");
    assert!(!stdout.contains("not serving") && !stdout.contains("Error"), "{stdout}");
    // The status the script printed is what the nodes say now.
    let status = String::from_utf8_lossy(&cluster.script(&["status", "3"]).stdout).into_owned();
    assert_eq!(status.matches("Mode: leader").count(), 1, "{status}");
    assert_eq!(status.matches("Mode: follower").count(), 2, "{status}");
}
