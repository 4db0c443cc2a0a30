//! TLS in the client library and fkcli (issue 14), against ferrokeeper's `secureClientPort`
//! with certificates from `scripts/make-test-certs.sh`: PEM and PKCS12 stores given as the Java
//! client's `zookeeper.ssl.*` properties, the session's `x509` id from its certificate, the
//! server's hostname checked (and not, with `zookeeper.ssl.hostnameVerification=false`), and
//! fkcli with `-D` flags, `CLIENT_JVMFLAGS` and `-client-configuration`.
//!
//! The server is the ferrokeeper binary: `FK_SERVER_BIN`, else the workspace's
//! `target/debug/ferrokeeper` (built by `cargo test --workspace`).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrokeeper_client::{Acl, CreateMode, Error, Store, TlsOptions, ZooKeeper};

/// The x509 id of `client.crt` (as Java's `X500Principal.getName()` prints it).
const CLIENT_DN: &str = "CN=client,OU=test,O=ferrokeeper";

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

fn make_certs(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-test-certs.sh");
    let out = Command::new("bash").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "make-test-certs.sh failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A TLS-only ferrokeeper (`secureClientPort`, no `clientPort`), killed by pid when dropped.
struct SecureServer {
    child: Child,
    secure: u16,
    dir: PathBuf,
}

impl SecureServer {
    fn start(bin: &Path, certs: &Path, key_store: &str) -> SecureServer {
        let dir = support::temp_dir("tls-server");
        let secure = support::free_port();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={data}\nsecureClientPortAddress=127.0.0.1\n\
                 secureClientPort={secure}\nssl.keyStore.location={key}\nssl.trustStore.location={trust}\n\
                 ssl.clientAuth=need\n",
                data = dir.join("data").display(),
                key = certs.join(key_store).display(),
                trust = certs.join("truststore.pem").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(bin)
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = SecureServer { child, secure, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", secure)).is_err() {
            assert!(Instant::now() < deadline, "ferrokeeper did not listen on {secure}:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for SecureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that answers whatever it is sent with a four-letter-word style text and closes, as
/// a plain ZooKeeper port answers a TLS ClientHello it cannot parse.
fn plain_text_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 512];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(&mut stream, b"imok\n");
        }
    });
    addr
}

fn options(certs: &Path, key_store: Option<&str>) -> TlsOptions {
    TlsOptions {
        key_store: key_store.map(|k| Store::new(certs.join(k)).password("testpass")),
        trust_store: Some(Store::new(certs.join("ca.pem"))),
        hostname_verification: true,
    }
}

async fn connect(host: &str, tls: Option<TlsOptions>) -> Result<ZooKeeper, Error> {
    let (zk, _events) = ZooKeeper::builder(host)
        .session_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .tls(tls)
        .connect()
        .await?;
    Ok(zk)
}

#[tokio::test]
async fn rust_client_over_tls() {
    let Some(bin) = server_binary() else { return };
    let certs = support::temp_dir("tls-certs");
    make_certs(&certs);
    let server = SecureServer::start(&bin, &certs, "server.pem");
    let secure = format!("127.0.0.1:{}", server.secure);

    // A PEM key store (chain + key in one file): the session is x509-authenticated.
    let zk = connect(&secure, Some(options(&certs, Some("client.pem")))).await.unwrap();
    let ids: Vec<(String, String)> =
        zk.who_am_i().await.unwrap().into_iter().map(|c| (c.auth_scheme, c.user)).collect();
    assert!(ids.contains(&("x509".into(), CLIENT_DN.into())), "{ids:?}");
    let acl = vec![Acl::new(ferrokeeper_client::proto::op::perms::ALL, "x509", CLIENT_DN)];
    zk.create("/tls-client", b"over tls", &acl, CreateMode::Persistent, None).await.unwrap();
    assert_eq!(&zk.get_data("/tls-client").await.unwrap().0[..], b"over tls");
    assert_eq!(zk.get_acl("/tls-client").await.unwrap().0, acl);
    zk.close().await.unwrap();

    // PKCS12 stores, read from the Java client's properties, and the host by name.
    let (key, trust) = (certs.join("client.p12"), certs.join("truststore.p12"));
    let (key, trust) = (key.to_str().unwrap(), trust.to_str().unwrap());
    let p12 = TlsOptions::from_properties([
        ("zookeeper.client.secure", "true"),
        ("zookeeper.ssl.keyStore.location", key),
        ("zookeeper.ssl.keyStore.password", "testpass"),
        ("zookeeper.ssl.trustStore.location", trust),
        ("zookeeper.ssl.trustStore.password", "testpass"),
    ])
    .unwrap();
    let zk = connect(&format!("localhost:{}", server.secure), p12.clone()).await.unwrap();
    assert_eq!(&zk.get_data("/tls-client").await.unwrap().0[..], b"over tls");
    zk.close().await.unwrap();

    // Stores loaded once, shared by several sessions (as a load generator would).
    let loaded = ferrokeeper_client::LoadedTls::load(&p12.unwrap()).unwrap();
    for _ in 0..3 {
        let (zk, _events) = ZooKeeper::builder(&secure).tls_loaded(loaded.clone()).connect().await.unwrap();
        assert_eq!(&zk.get_data("/tls-client").await.unwrap().0[..], b"over tls");
        zk.close().await.unwrap();
    }

    // Refused: no client certificate (clientAuth=need), a plain client on the secure port, a
    // TLS client on a port that answers in plain text, a wrong PKCS12 password (before any
    // connection).
    assert!(connect(&secure, Some(options(&certs, None))).await.is_err());
    assert!(connect(&secure, None).await.is_err());
    let plain = plain_text_server();
    let err = connect(&plain, Some(options(&certs, Some("client.pem")))).await.unwrap_err().to_string();
    assert!(err.contains("TLS handshake"), "{err}");
    let mut bad = options(&certs, Some("client.p12"));
    bad.key_store = bad.key_store.map(|s| s.password("wrong"));
    let err = connect(&secure, Some(bad)).await.unwrap_err().to_string();
    assert!(err.contains("client.p12") && err.contains("PKCS12"), "{err}");
    drop(server);
}

#[tokio::test]
async fn server_hostname_is_verified_unless_disabled() {
    let Some(bin) = server_binary() else { return };
    let certs = support::temp_dir("tls-certs");
    make_certs(&certs);
    // The server presents a certificate for otherhost.invalid only.
    let server = SecureServer::start(&bin, &certs, "otherhost.pem");
    let secure = format!("127.0.0.1:{}", server.secure);
    let err = connect(&secure, Some(options(&certs, Some("client.pem")))).await.unwrap_err().to_string();
    assert!(err.contains("not valid for name"), "{err}");
    let err = connect(&format!("localhost:{}", server.secure), Some(options(&certs, Some("client.pem"))))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid for name"), "{err}");
    let mut unchecked = options(&certs, Some("client.pem"));
    unchecked.hostname_verification = false;
    let zk = connect(&secure, Some(unchecked)).await.unwrap();
    zk.exists("/").await.unwrap().unwrap();
    zk.close().await.unwrap();
    // The chain is still checked: a CA that did not sign the server's certificate is refused.
    let mut rogue = options(&certs, Some("client.pem"));
    rogue.hostname_verification = false;
    rogue.trust_store = Some(Store::new(certs.join("rogue-ca.pem")));
    let err = connect(&secure, Some(rogue)).await.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

fn fkcli(args: &[&str], env: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fkcli"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    match env {
        Some(flags) => cmd.env("CLIENT_JVMFLAGS", flags),
        None => cmd.env_remove("CLIENT_JVMFLAGS"),
    };
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
fn fkcli_over_tls() {
    let Some(bin) = server_binary() else { return };
    let certs = support::temp_dir("tls-certs");
    make_certs(&certs);
    let server = SecureServer::start(&bin, &certs, "server.pem");
    let secure = format!("127.0.0.1:{}", server.secure);
    let c = |f: &str| certs.join(f).display().to_string();
    let flags = [
        "-Dzookeeper.client.secure=true".to_owned(),
        format!("-Dzookeeper.ssl.keyStore.location={}", c("client.p12")),
        "-Dzookeeper.ssl.keyStore.password=testpass".to_owned(),
        format!("-Dzookeeper.ssl.trustStore.location={}", c("truststore.p12")),
        "-Dzookeeper.ssl.trustStore.password=testpass".to_owned(),
    ];

    // -D arguments, as zkCli's JVM flags.
    let mut args = vec!["-server", &secure];
    args.extend(flags.iter().map(String::as_str));
    args.push("whoami");
    let (ok, out) = fkcli(&args, None);
    assert!(ok && out.contains(&format!("x509: {CLIENT_DN}")), "{out}\n{}", server.log());

    // CLIENT_JVMFLAGS, as zkCli.sh passes them to Java.
    let (ok, out) = fkcli(&["-server", &secure, "create", "/fkcli-tls", "x"], Some(&flags.join(" ")));
    assert!(ok && out.contains("Created /fkcli-tls"), "{out}");

    // A -client-configuration properties file.
    let file = certs.join("client.properties");
    let lines: Vec<String> = flags.iter().map(|f| f.trim_start_matches("-D").to_owned()).collect();
    std::fs::write(&file, format!("# zkCli client configuration\n{}\n", lines.join("\n"))).unwrap();
    let (ok, out) = fkcli(
        &["-server", &secure, "-client-configuration", &c("client.properties"), "get", "/fkcli-tls"],
        None,
    );
    assert!(ok && out.contains('x'), "{out}");

    // Without zookeeper.client.secure the plain handshake gets no answer on the secure port.
    let (ok, out) = fkcli(&["-server", &secure, "-timeout", "2000", "ls", "/"], None);
    assert!(!ok && out.contains("Connection failed"), "{out}");
}
