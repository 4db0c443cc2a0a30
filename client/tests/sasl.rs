//! SASL DIGEST-MD5 in the client library and fkcli (issue 14), against a ferrokeeper whose
//! JAAS `Server` section (given as `-Djava.security.auth.login.config`) lists bob and alice
//! and whose `authProvider.1` is SASLAuthenticationProvider: the session's `sasl` id, a
//! `sasl` ACL, a wrong password ending the session with AuthFailed, and fkcli reading a JAAS
//! `Client` section as zkCli does.
//!
//! The server is the ferrokeeper binary: `FK_SERVER_BIN`, else the workspace's
//! `target/debug/ferrokeeper` (built by `cargo test --workspace`).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrokeeper_client::{Acl, Code, CreateMode, Error, KeeperState, SaslOptions, ZooKeeper};

fn server_binary() -> Option<PathBuf> {
    let bin = std::env::var("FK_SERVER_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ferrokeeper"));
    if bin.exists() {
        return Some(bin);
    }
    assert_eq!(
        std::env::var("FK_SKIP_ORACLE").as_deref(),
        Ok("1"),
        "no ferrokeeper binary at {}: build it (cargo build -p ferrokeeper-server) or set FK_SERVER_BIN",
        bin.display()
    );
    None
}

/// A ferrokeeper with SASL, killed by pid when dropped.
struct SaslServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    jaas: PathBuf,
}

impl SaslServer {
    fn start(bin: &Path) -> SaslServer {
        let dir = support::temp_dir("sasl-server");
        let port = support::free_port();
        let jaas = dir.join("jaas.conf");
        std::fs::write(
            &jaas,
            "Server {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n \
             user_bob=\"bobsecret\"\n user_alice=\"alicesecret\";\n};\n\
             Client {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n \
             username=\"bob\"\n password=\"bobsecret\";\n};\n",
        )
        .unwrap();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPortAddress=127.0.0.1\nclientPort={port}\n\
                 authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("-Djava.security.auth.login.config={}", jaas.display()))
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = SaslServer { child, port, dir, jaas };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ferrokeeper did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for SaslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(
    host: &str,
    sasl: Option<SaslOptions>,
) -> Result<(ZooKeeper, ferrokeeper_client::Events), Error> {
    ZooKeeper::builder(host)
        .session_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .sasl(sasl)
        .connect()
        .await
}

#[tokio::test]
async fn library_logs_in_with_digest_md5() {
    let Some(bin) = server_binary() else { return };
    let server = SaslServer::start(&bin);
    let (bob, mut events) =
        connect(&server.addr(), Some(SaslOptions::digest("bob", "bobsecret"))).await.unwrap();
    let ids: Vec<String> =
        bob.who_am_i().await.unwrap().iter().map(|i| format!("{}:{}", i.auth_scheme, i.user)).collect();
    assert!(ids.contains(&"sasl:bob".to_owned()), "{ids:?}");
    let mut states = Vec::new();
    while let Some(event) = events.try_recv() {
        states.push(event.state);
    }
    assert_eq!(states, vec![KeeperState::SyncConnected, KeeperState::SaslAuthenticated]);
    let acl = vec![Acl::new(31, "sasl", "bob")];
    bob.create("/lib-sasl", b"x", &acl, CreateMode::Persistent, None).await.unwrap();
    assert_eq!(bob.get_data("/lib-sasl").await.unwrap().0.as_ref(), b"x");

    let (alice, _) =
        connect(&server.addr(), Some(SaslOptions::digest("alice", "alicesecret"))).await.unwrap();
    assert_eq!(alice.get_data("/lib-sasl").await.unwrap_err().code(), Code::NoAuth);

    let wrong = connect(&server.addr(), Some(SaslOptions::digest("bob", "nope"))).await.unwrap_err();
    assert_eq!(wrong.code(), Code::AuthFailed, "{wrong}");
    // bob's session was not disturbed.
    assert_eq!(bob.get_data("/lib-sasl").await.unwrap().0.as_ref(), b"x");
    bob.close().await.unwrap();
    alice.close().await.unwrap();
}

fn fkcli(args: &[String]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fkcli"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("CLIENT_JVMFLAGS");
    let child = cmd.spawn().unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("fkcli {id} did not finish");
        }
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn fkcli_reads_the_jaas_client_section() {
    let Some(bin) = server_binary() else { return };
    let server = SaslServer::start(&bin);
    let jaas = format!("-Djava.security.auth.login.config={}", server.jaas.display());
    let (ok, out) = fkcli(&["-server".into(), server.addr(), jaas.clone(), "whoami".into()]);
    assert!(ok && out.contains("sasl: bob"), "{out}");
    let other = "-Dzookeeper.sasl.clientconfig=Nope".to_string();
    let (ok, out) = fkcli(&["-server".into(), server.addr(), jaas.clone(), other, "whoami".into()]);
    assert!(!ok && out.contains("no JAAS configuration section named 'Nope'"), "{out}");
    let (ok, out) = fkcli(&[
        "-server".into(),
        server.addr(),
        jaas,
        "-Dzookeeper.sasl.client=false".into(),
        "whoami".into(),
    ]);
    assert!(ok && !out.contains("sasl"), "{out}");
}
