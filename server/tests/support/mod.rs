//! Shared test support: start ferrokeeper or Apache ZooKeeper on a free port, a small
//! synchronous wire client built on `ferrokeeper_proto`, and a four-letter-word helper.
//!
//! Every started process is owned by a [`ServerProcess`] whose `Drop` kills it by pid and
//! waits (bounded); every socket read has a timeout; temp dirs are removed on drop.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::jute::Jute;
use ferrokeeper_proto::op;
use ferrokeeper_proto::records::{
    AuthPacket, ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader, WatcherEvent,
};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;

/// Where Debian's ZooKeeper lives.
pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
pub const ZK_CONF_DIR: &str = "/etc/zookeeper/conf";
pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// Default read timeout for every test socket.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server implementation to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Ferrokeeper,
    ZooKeeper,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ferrokeeper => "ferrokeeper",
            ServerKind::ZooKeeper => "zookeeper",
        }
    }
}

/// The ZooKeeper jar: `FK_ZK_JAR` if set (lets the missing-oracle path be exercised), else
/// Debian's.
/// The server compared with the ZooKeeper oracle: ferrokeeper, or with `FK_DIFF_SELF=1` a
/// second ZooKeeper (to validate a test against the oracle itself).
pub fn server_under_test() -> ServerKind {
    if std::env::var("FK_DIFF_SELF").as_deref() == Ok("1") {
        ServerKind::ZooKeeper
    } else {
        ServerKind::Ferrokeeper
    }
}

pub fn zk_jar() -> String {
    std::env::var("FK_ZK_JAR").unwrap_or_else(|_| ZK_JAR.to_owned())
}

/// Returns true when the Apache ZooKeeper oracle can run. When it is missing the calling
/// test fails with instructions, unless `FK_SKIP_ORACLE=1` is set (then it returns false and
/// the caller skips, printing why).
pub fn oracle_available() -> bool {
    let jar = zk_jar();
    if Path::new(&jar).exists() && Path::new("/usr/bin/java").exists() {
        return true;
    }
    if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED: Apache ZooKeeper ({jar}) is missing and FK_SKIP_ORACLE=1");
        return false;
    }
    panic!(
        "Apache ZooKeeper oracle not found ({jar} or /usr/bin/java missing). \
         Run `scripts/install-test-deps.sh` to install it, or set FK_SKIP_ORACLE=1 to skip \
         the oracle tests."
    );
}

/// A temp directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("fk-{prefix}-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Base64(SHA1("user:password")), the digest ZooKeeper stores for digest ids.
pub fn digest(user: &str, password: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The super user's password in every generated zoo.cfg (`superDigest=super:...`).
pub const SUPER_PASSWORD: &str = "superpw";

/// A running server process; killed (SIGKILL) and reaped on drop.
pub struct ServerProcess {
    pub kind: ServerKind,
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    pub cfg_path: PathBuf,
    log_path: PathBuf,
}

/// ZooKeeper's class path: its conf dir and jar, plus the Debian netty jars its manifest
/// leaves out (codec, resolver, unix-common), which `NettyServerCnxnFactory` (the secure
/// client port) needs.
fn zk_class_path() -> String {
    let mut path = format!("{ZK_CONF_DIR}:{}", zk_jar());
    for jar in ["netty-codec", "netty-resolver", "netty-transport-native-unix-common"] {
        let file = format!("/usr/share/java/{jar}.jar");
        if Path::new(&file).exists() {
            path.push(':');
            path.push_str(&file);
        }
    }
    path
}

impl ServerProcess {
    /// Starts `kind` with a generated zoo.cfg (plus `extra` key/value lines) and waits until
    /// it serves (srvr answers or a session handshake succeeds). Panics with the server log
    /// on failure.
    pub fn start(kind: ServerKind, extra: &[(&str, &str)]) -> ServerProcess {
        Self::start_env(kind, extra, &[])
    }

    /// [`ServerProcess::start`] with extra environment variables for the server process.
    pub fn start_env(kind: ServerKind, extra: &[(&str, &str)], env: &[(&str, &str)]) -> ServerProcess {
        Self::start_full(kind, extra, env, &[])
    }

    /// [`ServerProcess::start`] with `-Dname=value` arguments (Java system properties for
    /// ZooKeeper, the same arguments before `--config` for ferrokeeper).
    pub fn start_with_properties(
        kind: ServerKind,
        extra: &[(&str, &str)],
        properties: &[(&str, &str)],
    ) -> ServerProcess {
        Self::start_full(kind, extra, &[], properties)
    }

    fn start_full(
        kind: ServerKind,
        extra: &[(&str, &str)],
        env: &[(&str, &str)],
        properties: &[(&str, &str)],
    ) -> ServerProcess {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            match Self::try_start(kind, extra, env, properties) {
                Ok(server) => return server,
                Err(e) => {
                    eprintln!("starting {} failed, retrying: {e}", kind.name());
                    last_err = e;
                }
            }
        }
        panic!("could not start {}: {last_err}", kind.name());
    }

    /// The zoo.cfg extras the differential and CLI tests use (TTL nodes, all 4lw, super).
    pub fn standard_extras() -> Vec<(&'static str, String)> {
        vec![
            ("extendedTypesEnabled", "true".to_owned()),
            ("4lw.commands.whitelist", "*".to_owned()),
            ("DigestAuthenticationProvider.superDigest", digest("super", SUPER_PASSWORD)),
        ]
    }

    pub fn start_standard(kind: ServerKind) -> ServerProcess {
        let extras = Self::standard_extras();
        let refs: Vec<(&str, &str)> = extras.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::start(kind, &refs)
    }

    fn try_start(
        kind: ServerKind,
        extra: &[(&str, &str)],
        env: &[(&str, &str)],
        properties: &[(&str, &str)],
    ) -> Result<ServerProcess, String> {
        let properties: Vec<String> = properties.iter().map(|(k, v)| format!("-D{k}={v}")).collect();
        let dir = TempDir::new(kind.name());
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
        let port = free_port();
        let mut cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n",
            data_dir.display()
        );
        for (k, v) in extra {
            cfg.push_str(&format!("{k}={v}\n"));
        }
        let cfg_path = dir.path().join("zoo.cfg");
        fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
        let log_path = dir.path().join("server.log");
        let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match kind {
            ServerKind::Ferrokeeper => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
                c.args(&properties);
                c.arg("--config").arg(&cfg_path);
                c
            }
            ServerKind::ZooKeeper => {
                let mut c = Command::new("/usr/bin/java");
                c.args([
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Dzookeeper.admin.enableServer=false",
                    "-Dzookeeper.root.logger=WARN,CONSOLE",
                    "-Dzookeeper.jmx.log4j.disable=true",
                ]);
                c.args(&properties);
                c.args(["-cp", &zk_class_path(), "org.apache.zookeeper.server.quorum.QuorumPeerMain"]);
                c.arg(&cfg_path);
                c
            }
        };
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        let child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", kind.name()))?;
        let mut server = ServerProcess { kind, port, child: Some(child), dir, cfg_path, log_path };
        let budget = match kind {
            ServerKind::ZooKeeper => Duration::from_secs(30),
            ServerKind::Ferrokeeper => Duration::from_secs(15),
        };
        server.wait_ready(budget)?;
        Ok(server)
    }

    fn wait_ready(&mut self, budget: Duration) -> Result<(), String> {
        let deadline = Instant::now() + budget;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "{} exited early ({status}); log:\n{}",
                    self.kind.name(),
                    self.log_tail()
                ));
            }
            if let Ok(out) = four_letter(self.port, "srvr")
                && out.contains("Mode:")
            {
                return Ok(());
            }
            // A server without `srvr` still counts as ready once it completes a handshake.
            if let Ok(client) = TestClient::connect(self.port) {
                let mut client = client;
                let _ = client.close_session();
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} on port {} not ready after {budget:?}; log:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last ~4 KB of the server's stdout/stderr.
    pub fn log_tail(&self) -> String {
        let text = fs::read(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process (SIGKILL by pid) and waits at most 10 s for it.
    /// The server's pid (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            eprintln!("warning: {} pid {} did not exit within 10 s of SIGKILL", self.kind.name(), child.id());
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a four-letter word and reads the answer to EOF (bounded by the read timeout).
pub fn four_letter(port: u16, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Options of a handshake.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    pub last_zxid_seen: i64,
    /// `None` omits the trailing readOnly byte (an "old" client).
    pub read_only: Option<bool>,
    /// How long the TCP connect and the ConnectResponse may take.
    pub handshake_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_id: 0,
            passwd: vec![0; 16],
            timeout_ms: 30000,
            last_zxid_seen: 0,
            read_only: Some(false),
            handshake_timeout: READ_TIMEOUT,
        }
    }
}

/// A watch notification as received (xid -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub zxid: i64,
    pub event: WatcherEvent,
}

/// The result of one request: the header and either the decoded body (err == 0) or err.
pub type CallResult = (ReplyHeader, Result<Response, i32>);

/// A minimal synchronous ZooKeeper client for tests.
pub struct TestClient {
    stream: TcpStream,
    next_xid: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub negotiated_timeout: i32,
    pub connect_response: ConnectResponse,
    /// Highest zxid seen in a reply header (notifications excluded).
    pub last_zxid: i64,
    /// Notifications received so far and not yet taken.
    pub events: VecDeque<Notification>,
}

impl TestClient {
    /// Connects and creates a new session (30 s timeout).
    pub fn connect(port: u16) -> io::Result<TestClient> {
        Self::connect_with(port, &ConnectOptions::default())
    }

    /// Connects (new session), retrying for up to `budget` while the server does not serve yet
    /// (starting, or without a leader).
    pub fn connect_within(port: u16, budget: Duration) -> TestClient {
        let deadline = Instant::now() + budget;
        loop {
            match TestClient::connect(port) {
                Ok(client) => return client,
                Err(error) => assert!(Instant::now() < deadline, "cannot connect to {port}: {error}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens a TCP connection with the read timeout set, without any handshake.
    pub fn raw_stream(port: u16) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Performs the handshake. A refused session (timeout 0 / session 0, as for a bad
    /// password) is an `io::ErrorKind::PermissionDenied` error carrying the response.
    pub fn connect_with(port: u16, opts: &ConnectOptions) -> io::Result<TestClient> {
        let (stream, resp) = Self::handshake(port, opts)?;
        if resp.session_id == 0 || resp.timeout <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("session refused: {resp:?}"),
            ));
        }
        Ok(TestClient {
            stream,
            next_xid: 1,
            session_id: resp.session_id,
            passwd: resp.passwd.as_deref().unwrap_or_default().to_vec(),
            negotiated_timeout: resp.timeout,
            connect_response: resp,
            last_zxid: opts.last_zxid_seen,
            events: VecDeque::new(),
        })
    }

    /// Sends a ConnectRequest and reads the ConnectResponse, whatever it says.
    pub fn handshake(port: u16, opts: &ConnectOptions) -> io::Result<(TcpStream, ConnectResponse)> {
        let mut stream = TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            opts.handshake_timeout.min(READ_TIMEOUT),
        )?;
        stream.set_read_timeout(Some(opts.handshake_timeout))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: opts.last_zxid_seen,
            timeout: opts.timeout_ms,
            session_id: opts.session_id,
            passwd: Some(Bytes::from(opts.passwd.clone())),
            read_only: opts.read_only,
        };
        write_frame(&mut stream, &req.encode_to_vec())?;
        let body = read_frame(&mut stream)?;
        let resp = ConnectResponse::decode(&body).map_err(invalid)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok((stream, resp))
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    fn xid_for(&mut self, req: &Request) -> i32 {
        match req {
            Request::Ping => op::xid::PING,
            Request::Auth(_) => op::xid::AUTH,
            Request::SetWatches(_) | Request::SetWatches2(_) => op::xid::SET_WATCHES,
            _ => {
                let xid = self.next_xid;
                self.next_xid = if self.next_xid == i32::MAX { 1 } else { self.next_xid + 1 };
                xid
            }
        }
    }

    /// Sends one request and waits for its reply; notifications that arrive first are
    /// queued in `events`. The body is decoded only when `err == 0`.
    pub fn call(&mut self, req: &Request) -> io::Result<CallResult> {
        self.call_op(req.op(), req)
    }

    /// Like [`call`](Self::call) but sends `req`'s body under opcode `op_code` (for unknown
    /// or mismatched opcodes).
    pub fn call_op(&mut self, op_code: i32, req: &Request) -> io::Result<CallResult> {
        let xid = self.xid_for(req);
        let mut payload = RequestHeader { xid, op: op_code }.encode_to_vec();
        req.write_body(&mut payload);
        write_frame(&mut self.stream, &payload)?;
        self.read_reply(xid, op_code)
    }

    /// Sends one request without waiting (pipelining); returns its xid for `read_reply`.
    pub fn send(&mut self, req: &Request) -> io::Result<i32> {
        let xid = self.xid_for(req);
        let mut payload = RequestHeader { xid, op: req.op() }.encode_to_vec();
        req.write_body(&mut payload);
        write_frame(&mut self.stream, &payload)?;
        Ok(xid)
    }

    /// Reads frames until the reply for `xid` arrives.
    pub fn read_reply(&mut self, xid: i32, op_code: i32) -> io::Result<CallResult> {
        loop {
            let frame = read_frame(&mut self.stream)?;
            let mut r = ferrokeeper_proto::Reader::new(&frame);
            let header = ReplyHeader::read(&mut r).map_err(invalid)?;
            if header.xid == op::xid::NOTIFICATION {
                let event = WatcherEvent::read(&mut r).map_err(invalid)?;
                self.events.push_back(Notification { zxid: header.zxid, event });
                continue;
            }
            if header.xid != xid {
                return Err(invalid(format!("xid out of order: expected {xid}, got {header:?}")));
            }
            if header.zxid > self.last_zxid {
                self.last_zxid = header.zxid;
            }
            if header.err != 0 {
                return Ok((header.clone(), Err(header.err)));
            }
            let body = Response::decode(op_code, r.rest()).map_err(invalid)?;
            return Ok((header, Ok(body)));
        }
    }

    pub fn ping(&mut self) -> io::Result<ReplyHeader> {
        Ok(self.call(&Request::Ping)?.0)
    }

    /// addauth; returns the reply's err (0 on success, -115 AuthFailed).
    pub fn auth(&mut self, scheme: &str, auth: &[u8]) -> io::Result<i32> {
        let req = Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: Some(Bytes::copy_from_slice(auth)),
        });
        Ok(self.call(&req)?.0.err)
    }

    /// Sends closeSession and waits for its reply.
    pub fn close_session(&mut self) -> io::Result<ReplyHeader> {
        let (h, _) = self.call(&Request::CloseSession)?;
        let _ = self.stream.shutdown(Shutdown::Both);
        Ok(h)
    }

    /// Takes every queued notification.
    pub fn take_events(&mut self) -> Vec<Notification> {
        self.events.drain(..).collect()
    }

    /// Raw mode: writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Raw mode: reads one length-prefixed frame's payload.
    pub fn read_raw_frame(&mut self) -> io::Result<Vec<u8>> {
        read_frame(&mut self.stream)
    }

    /// True when the server closed the connection (EOF or reset within the timeout).
    pub fn is_closed_by_server(&mut self, within: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(within));
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                    return false;
                }
                Err(_) => return true,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }
}

fn invalid<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Writes `int32 length | payload`.
pub fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 4);
    buf.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    buf.extend_from_slice(payload);
    stream.write_all(&buf)
}

/// Reads one `int32 length | payload` frame (bounded to 16 MB).
pub fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=16 << 20).contains(&len) {
        return Err(invalid(format!("frame length {len} out of range")));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Runs a command with a wall-clock limit, killing it (by pid) on timeout. Returns
/// (exit success, stdout, stderr); output goes through temp files so pipes never fill.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> io::Result<(bool, String, String)> {
    let dir = TempDir::new("cmd");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    cmd.stdout(Stdio::from(fs::File::create(&out_path)?));
    cmd.stderr(Stdio::from(fs::File::create(&err_path)?));
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&fs::read(&out_path)?).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path)?).into_owned();
    match status {
        Some(s) => Ok((s.success(), stdout, stderr)),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("command timed out after {limit:?}; stdout:\n{stdout}\nstderr:\n{stderr}"),
        )),
    }
}

/// Servers in a test ensemble.
pub const ENSEMBLE_SIZE: usize = 3;

/// The members of an [`Ensemble`]: voters first, then observers.
#[derive(Debug, Clone)]
pub struct Layout {
    pub voters: usize,
    pub observers: usize,
    /// Each `server.N` line carries `;127.0.0.1:clientPort` (else only `clientPort=` is set).
    pub client_in_server_lines: bool,
    /// Each node serves `/metrics` on a port of its own ([`Ensemble::metrics`]).
    pub metrics: bool,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout { voters: ENSEMBLE_SIZE, observers: 0, client_in_server_lines: false, metrics: false }
    }
}

/// One member of an [`Ensemble`].
struct Node {
    id: usize,
    client_port: u16,
    metrics_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
}

/// A ferrokeeper (or Apache ZooKeeper) ensemble (3 voters, or a [`Layout`]) on 127.0.0.1 (free ports), killed
/// by pid on drop. With proxies, every server-to-server connection goes through a
/// [`LinkProxy`] (node i reaches node j at a proxy of its own), so a test can cut a node off
/// in silence, as a partition does (no FIN, no RST).
pub struct Ensemble {
    nodes: Vec<Node>,
    /// Nodes `0..voters` vote; the rest observe.
    voters: usize,
    kind: ServerKind,
    proxies: Vec<LinkProxy>,
    _dir: TempDir,
    /// Environment variables for every node started after they are set.
    pub env: Vec<(String, String)>,
    /// Extra JVM flags (`-Dkey=value`) for ZooKeeper nodes started after they are set.
    pub jvm_flags: Vec<String>,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for proxy in &self.proxies {
            proxy.stop.store(true, Ordering::Relaxed);
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Ensemble {
    /// The log file of node `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("node.log")
    }

    pub fn new() -> Ensemble {
        Ensemble::with_extras(&[])
    }

    /// An ensemble whose zoo.cfg files also carry `extra` lines.
    pub fn with_extras(extra: &[(&str, &str)]) -> Ensemble {
        Ensemble::build(ServerKind::Ferrokeeper, extra, false)
    }

    /// An ensemble of `kind`; `extra` lines are appended to zoo.cfg (a later key wins);
    /// `proxied`: server-to-server connections go through [`LinkProxy`]s.
    pub fn build(kind: ServerKind, extra: &[(&str, &str)], proxied: bool) -> Ensemble {
        Ensemble::build_layout(kind, extra, proxied, &Layout::default())
    }

    /// An ensemble of `layout.voters` voters then `layout.observers` observers (node indexes
    /// in that order), otherwise as [`Ensemble::build`].
    pub fn build_layout(
        kind: ServerKind,
        extra: &[(&str, &str)],
        proxied: bool,
        layout: &Layout,
    ) -> Ensemble {
        let dir = TempDir::new("fk-quorum");
        let size = layout.voters + layout.observers;
        let quorum: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut proxies = Vec::new();
        // addresses[i][j]: how node i reaches node j.
        let mut addresses = vec![quorum.clone(); size];
        if proxied {
            for (i, row) in addresses.iter_mut().enumerate() {
                for (j, entry) in row.iter_mut().enumerate() {
                    if i != j {
                        let q = LinkProxy::start(i, j, quorum[j].0);
                        let e = LinkProxy::start(i, j, quorum[j].1);
                        *entry = (q.port, e.port);
                        proxies.push(q);
                        proxies.push(e);
                    }
                }
            }
        }
        let mut nodes = Vec::new();
        for (i, links) in addresses.iter().enumerate() {
            let id = i + 1;
            let node_dir = dir.path().join(format!("node{id}"));
            std::fs::create_dir_all(node_dir.join("data")).unwrap();
            std::fs::write(node_dir.join("data/myid"), format!("{id}\n")).unwrap();
            let client_port = client_ports[i];
            let mut cfg = format!(
                "tickTime=100\ninitLimit=20\nsyncLimit=5\nmaxSessionTimeout=60000\ndataDir={}\n\
                 clientPort={client_port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
                 txnLogBackend=sync\npreAllocSize=1024\nadmin.enableServer=false\n",
                node_dir.join("data").display()
            );
            for (k, v) in extra {
                cfg.push_str(&format!("{k}={v}\n"));
            }
            if i >= layout.voters {
                cfg.push_str("peerType=observer\n");
            }
            let metrics_port = layout.metrics.then(free_port);
            if let Some(port) = metrics_port {
                cfg.push_str(&format!(
                    "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={port}\n"
                ));
            }
            for (j, (q, e)) in links.iter().enumerate() {
                let role = if j >= layout.voters { ":observer" } else { "" };
                let client = if layout.client_in_server_lines {
                    format!(";127.0.0.1:{}", client_ports[j])
                } else {
                    String::new()
                };
                cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}{role}{client}\n", j + 1));
            }
            std::fs::write(node_dir.join("zoo.cfg"), cfg).unwrap();
            nodes.push(Node { id, client_port, metrics_port, dir: node_dir, child: None });
        }
        Ensemble {
            nodes,
            voters: layout.voters,
            kind,
            proxies,
            _dir: dir,
            env: Vec::new(),
            jvm_flags: Vec::new(),
        }
    }

    pub fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none());
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(node.dir.join("node.log")).unwrap();
        let mut command = match self.kind {
            ServerKind::Ferrokeeper => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
                c.arg("--config").arg(node.dir.join("zoo.cfg")).env("RUST_LOG", "info");
                c
            }
            ServerKind::ZooKeeper => {
                let mut c = Command::new("/usr/bin/java");
                c.args([
                    "-Xmx512m",
                    "-Dzookeeper.admin.enableServer=false",
                    "-Dzookeeper.root.logger=INFO,CONSOLE",
                    "-Dzookeeper.jmx.log4j.disable=true",
                ]);
                c.args(&self.jvm_flags);
                c.args([
                    "-cp",
                    &format!("{ZK_CONF_DIR}:{}", zk_jar()),
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                ]);
                c.arg(node.dir.join("zoo.cfg"));
                c
            }
        };
        let log2 = log.try_clone().unwrap();
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Runs the nodes as `kind` from their next start, on the same dataDirs and zoo.cfg files.
    pub fn set_kind(&mut self, kind: ServerKind) {
        self.kind = kind;
    }

    /// Which implementation the nodes run.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Resets every server-to-server connection between nodes `a` and `b` (both see them end).
    pub fn reset_links(&self, a: usize, b: usize) {
        assert!(!self.proxies.is_empty(), "reset_links needs an ensemble built with proxies");
        for proxy in &self.proxies {
            if (proxy.from, proxy.to) == (a, b) || (proxy.from, proxy.to) == (b, a) {
                proxy.reset();
            }
        }
    }

    /// Cuts node `i` off from the other nodes (or heals it): its server-to-server traffic stops
    /// in both directions without closing any connection. Needs `proxied`.
    pub fn partition(&self, i: usize, cut: bool) {
        assert!(!self.proxies.is_empty(), "partition needs an ensemble built with proxies");
        for proxy in &self.proxies {
            if proxy.from == i || proxy.to == i {
                proxy.blocked.store(cut, Ordering::Relaxed);
            }
        }
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i].child.as_ref().unwrap().id();
        assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
        if signal == "-STOP" {
            // Delivery is asynchronous: return once every thread is stopped.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if status.lines().any(|l| l.starts_with("State:") && l.contains("T (stopped)")) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("node {} (pid {pid}) did not stop", i + 1);
        }
    }

    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].client_port
    }

    /// Node `i`'s `/metrics` text (needs [`Layout::metrics`]); empty if it does not answer.
    pub fn metrics(&self, i: usize) -> String {
        let port = self.nodes[i].metrics_port.expect("an ensemble built with Layout::metrics");
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(stream, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }

    pub fn mode(&self, i: usize) -> String {
        if self.nodes[i].child.is_none() {
            return "down".into();
        }
        four_letter(self.port(i), "srvr")
            .ok()
            .and_then(|text| text.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned)))
            .unwrap_or_else(|| "not serving".into())
    }

    /// How many members (voters and observers).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Waits until one running node leads, every other running voter follows and every
    /// running observer observes.
    pub fn wait_stable(&self, budget: Duration) -> usize {
        let deadline = Instant::now() + budget;
        loop {
            let size = self.nodes.len();
            let modes: Vec<String> = (0..size).map(|i| self.mode(i)).collect();
            let leaders: Vec<usize> = (0..size).filter(|&i| modes[i] == "leader").collect();
            let all_ok = (0..size).all(|i| {
                let expected = if i < self.voters { ["leader", "follower"] } else { ["observer"; 2] };
                modes[i] == "down" || expected.contains(&modes[i].as_str())
            });
            if leaders.len() == 1 && all_ok {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no stable ensemble within {budget:?}: {modes:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            out.push_str(&format!("--- node {} ---\n", node.id));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// `hash` of every running node, once they all agree (same zxid and digest).
    pub fn wait_converged(&self, budget: Duration) -> String {
        let deadline = Instant::now() + budget;
        loop {
            let hashes: Vec<String> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].child.is_some())
                .map(|i| four_letter(self.port(i), "hash").unwrap_or_default())
                .collect();
            if hashes.iter().all(|h| h.starts_with("0x") && *h == hashes[0]) {
                return hashes[0].clone();
            }
            assert!(Instant::now() < deadline, "nodes did not converge: {hashes:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A TCP relay from node `from` to node `to` on 127.0.0.1. While `blocked`, it stops moving
/// bytes in both directions but keeps every connection open: the nodes see silence, as in a
/// network partition, not an EOF or a reset. An end closed on one side is passed on.
pub struct LinkProxy {
    pub from: usize,
    pub to: usize,
    pub port: u16,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Both ends of every relayed connection (for `reset`).
    connections: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl LinkProxy {
    /// Ends every connection through this proxy (both sides see it close), as a connection
    /// reset between two live servers; new connections are relayed as before.
    pub fn reset(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn start(from: usize, to: usize, target: u16) -> LinkProxy {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let blocked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (b, st, all) = (blocked.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        let Ok(outbound) = TcpStream::connect_timeout(
                            &([127, 0, 0, 1], target).into(),
                            Duration::from_secs(2),
                        ) else {
                            continue;
                        };
                        let _ = inbound.set_nonblocking(false);
                        all.lock()
                            .unwrap()
                            .extend([inbound.try_clone().unwrap(), outbound.try_clone().unwrap()]);
                        for (a, z) in [(&inbound, &outbound), (&outbound, &inbound)] {
                            let (a, z) = (a.try_clone().unwrap(), z.try_clone().unwrap());
                            let (b, st) = (b.clone(), st.clone());
                            std::thread::spawn(move || pump(a, z, &b, &st));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LinkProxy { from, to, port, blocked, stop, connections }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    blocked: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = from.set_nodelay(true);
    let _ = to.set_nodelay(true);
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if blocked.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Acknowledged writes of [`write_load`]: (path, when sent, when acknowledged).
pub type Acked = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant, Instant)>>>;

/// Creates `{prefix}-{k}` nodes one at a time through the given client ports (moving to the
/// next port when a connection fails) until `stop`, recording each acknowledged create. A
/// create whose outcome is unknown (connection lost) is not recorded; the next key is new.
pub fn write_load(
    ports: Vec<u16>,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: Acked,
) {
    use ferrokeeper_proto::{Acl, CreateRequest, request::Request};
    let mut k = 0u64;
    let mut next = 0usize;
    let mut client: Option<TestClient> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_mut() else {
            next += 1;
            client = TestClient::connect(ports[next % ports.len()]).ok();
            if client.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        let _ = c.set_read_timeout(Duration::from_secs(3));
        let path = format!("{prefix}-{k:06}");
        let request = Request::Create(CreateRequest {
            path: path.clone(),
            data: Some(bytes::Bytes::from(path.clone().into_bytes())),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        let sent = Instant::now();
        match c.call(&request) {
            Ok((header, _)) if header.err == 0 => {
                acked.lock().unwrap().push((path, sent, Instant::now()));
                k += 1;
            }
            Ok((header, _)) => panic!("unexpected error {} creating {path}", header.err),
            Err(_) => {
                k += 1;
                client = None;
            }
        }
    }
}

/// Every path in `acked` exists on the node at `port` (after a sync).
pub fn assert_all_present(port: u16, acked: &[(String, Instant, Instant)], what: &str) {
    use ferrokeeper_proto::{ExistsRequest, SyncRequest, request::Request};
    let mut client = TestClient::connect_within(port, Duration::from_secs(20));
    let (header, _) = client.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap();
    assert_eq!(header.err, 0, "sync on {what}");
    for (path, _, _) in acked {
        let (header, _) =
            client.call(&Request::Exists(ExistsRequest { path: path.clone(), watch: false })).unwrap();
        assert_eq!(header.err, 0, "acknowledged write {path} missing on {what}");
    }
}
