//! Client TLS on `secureClientPort` (issue 14): certificates from `scripts/make-test-certs.sh`,
//! ferrokeeper with PEM and with PKCS12 stores; a Rust rustls client and kazoo (`use_ssl`)
//! work over TLS beside the plain port; a plaintext client, an untrusted and an expired client
//! certificate are refused with a log line naming the cause, only their own connection closed,
//! and counted in `/metrics`. The x509 auth provider: a client certificate's subject DN (as
//! Java's `X500Principal.getName()` renders it) is the connection's `x509` id.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrokeeper_proto::Code;
use ferrokeeper_proto::jute::Jute;
use ferrokeeper_proto::records::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{ServerKind, ServerProcess, TempDir, TestClient};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn make_certs(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-test-certs.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(dir);
    let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    assert!(ok, "make-test-certs.sh failed\n{stdout}\n{stderr}");
}

fn start(certs: &Path, pkcs12: bool) -> (ServerProcess, u16, u16) {
    start_with(certs, pkcs12, &[])
}

fn start_with(certs: &Path, pkcs12: bool, more: &[(&str, &str)]) -> (ServerProcess, u16, u16) {
    let secure = support::free_port();
    let metrics = support::free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    let (key, trust) =
        if pkcs12 { (c("server.p12"), c("truststore.p12")) } else { (c("server.pem"), c("truststore.pem")) };
    let (secure_s, metrics_s) = (secure.to_string(), metrics.to_string());
    let extra = [
        ("secureClientPort", secure_s.as_str()),
        ("ssl.keyStore.location", key.as_str()),
        ("ssl.keyStore.password", "testpass"),
        ("zookeeper.ssl.trustStore.location", trust.as_str()),
        ("ssl.trustStore.password", "testpass"),
        ("ssl.clientAuth", "need"),
        ("metricsProvider.httpHost", "127.0.0.1"),
        ("metricsProvider.httpPort", metrics_s.as_str()),
    ];
    let extra: Vec<(&str, &str)> = extra.iter().chain(more).copied().collect();
    (ServerProcess::start(ServerKind::Ferrokeeper, &extra), secure, metrics)
}

/// A rustls client trusting the test CA, presenting `cert`/`key` if given.
fn tls_connect(port: u16, certs: &Path, client: Option<(&str, &str)>) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain =
                CertificateDer::pem_file_iter(certs.join(cert)).unwrap().map(|c| c.unwrap()).collect();
            let key = PrivateKeyDer::from_pem_file(certs.join(key)).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // TLS 1.3 reports a refused client certificate only at the first read after the handshake.
    let connect =
        ConnectRequest { timeout: 30_000, passwd: Some(Bytes::from_static(&[0; 16])), ..Default::default() };
    write_frame(&mut tls, &connect.encode_to_vec())?;
    let response = ConnectResponse::decode(&read_frame(&mut tls)?).unwrap();
    assert_ne!(response.session_id, 0);
    Ok(tls)
}

fn write_frame(stream: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(payload.len() as i32).to_be_bytes())?;
    stream.write_all(payload)?;
    stream.flush()
}

fn read_frame(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// create + getData over the TLS session.
fn create_and_read(tls: &mut Tls, path: &str) {
    let mut create = RequestHeader { xid: 1, op: ferrokeeper_proto::op::CREATE }.encode_to_vec();
    CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"tls")),
        acl: Acl::open_unsafe(),
        flags: 0,
    }
    .write(&mut create);
    write_frame(tls, &create).unwrap();
    let reply = read_frame(tls).unwrap();
    assert_eq!(ReplyHeader::decode(&reply).unwrap().err, 0, "create over TLS");
    let mut get = RequestHeader { xid: 2, op: ferrokeeper_proto::op::GET_DATA }.encode_to_vec();
    GetDataRequest { path: path.into(), watch: false }.write(&mut get);
    write_frame(tls, &get).unwrap();
    let reply = read_frame(tls).unwrap();
    let body = GetDataResponse::decode(&reply[16..]).unwrap();
    assert_eq!(body.data.as_deref(), Some(&b"tls"[..]));
}

fn metric(port: u16, sample: &str) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
}

fn failures(port: u16, reason: &str) -> f64 {
    metric(port, &format!("ferrokeeper_tls_handshake_failures_total{{reason=\"{reason}\"}}"))
}

#[test]
fn tls_clients_and_refusals_pem_stores() {
    let dir = TempDir::new("tls-certs");
    make_certs(dir.path());
    let certs = dir.path();
    let (server, secure, metrics) = start_with(certs, false, &[("4lw.commands.whitelist", "mntr")]);

    // A good client over TLS, and a plain client on the plain port, side by side.
    let mut good = tls_connect(secure, certs, Some(("client.crt", "client.key"))).unwrap();
    create_and_read(&mut good, "/tls");
    let mut plain = TestClient::connect(server.port).unwrap();
    assert_eq!(plain.ping().unwrap().err, 0);

    // A plaintext ZooKeeper handshake on the secure port.
    let refused = TestClient::connect(secure);
    assert!(refused.is_err(), "a plaintext handshake on the secure port was answered");
    // No client certificate (clientAuth=need), one from an unknown CA, an expired one.
    assert!(tls_connect(secure, certs, None).is_err(), "no client certificate accepted");
    assert!(tls_connect(secure, certs, Some(("untrusted.crt", "untrusted.key"))).is_err());
    assert!(tls_connect(secure, certs, Some(("expired.crt", "expired.key"))).is_err());

    // Only those connections were closed.
    create_and_read(&mut good, "/tls2");
    assert_eq!(plain.ping().unwrap().err, 0);
    let wait_for = |reason: &str| {
        for _ in 0..50 {
            if failures(metrics, reason) >= 1.0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no {reason} failure counted; log:\n{}", server.log_tail());
    };
    for reason in ["not_tls", "no_client_certificate", "untrusted_certificate", "expired_certificate"] {
        wait_for(reason);
    }
    assert_eq!(failures(metrics, "other"), 0.0);
    assert!(metric(metrics, "ferrokeeper_tls_handshakes_total") >= 1.0);
    // mntr shows the same counters.
    let mntr = support::four_letter(server.port, "mntr").unwrap();
    let mntr_value = |key: &str| -> f64 {
        mntr.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('\t')).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("{key} not in mntr:\n{mntr}"))
    };
    for reason in ["not_tls", "no_client_certificate", "untrusted_certificate", "expired_certificate"] {
        let key = format!("zk_tls_handshake_failures_{reason}");
        assert_eq!(mntr_value(&key), failures(metrics, reason), "{key}");
    }
    assert!(mntr_value("zk_tls_handshake_failures") >= 4.0);
    assert_eq!(mntr_value("zk_auth_failed_count"), 0.0);
    let log = server.log_tail();
    for reason in ["\"not_tls\"", "\"untrusted_certificate\"", "\"expired_certificate\""] {
        assert!(log.contains(reason), "no log line with {reason}:\n{log}");
    }

    // kazoo over TLS (use_ssl, certfile, keyfile, ca): kazoo's CREATOR_ALL_ACL script.
    if python_has_kazoo() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kazoo/creator_acl.py");
        let c = |f: &str| certs.join(f).display().to_string();
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(format!("127.0.0.1:{secure}"));
        cmd.args(["--ca", &c("ca.pem"), "--cert", &c("client.crt"), "--key", &c("client.key")]);
        cmd.args(["--x509-id", CLIENT_DN]);
        let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
        assert!(
            ok && stdout.contains("kazoo creator acl: OK"),
            "kazoo over TLS failed\n{stdout}\n{stderr}\n{}",
            server.log_tail()
        );
    }
}

#[test]
fn tls_with_pkcs12_stores() {
    let dir = TempDir::new("tls-certs");
    make_certs(dir.path());
    let certs = dir.path();
    assert!(certs.join("truststore.p12").exists(), "keytool is needed for truststore.p12");
    let (_server, secure, _metrics) = start(certs, true);
    let mut good = tls_connect(secure, certs, Some(("client.crt", "client.key"))).unwrap();
    create_and_read(&mut good, "/p12");
    assert!(tls_connect(secure, certs, Some(("untrusted.crt", "untrusted.key"))).is_err());
}

/// A TLS-only ferrokeeper (`secureClientPort`, no `clientPort`; all four-letter words), killed
/// by pid when dropped (its log printed if the test is failing).
struct TlsOnly {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl TlsOnly {
    fn start(dir: &Path, certs: &Path) -> TlsOnly {
        let port = support::free_port();
        let cfg = dir.join("tls-only.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nsecureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
                 ssl.keyStore.location={}\nssl.trustStore.location={}\n4lw.commands.whitelist=*\n",
                dir.join("tls-only-data").display(),
                certs.join("server.pem").display(),
                certs.join("truststore.pem").display()
            ),
        )
        .unwrap();
        let log = dir.join("tls-only.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        TlsOnly { child, port, log }
    }

    /// A TLS session, once the server listens.
    fn session(&self, certs: &Path) -> Tls {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tls_connect(self.port, certs, Some(("client.crt", "client.key"))) {
                Ok(tls) => return tls,
                Err(e) if std::time::Instant::now() > deadline => panic!("no TLS session: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for TlsOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("server log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// `secureClientPort` without `clientPort`: a TLS-only server, as ZooKeeper allows. Its
/// four-letter words are served over TLS too, and `conf` names the ports as ZooKeeper does.
#[test]
fn tls_only_server() {
    let dir = TempDir::new("tls-only");
    make_certs(dir.path());
    let certs = dir.path();
    let server = TlsOnly::start(dir.path(), certs);
    let mut tls = server.session(certs);
    create_and_read(&mut tls, "/tls-only");
    // conf over TLS (a fresh connection: a four-letter word is a connection's first bytes).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_file(certs.join("client.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(certs.join("client.key")).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    let connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut word = rustls::StreamOwned::new(connection, tcp);
    word.write_all(b"conf").unwrap();
    word.flush().unwrap();
    let mut text = String::new();
    let _ = word.read_to_string(&mut text);
    assert!(text.contains("clientPort=-1\n"), "{text}");
    assert!(text.contains(&format!("secureClientPort={}\n", server.port)), "{text}");
}

/// Apache ZooKeeper's own zkCli.sh (Netty client socket, `-Dzookeeper.client.secure=true`,
/// PKCS12 stores) against a TLS-only ferrokeeper: its certificate is its x509 id, and the
/// creator ACL (`auth::cdrwa`) expands to it.
#[test]
fn zkcli_over_tls_with_x509() {
    if !support::oracle_available() {
        return;
    }
    let dir = TempDir::new("tls-zkcli");
    make_certs(dir.path());
    let certs = dir.path();
    let server = TlsOnly::start(dir.path(), certs);
    drop(server.session(certs));
    let c = |f: &str| certs.join(f).display().to_string();
    // zkEnv.sh's class path lacks the netty jars the Netty socket needs; a later -cp wins.
    let class_path = ["/etc/zookeeper/conf", "/usr/share/java/zookeeper.jar"]
        .into_iter()
        .map(str::to_owned)
        .chain(
            ["netty-codec", "netty-resolver", "netty-transport-native-unix-common"]
                .iter()
                .map(|jar| format!("/usr/share/java/{jar}.jar")),
        )
        .collect::<Vec<_>>()
        .join(":");
    let flags = format!(
        "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp {class_path} \
         -Dzookeeper.client.secure=true -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
         -Dzookeeper.ssl.keyStore.location={} -Dzookeeper.ssl.keyStore.password=testpass \
         -Dzookeeper.ssl.trustStore.location={} -Dzookeeper.ssl.trustStore.password=testpass",
        c("client.p12"),
        c("truststore.p12")
    );
    let script = dir.path().join("script.txt");
    std::fs::write(&script, "whoami\ncreate /zk-tls data auth::cdrwa\ngetAcl /zk-tls\nget /zk-tls\nquit\n")
        .unwrap();
    let mut cmd = Command::new(support::ZKCLI);
    cmd.arg("-server").arg(format!("127.0.0.1:{}", server.port));
    cmd.stdin(std::fs::File::open(&script).unwrap()).env("CLIENT_JVMFLAGS", flags);
    let (_, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(90)).unwrap();
    let out = format!("{stdout}{stderr}");
    assert!(out.contains(&format!("x509: {CLIENT_DN}")), "{out}");
    assert!(out.contains("Created /zk-tls"), "{out}");
    // zkCli prints the id URL-encoded (its own formatting).
    assert!(out.contains("'x509,'CN=client%2COU=test%2CO=ferrokeeper"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "data"), "{out}");
}

/// A JKS key store stops the start with a message naming the file and keytool.
#[test]
fn jks_key_store_is_refused_at_startup() {
    let dir = TempDir::new("tls-jks");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.path().join("zoo.cfg");
    let store = dir.path().join("keystore.jks");
    std::fs::write(&store, b"not read").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nsecureClientPort={}\nssl.clientAuth=none\nssl.keyStore.location={}\n",
            data.display(),
            support::free_port(),
            support::free_port(),
            store.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
    cmd.arg(&cfg);
    let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(30)).unwrap();
    assert!(!ok, "started with a JKS key store");
    let out = format!("{stdout}{stderr}");
    assert!(out.contains(&store.display().to_string()) && out.contains("keytool"), "{out}");
}

/// One request over the TLS session: its reply's error code and body.
fn call(tls: &mut Tls, xid: i32, op: i32, body: impl FnOnce(&mut Vec<u8>)) -> (i32, Vec<u8>) {
    let mut request = RequestHeader { xid, op }.encode_to_vec();
    body(&mut request);
    write_frame(tls, &request).unwrap();
    let reply = read_frame(tls).unwrap();
    let header = ReplyHeader::decode(&reply).unwrap();
    assert_eq!(header.xid, xid);
    (header.err, reply[16..].to_vec())
}

fn get_data(tls: &mut Tls, path: &str) -> i32 {
    call(tls, 10, ferrokeeper_proto::op::GET_DATA, |b| {
        GetDataRequest { path: path.into(), watch: false }.write(b)
    })
    .0
}

fn create(tls: &mut Tls, path: &str, acl: Vec<Acl>) -> i32 {
    let request = CreateRequest { path: path.into(), data: None, acl, flags: 0 };
    call(tls, 11, ferrokeeper_proto::op::CREATE, |b| request.write(b)).0
}

fn who_am_i(tls: &mut Tls) -> Vec<(String, String)> {
    let (err, body) = call(tls, 12, ferrokeeper_proto::op::WHO_AM_I, |_| {});
    assert_eq!(err, 0);
    WhoAmIResponse::decode(&body).unwrap().client_info.into_iter().map(|c| (c.auth_scheme, c.user)).collect()
}

/// The x509 ids of `scripts/make-test-certs.sh`'s clients, as Apache ZooKeeper names them:
/// the output of Java's `X509Certificate.getSubjectX500Principal().getName()` for each.
const CLIENT_DN: &str = "CN=client,OU=test,O=ferrokeeper";
const ADMIN_DN: &str = "1.2.840.113549.1.9.1=#161161646d696e406578616d706c652e6f7267,\
                        CN=\\ admin\\;\\#1\\ ,OU=ops\\+dev,O=Acme\\, Inc.,DC=example,DC=org";

#[test]
fn x509_ids_from_client_certificates() {
    let dir = TempDir::new("tls-x509");
    make_certs(dir.path());
    let certs = dir.path();
    let (server, secure, _metrics) = start_with(
        certs,
        false,
        &[
            ("zookeeper.X509AuthenticationProvider.superUser", ADMIN_DN),
            // As ZooKeeper's client port, the server checks no client's hostname: client2's
            // certificate names client2.invalid, not 127.0.0.1, and is accepted.
            ("ssl.hostnameVerification", "true"),
        ],
    );

    // The certificate's id is there from the first request, beside ip.
    let mut client = tls_connect(secure, certs, Some(("client.crt", "client.key"))).unwrap();
    let ids = who_am_i(&mut client);
    assert!(ids.contains(&("x509".to_owned(), CLIENT_DN.to_owned())), "{ids:?}");
    assert!(ids.contains(&("ip".to_owned(), "127.0.0.1".to_owned())), "{ids:?}");

    // An x509 ACL naming the DN: its owner reads, another certificate is refused.
    let acl = vec![Acl::new(ferrokeeper_proto::op::perms::ALL, "x509", CLIENT_DN)];
    assert_eq!(create(&mut client, "/x509", acl.clone()), 0);
    assert_eq!(get_data(&mut client, "/x509"), 0);
    let mut other = tls_connect(secure, certs, Some(("client2.crt", "client2.key"))).unwrap();
    assert_eq!(get_data(&mut other, "/x509"), Code::NoAuth as i32);
    let mut plain = TestClient::connect(server.port).unwrap();
    let plain_read =
        ferrokeeper_proto::request::Request::GetData(GetDataRequest { path: "/x509".into(), watch: false });
    assert_eq!(plain.call(&plain_read).unwrap().0.err, Code::NoAuth as i32);

    // getACL shows the id as set (to its owner: getACL needs READ or ADMIN).
    let (err, body) = call(&mut client, 13, ferrokeeper_proto::op::GET_ACL, |b| {
        GetAclRequest { path: "/x509".into() }.write(b)
    });
    assert_eq!(err, 0);
    assert_eq!(GetAclResponse::decode(&body).unwrap().acl, acl);

    // The creator-all ACL expands to the creator's x509 id (x509 ids are authenticated).
    assert_eq!(create(&mut other, "/mine", Acl::creator_all()), 0);
    let (_, body) = call(&mut other, 14, ferrokeeper_proto::op::GET_ACL, |b| {
        GetAclRequest { path: "/mine".into() }.write(b)
    });
    let expanded = GetAclResponse::decode(&body).unwrap().acl;
    assert_eq!(
        expanded,
        vec![Acl::new(ferrokeeper_proto::op::perms::ALL, "x509", "CN=client2,OU=test,O=ferrokeeper")]
    );
    assert_eq!(get_data(&mut client, "/mine"), Code::NoAuth as i32);
    // A DN Java's X500Principal refuses (an unknown keyword) is not a valid x509 id.
    assert_eq!(create(&mut client, "/bad", vec![Acl::new(31, "x509", "FOO=bar")]), Code::InvalidAcl as i32);

    // The super user's certificate (a DN that needs RFC 2253 escaping) passes every ACL.
    let mut admin = tls_connect(secure, certs, Some(("admin.crt", "admin.key"))).unwrap();
    let ids = who_am_i(&mut admin);
    // whoAmI names no user for `super` (no provider), as ZooKeeper's AuthUtil.getUser.
    assert!(ids.contains(&("super".to_owned(), String::new())), "{ids:?}\n{}", server.log_tail());
    assert!(ids.contains(&("x509".to_owned(), ADMIN_DN.to_owned())), "{ids:?}");
    assert_eq!(get_data(&mut admin, "/x509"), 0);
    assert_eq!(get_data(&mut admin, "/mine"), 0);
}

/// One server's answers to the x509 script, one line per step.
fn x509_transcript(kind: ServerKind, certs: &Path) -> Vec<String> {
    use ferrokeeper_proto::op::{GET_ACL, perms};
    let secure = support::free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    let (secure_s, key, trust) = (secure.to_string(), c("server.p12"), c("truststore.p12"));
    let extra = [
        ("secureClientPort", secure_s.as_str()),
        ("serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory"),
        ("ssl.keyStore.location", key.as_str()),
        ("ssl.keyStore.password", "testpass"),
        ("ssl.trustStore.location", trust.as_str()),
        ("ssl.trustStore.password", "testpass"),
        ("ssl.clientAuth", "need"),
        ("X509AuthenticationProvider.superUser", "CN=client2,OU=test,O=ferrokeeper"),
    ];
    let server = ServerProcess::start(kind, &extra);
    let connect = |cert: &str| {
        let (crt, key) = (format!("{cert}.crt"), format!("{cert}.key"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tls_connect(secure, certs, Some((&crt, &key))) {
                Ok(tls) => return tls,
                Err(e) if std::time::Instant::now() > deadline => panic!("{e}\n{}", server.log_tail()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    let (mut client, mut super_user, mut stranger) =
        (connect("client"), connect("client2"), connect("admin"));
    let mut out = Vec::new();
    let get_acl = |tls: &mut Tls, path: &str| {
        let (err, body) = call(tls, 20, GET_ACL, |b| GetAclRequest { path: path.into() }.write(b));
        let acl = if err == 0 {
            format!("{:?}", GetAclResponse::decode(&body).unwrap().acl)
        } else {
            String::new()
        };
        format!("getACL {path}: {err} {acl}")
    };
    out.push(format!("whoami client: {:?}", who_am_i(&mut client)));
    out.push(format!("whoami super: {:?}", who_am_i(&mut super_user)));
    let x509 = |id: &str| vec![Acl::new(perms::ALL, "x509", id)];
    out.push(format!("create /x509: {}", create(&mut client, "/x509", x509(CLIENT_DN))));
    out.push(format!("get client: {}", get_data(&mut client, "/x509")));
    out.push(format!("get super: {}", get_data(&mut super_user, "/x509")));
    out.push(format!("get stranger: {}", get_data(&mut stranger, "/x509")));
    out.push(get_acl(&mut client, "/x509"));
    out.push(format!("creator-all: {}", create(&mut stranger, "/mine", Acl::creator_all())));
    out.push(get_acl(&mut stranger, "/mine"));
    out.push(format!("get client /mine: {}", get_data(&mut client, "/mine")));
    for (path, id) in [
        ("/bad-eq", "CN=a=b"),
        ("/bad-keyword", "FOO=bar"),
        ("/bad-quote", "CN=\"open"),
        ("/empty", ""),
        ("/oid", "2.5.4.3=client"),
        ("/spaced", "CN=client, OU=test, O=ferrokeeper"),
        ("/lower", "cn=client,ou=test,o=ferrokeeper"),
    ] {
        let created = create(&mut client, path, x509(id));
        let read = if created == 0 { get_data(&mut client, path) } else { 1 };
        out.push(format!("x509 {id:?}: create {created} get {read}"));
    }
    let mut plain = TestClient::connect(server.port).unwrap();
    let read =
        ferrokeeper_proto::request::Request::GetData(GetDataRequest { path: "/x509".into(), watch: false });
    out.push(format!("get plain: {}", plain.call(&read).unwrap().0.err));
    // addauth x509: the certificate again over TLS; a failure without one (then a close).
    let packet = AuthPacket { auth_type: 0, scheme: "x509".into(), auth: Some(Bytes::from_static(b"any")) };
    let (err, _) = call(&mut client, -4, ferrokeeper_proto::op::AUTH, |b| packet.write(b));
    out.push(format!("addauth x509 over TLS: {err}"));
    out.push(format!("whoami after addauth: {:?}", who_am_i(&mut client)));
    out.push(format!("addauth x509 plain: {}", plain.auth("x509", b"any").unwrap()));
    out
}

/// The x509 provider's answers (ids, ACL checks, ACL validation and expansion, super) are
/// Apache ZooKeeper 3.8's, with the same certificates on its Netty secure port.
#[test]
fn x509_acls_match_zookeeper() {
    if !support::oracle_available() {
        return;
    }
    let dir = TempDir::new("tls-x509-diff");
    make_certs(dir.path());
    let ours = x509_transcript(ServerKind::Ferrokeeper, dir.path());
    let theirs = x509_transcript(ServerKind::ZooKeeper, dir.path());
    assert_eq!(ours, theirs);
}

/// Prints each certificate's `getSubjectX500Principal().getName()`, one line per file.
const JAVA_DN: &str = r#"
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class Dn {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (String file : args) {
            X509Certificate c = (X509Certificate) factory.generateCertificate(new FileInputStream(file));
            System.out.println(c.getSubjectX500Principal().getName());
        }
    }
}
"#;

/// The x509 id ferrokeeper derives from a certificate is the one Java (hence ZooKeeper's
/// X509AuthenticationProvider) derives: every test certificate, plus one with a multi-valued
/// RDN, non-ASCII UTF-8, characters to escape, leading spaces and attributes Java names by OID.
#[test]
fn subject_dn_is_what_java_prints() {
    let dir = TempDir::new("tls-dn");
    make_certs(dir.path());
    let certs = dir.path();
    let odd = certs.join("odd.crt");
    let mut openssl = Command::new("openssl");
    openssl.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]);
    openssl.arg("-keyout").arg(certs.join("odd.key")).arg("-out").arg(&odd);
    openssl.args(["-days", "2", "-utf8", "-multivalue-rdn", "-subj"]);
    openssl.arg("/DC=com/UID=u1+CN=Zo\u{eb} \"q\" <x>;#/serialNumber=42/L=  sp/title=T/street=S/ST=s/C=DE");
    let (ok, _, stderr) = support::run_with_timeout(&mut openssl, Duration::from_secs(30)).unwrap();
    assert!(ok, "openssl req failed: {stderr}");
    let files: Vec<std::path::PathBuf> = ["client.crt", "admin.crt", "server.crt", "ca.pem", "odd.crt"]
        .iter()
        .map(|f| certs.join(f))
        .collect();
    let ours: Vec<String> = files
        .iter()
        .map(|f| {
            let der = CertificateDer::from_pem_file(f).unwrap();
            ferrokeeper_server::server::tls::subject_dn(&der).unwrap()
        })
        .collect();
    assert_eq!(ours[0], CLIENT_DN);
    assert_eq!(ours[1], ADMIN_DN);
    let java_ok = Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    if !java_ok {
        assert_eq!(
            std::env::var("FK_SKIP_ORACLE").as_deref(),
            Ok("1"),
            "java is needed (or FK_SKIP_ORACLE=1)"
        );
        return;
    }
    std::fs::write(certs.join("Dn.java"), JAVA_DN).unwrap();
    let mut java = Command::new("java");
    java.arg(certs.join("Dn.java")).args(&files);
    let (ok, stdout, stderr) = support::run_with_timeout(&mut java, Duration::from_secs(120)).unwrap();
    assert!(ok, "java failed: {stderr}");
    let theirs: Vec<&str> = stdout.lines().collect();
    assert_eq!(ours, theirs);
}

fn python_has_kazoo() -> bool {
    let ok = Command::new("python3").args(["-c", "import kazoo.client"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert_eq!(
            std::env::var("FK_SKIP_ORACLE").as_deref(),
            Ok("1"),
            "python3 cannot import kazoo: run scripts/install-test-deps.sh (or set FK_SKIP_ORACLE=1)"
        );
    }
    ok
}

/// `client.portUnification`: the plain client port also takes TLS clients (with the secure
/// port's settings, their certificate's x509 id included), told apart by the first byte;
/// plain clients and four-letter words on it go on as before.
#[test]
fn client_port_unification() {
    let dir = TempDir::new("tls-unified");
    make_certs(dir.path());
    let certs = dir.path();
    let (server, secure, _metrics) =
        start_with(certs, false, &[("client.portUnification", "true"), ("4lw.commands.whitelist", "ruok")]);
    // TLS on the plain port.
    let mut unified = tls_connect(server.port, certs, Some(("client.crt", "client.key"))).unwrap();
    create_and_read(&mut unified, "/unified");
    let ids = who_am_i(&mut unified);
    assert!(ids.contains(&("x509".to_owned(), "CN=client,OU=test,O=ferrokeeper".to_owned())), "{ids:?}");
    // A TLS client without a certificate is refused there as on the secure port.
    assert!(tls_connect(server.port, certs, None).is_err());
    // Plain clients and four-letter words on the same port.
    let mut plain = TestClient::connect(server.port).unwrap();
    assert_eq!(plain.ping().unwrap().err, 0);
    assert_eq!(support::four_letter(server.port, "ruok").unwrap(), "imok");
    // The secure port stays TLS-only.
    assert!(TestClient::connect(secure).is_err());
    create_and_read(&mut unified, "/unified-2");
}
