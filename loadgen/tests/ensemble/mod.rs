//! A local 3-node ferrokeeper ensemble for fkload's tests: the `ferrokeeper` binary next to
//! fkload in the same target directory (`cargo test --workspace` builds it; otherwise
//! `cargo build -p ferrokeeper-server`), free 127.0.0.1 ports, a temp dir removed on drop, every
//! process killed by pid and reaped on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The basics are shared with the other live tests' ensemble (support/cluster.rs).
#[path = "../support/cluster.rs"]
mod cluster;
pub use cluster::{four_letter, free_port, tail};

/// The ferrokeeper binary built next to fkload.
pub fn server_bin() -> PathBuf {
    cluster::server_binary()
}

pub fn fkload_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fkload"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node: its config and, while it runs, its process.
pub struct Node {
    pub id: usize,
    pub dir: PathBuf,
    pub client_port: u16,
    pub child: Option<Child>,
}

/// N ferrokeeper processes forming one ensemble.
pub struct Ensemble {
    pub nodes: Vec<Node>,
    pub tmp: TempDir,
}

impl Ensemble {
    /// Writes the configs (from `config(id, dir, client_port)`'s extra lines plus the common
    /// ones) and starts every node; waits for one leader and N-1 followers.
    pub fn start(n: usize) -> Ensemble {
        let tmp = TempDir::new("fkload-ensemble");
        let quorum: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = i + 1;
            let dir = tmp.0.join(format!("node{id}"));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{id}\n")).unwrap();
            let client_port = free_port();
            let mut cfg = format!(
                "tickTime=100\ninitLimit=20\nsyncLimit=5\nmaxSessionTimeout=60000\ndataDir={}\n\
                 clientPort={client_port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n",
                dir.join("data").display()
            );
            for (j, (q, e)) in quorum.iter().enumerate() {
                cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1));
            }
            std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
            nodes.push(Node { id, dir, client_port, child: None });
        }
        let mut e = Ensemble { nodes, tmp };
        for i in 0..n {
            e.start_node(i);
        }
        e.wait_ready(Duration::from_secs(60));
        e
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} is running", node.id);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(node.dir.join("node.log")).unwrap();
        let child = Command::new(server_bin())
            .arg("--config")
            .arg(node.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Connect string over every node.
    pub fn connect(&self) -> String {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.client_port)).collect::<Vec<_>>().join(",")
    }

    pub fn mode(&self, i: usize) -> String {
        four_letter(self.nodes[i].client_port, "srvr")
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned)))
            .unwrap_or_default()
    }

    /// Index of the leader, if exactly one node says it leads.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len()).filter(|i| self.mode(*i) == "leader").collect();
        if leaders.len() == 1 { Some(leaders[0]) } else { None }
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}\n", n.id, tail(&n.dir.join("node.log"), 15)))
            .collect()
    }

    /// Waits for one leader and every other running node following.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            for n in &mut self.nodes {
                if let Some(c) = &mut n.child
                    && let Some(status) = c.try_wait().unwrap()
                {
                    panic!("node {} exited ({status})", n.id);
                }
            }
            let modes: Vec<String> = (0..self.nodes.len()).map(|i| self.mode(i)).collect();
            let running = self.nodes.iter().filter(|n| n.child.is_some()).count();
            if modes.iter().filter(|m| *m == "leader").count() == 1
                && modes.iter().filter(|m| *m == "follower").count() == running - 1
            {
                return;
            }
            assert!(Instant::now() < deadline, "no stable ensemble: {modes:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                // A stopped (SIGSTOP) process still dies of SIGKILL.
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
