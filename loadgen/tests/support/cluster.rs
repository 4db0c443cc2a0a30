//! A loopback ferrokeeper ensemble for fkload's live tests: the debug `ferrokeeper` binary next
//! to fkload, free ports, `/metrics` on, every 4lw whitelisted. Processes are killed by pid and
//! the directory removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 now, outside the kernel's ephemeral range (32768-60999 here), so
/// that the many outgoing connections of a load test cannot take it between this call and the
/// server's bind. Ports are handed out once per process; a random start keeps concurrent test
/// processes apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let _ = NEXT.compare_exchange(0, 1 + seed % SPAN, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The ferrokeeper binary built next to fkload (`cargo test --workspace` builds it).
pub fn server_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_fkload")).with_file_name("ferrokeeper");
    assert!(
        server.exists(),
        "{} not found: `cargo test --workspace` builds it; otherwise run `cargo build -p \
         ferrokeeper-server` first",
        server.display()
    );
    server
}

/// Sends a four-letter word and reads the answer (2 s timeout).
pub fn four_letter(port: u16, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `GET path` over HTTP/1.0 (never chunked); the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    Ok(raw.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub struct Ensemble {
    pub dir: PathBuf,
    pub client_ports: Vec<u16>,
    pub metrics_ports: Vec<u16>,
    children: Vec<Child>,
}

impl Ensemble {
    /// Starts `n` nodes and waits (≤ 30 s) until one leads and the others follow.
    pub fn start(name: &str, n: usize) -> Ensemble {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = server_binary();
        let quorum: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let metrics_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut ensemble = Ensemble { dir: dir.clone(), client_ports, metrics_ports, children: Vec::new() };
        for i in 0..n {
            let node = dir.join(format!("node{}", i + 1));
            std::fs::create_dir_all(node.join("data")).unwrap();
            std::fs::write(node.join("data/myid"), format!("{}\n", i + 1)).unwrap();
            let mut cfg = format!(
                "tickTime=100\ninitLimit=20\nsyncLimit=5\nmaxSessionTimeout=60000\ndataDir={}\n\
                 clientPort={}\nclientPortAddress=127.0.0.1\nmetricsProvider.httpPort={}\n\
                 metricsProvider.httpHost=127.0.0.1\n4lw.commands.whitelist=*\ntxnLogBackend=sync\n",
                node.join("data").display(),
                ensemble.client_ports[i],
                ensemble.metrics_ports[i]
            );
            for (j, (q, e)) in quorum.iter().enumerate() {
                cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1));
            }
            std::fs::write(node.join("zoo.cfg"), cfg).unwrap();
            let log = std::fs::File::create(node.join("node.log")).unwrap();
            let child = Command::new(&server)
                .arg("--config")
                .arg(node.join("zoo.cfg"))
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
            ensemble.children.push(child);
        }
        ensemble.wait_formed(Duration::from_secs(30));
        ensemble
    }

    fn wait_formed(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let modes: Vec<String> = self.client_ports.iter().map(|&p| mode(p)).collect();
            let leaders = modes.iter().filter(|m| *m == "leader").count();
            let followers = modes.iter().filter(|m| *m == "follower").count();
            if leaders == 1 && followers + 1 == modes.len() {
                return;
            }
            for child in &mut self.children {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("a node exited early ({status})\n{}", self.logs());
                }
            }
            assert!(Instant::now() < deadline, "no stable ensemble in {limit:?}: {modes:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn connect_string(&self) -> String {
        self.client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.client_ports.len() {
            let name = format!("node{}/node.log", i + 1);
            out.push_str(&format!("--- {name} ---\n{}\n", tail(&self.dir.join(&name), 20)));
        }
        out
    }
}

/// `Mode:` from `srvr` (empty when not serving).
pub fn mode(port: u16) -> String {
    four_letter(port, "srvr")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned)))
        .unwrap_or_default()
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses the text exposition (no escaped quotes in our label values).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(split) => split,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.trim_end_matches('}');
                let labels = inner
                    .split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_owned(), v.trim_matches('"').to_owned()))
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), Vec::new()),
        };
        out.push(Sample { name, labels, value });
    }
    out
}
