//! Test fixture: a real server (Apache ZooKeeper by default, ferrokeeper when `FK_SERVER_BIN`
//! is set) on a free loopback port, killed when the guard drops (or when the test process
//! exits, through a watchdog shell that waits on our stdin), and a tiny TCP proxy that can
//! cut connections.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
pub const ZK_CONF: &str = "/etc/zookeeper/conf";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestServer {
    child: Child,
    stdin: Option<ChildStdin>,
    server_pid: String,
    pub port: u16,
    pub dir: PathBuf,
    pub kind: &'static str,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fkclient-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl TestServer {
    /// Starts a server, or returns `None` when the oracle is missing and `FK_SKIP_ORACLE=1`.
    /// Panics (failing the test) when the ZooKeeper jar is missing otherwise.
    pub fn start() -> Option<TestServer> {
        let bin = std::env::var("FK_SERVER_BIN").ok().filter(|s| !s.is_empty());
        if bin.is_none() && !Path::new(ZK_JAR).exists() {
            if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
                eprintln!("skipping: {ZK_JAR} missing and FK_SKIP_ORACLE=1");
                return None;
            }
            panic!(
                "Apache ZooKeeper not found at {ZK_JAR}: run scripts/install-test-deps.sh \
                 (or set FK_SKIP_ORACLE=1 to skip, or FK_SERVER_BIN=/path/to/ferrokeeper)"
            );
        }
        let port = free_port();
        let dir = temp_dir("server");
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nextendedTypesEnabled=true\nadmin.enableServer=false\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let (cmd, kind) = match &bin {
            Some(bin) => {
                (format!("{} --config {}", sh_quote(bin), sh_quote(&cfg.to_string_lossy())), "ferrokeeper")
            }
            None => (
                format!(
                    "java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dzookeeper.admin.enableServer=false \
                     -Dzookeeper.root.logger=WARN,CONSOLE -cp {ZK_CONF}:{ZK_JAR} \
                     org.apache.zookeeper.server.quorum.QuorumPeerMain {}",
                    sh_quote(&cfg.to_string_lossy())
                ),
                "zookeeper",
            ),
        };
        let log = dir.join("server.log");
        // The watchdog: start the server, print its pid, and kill it when our stdin closes.
        let script = format!(
            "cd {d}; {cmd} >{log} 2>&1 </dev/null & p=$!; echo $p; read _x; kill $p 2>/dev/null; \
             sleep 1; kill -9 $p 2>/dev/null; wait $p 2>/dev/null; cd /; rm -rf {d}",
            d = sh_quote(&dir.to_string_lossy()),
            log = sh_quote(&log.to_string_lossy())
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let server_pid = line.trim().to_owned();
        let stdin = child.stdin.take();
        let server = TestServer { child, stdin, server_pid, port, dir, kind };
        server.wait_ready(Duration::from_secs(60));
        Some(server)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers a session handshake.
    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if handshake_ok(&self.addr()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!("{} server on {} did not become ready in {limit:?}; log:\n{log}", self.kind, self.addr());
    }
}

fn handshake_ok(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // ConnectRequest: protocol 0, zxid 0, timeout 4000, session 0, 16-byte password, readOnly.
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&4000i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[0u8; 16]);
    body.push(0);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    if s.write_all(&frame).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut resp = vec![0u8; i32::from_be_bytes(len).clamp(0, 4096) as usize];
    if s.read_exact(&mut resp).is_err() || resp.len() < 16 {
        return false;
    }
    // Close the session we just made: closeSession xid 1.
    let mut close = 8i32.to_be_bytes().to_vec();
    close.extend_from_slice(&1i32.to_be_bytes());
    close.extend_from_slice(&(-11i32).to_be_bytes());
    let _ = s.write_all(&close);
    true
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = Command::new("kill").arg("-9").arg(&self.server_pid).status();
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One server per test binary (cleaned up by the watchdog when the process exits).
pub fn shared() -> Option<&'static TestServer> {
    static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
    SERVER.get_or_init(TestServer::start).as_ref()
}

/// A unique path prefix for one test.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/t-{tag}-{}-{n}", std::process::id())
}

/// A TCP proxy in front of `target` whose connections can be cut and which can refuse new ones.
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
    task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    enabled: bool,
    conns: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState { enabled: true, conns: Vec::new() }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut guard = st.lock().unwrap();
                if !guard.enabled {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                guard.conns.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Proxy { port, state, task }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Drops every proxied connection (both sides see the socket close).
    pub fn cut(&self) {
        for c in self.state.lock().unwrap().conns.drain(..) {
            c.abort();
        }
    }

    /// Refuses (accepts and closes) new connections while disabled.
    pub fn set_enabled(&self, enabled: bool) {
        self.state.lock().unwrap().enabled = enabled;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Bounded wait helper for async conditions.
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.expect("timed out")
}
