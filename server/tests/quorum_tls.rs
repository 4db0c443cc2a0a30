//! Quorum TLS (issue 14): a 3-node ensemble with `sslQuorum=true` and ZooKeeper's
//! `ssl.quorum.*` keys (certificates from `scripts/make-test-certs.sh`) elects a leader, serves
//! writes through a follower on every node, survives a leader SIGKILL and converges after the
//! old leader returns; a plaintext peer on a quorum port is refused with a log line; a SASL
//! user's write through a follower carries its `sasl` id (JAAS file as a zoo.cfg key). And the
//! rolling upgrade from plain to TLS with `portUnification`.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use ferrokeeper_proto::records::*;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use support::{Ensemble, TempDir, TestClient};

fn make_certs(dir: &std::path::Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-test-certs.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(dir);
    let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    assert!(ok, "make-test-certs.sh failed\n{stdout}\n{stderr}");
}

fn create(client: &mut TestClient, path: &str) -> i32 {
    let request = Request::Create(CreateRequest {
        path: path.to_owned(),
        data: Some(Bytes::from_static(b"tls")),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    client.call(&request).unwrap().0.err
}

fn read_synced(port: u16, path: &str) -> Option<Vec<u8>> {
    let mut client = TestClient::connect_within(port, Duration::from_secs(10));
    assert_eq!(client.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap().0.err, 0);
    match client.call(&Request::GetData(GetDataRequest { path: path.to_owned(), watch: false })).unwrap().1 {
        Ok(Response::GetData(r)) => r.data.map(|d| d.to_vec()),
        _ => None,
    }
}

fn sasl_login(client: &mut TestClient, user: &str, password: &str) {
    let mut digest = ferrokeeper_proto::sasl::digest_md5::DigestClient::new(user, password);
    let mut token = digest.initial_token();
    for step in 0..2 {
        let request = Request::Sasl(GetSaslRequest { token: Some(Bytes::from(token.clone())) });
        let Ok(Response::Sasl(reply)) = client.call(&request).unwrap().1 else {
            panic!("SASL step {step} refused")
        };
        let reply = reply.token.unwrap_or_default();
        if step == 0 {
            token = digest.respond(&reply, "Y25vbmNl").unwrap();
        } else {
            digest.finish(&reply).unwrap();
        }
    }
}

#[test]
fn ensemble_over_tls() {
    let certs = TempDir::new("quorum-tls-certs");
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let (key, trust) = (c("server.p12"), c("truststore.pem"));
    // SASL too, its JAAS file given as a zoo.cfg key (ZooKeeper takes it only as a -D property).
    let jaas = certs.path().join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"bobpw\"; };",
    )
    .unwrap();
    let jaas = jaas.display().to_string();
    let extras = [
        ("java.security.auth.login.config", jaas.as_str()),
        ("authProvider.1", "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"),
        ("sslQuorum", "true"),
        ("ssl.quorum.keyStore.location", key.as_str()),
        ("ssl.quorum.keyStore.password", "testpass"),
        ("ssl.quorum.trustStore.location", trust.as_str()),
        ("ssl.quorum.hostnameVerification", "true"),
    ];
    let mut cluster = Ensemble::with_extras(&extras);
    for i in 0..3 {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let mut writer = TestClient::connect_within(cluster.port(follower), Duration::from_secs(10));
    assert_eq!(create(&mut writer, "/over-tls"), 0);
    for i in 0..3 {
        assert_eq!(read_synced(cluster.port(i), "/over-tls").as_deref(), Some(&b"tls"[..]), "node {}", i + 1);
    }
    drop(writer);
    // A SASL user's write through a follower carries its sasl id to the leader: the node's ACL
    // names it, and the same user reads it on another node while a plain client may not.
    let mut bob = TestClient::connect_within(cluster.port(follower), Duration::from_secs(10));
    sasl_login(&mut bob, "bob", "bobpw");
    let acl = vec![Acl::new(ferrokeeper_proto::op::perms::ALL, "sasl", "bob")];
    let request = Request::Create(CreateRequest { path: "/bob".into(), data: None, acl, flags: 0 });
    assert_eq!(bob.call(&request).unwrap().0.err, 0);
    let other = (follower + 1) % 3;
    let mut bob_elsewhere = TestClient::connect_within(cluster.port(other), Duration::from_secs(10));
    sasl_login(&mut bob_elsewhere, "bob", "bobpw");
    let get = Request::GetData(GetDataRequest { path: "/bob".into(), watch: false });
    assert_eq!(bob_elsewhere.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap().0.err, 0);
    assert_eq!(bob_elsewhere.call(&get).unwrap().0.err, 0);
    let mut plain = TestClient::connect_within(cluster.port(other), Duration::from_secs(10));
    assert_eq!(plain.call(&get).unwrap().0.err, -102);

    // The links are TLS: a plaintext peer saying hello on a quorum port is refused.
    let cfg = std::fs::read_to_string(cluster.log_path(leader).with_file_name("zoo.cfg")).unwrap();
    let line = cfg.lines().find(|l| l.starts_with(&format!("server.{}=", leader + 1))).unwrap();
    let quorum_port: u16 = line.split(':').nth(1).unwrap().parse().unwrap();
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", quorum_port)).unwrap();
    let _ = plain.write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(cluster.log_path(leader)).unwrap();
        if log.contains("quorum TLS handshake with a connecting peer failed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refusal logged:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A leader SIGKILL: the others elect a new leader over TLS and serve writes.
    cluster.kill(leader);
    let new_leader = cluster.wait_stable(Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    let mut writer = TestClient::connect_within(cluster.port(new_leader), Duration::from_secs(10));
    assert_eq!(create(&mut writer, "/after-failover"), 0);
    drop(writer);
    cluster.start(leader);
    cluster.wait_stable(Duration::from_secs(30));
    cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(read_synced(cluster.port(leader), "/after-failover").as_deref(), Some(&b"tls"[..]));
}

/// ZooKeeper's documented rolling upgrade from a plain to a TLS quorum: every node first gets
/// `portUnification=true` (the quorum port takes TLS and plain peers), then one by one
/// `sslQuorum=true`; the ensemble serves writes on every node at each step.
#[test]
fn rolling_upgrade_with_port_unification() {
    let certs = TempDir::new("quorum-unify-certs");
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let (key, trust) = (c("server.pem"), c("truststore.pem"));
    let extras = [
        ("portUnification", "true"),
        ("ssl.quorum.keyStore.location", key.as_str()),
        ("ssl.quorum.trustStore.location", trust.as_str()),
        ("sslQuorum", "false"),
    ];
    let mut cluster = Ensemble::with_extras(&extras);
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_stable(Duration::from_secs(30));
    for step in 0..3 {
        // Node `step` restarts with sslQuorum=true; the others still dial in plain text.
        cluster.kill(step);
        let cfg_path = cluster.log_path(step).with_file_name("zoo.cfg");
        let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace("sslQuorum=false", "sslQuorum=true");
        std::fs::write(&cfg_path, cfg).unwrap();
        cluster.start(step);
        let leader = cluster.wait_stable(Duration::from_secs(30));
        let mut writer = TestClient::connect_within(cluster.port((leader + 1) % 3), Duration::from_secs(10));
        let path = format!("/step-{step}");
        assert_eq!(create(&mut writer, &path), 0, "step {step}");
        for i in 0..3 {
            let read = read_synced(cluster.port(i), &path);
            assert_eq!(read.as_deref(), Some(&b"tls"[..]), "step {step}, node {}\n{}", i + 1, cluster.logs());
        }
    }
    let log = std::fs::read_to_string(cluster.log_path(0)).unwrap();
    assert!(log.contains("using TLS encrypted quorum communication; port unification enabled"), "{log}");
}

/// A server whose certificate comes from a CA the others do not trust cannot join: the
/// accepting servers refuse its handshake (a WARN line naming `UnknownIssuer`, counted in
/// `ferrokeeper_quorum_tls_handshake_failures_total{side="accept"}` and mntr), it backs off
/// between attempts, and the two others form the quorum and serve.
#[test]
fn an_untrusted_peer_is_refused() {
    kept_out("untrusted", "UnknownIssuer");
}

/// `ssl.quorum.clientHostnameVerification` (default: on, as `hostnameVerification`): a
/// connecting server whose certificate (trusted, for client use) names another host is refused.
#[test]
fn a_peer_whose_certificate_names_another_host_is_refused() {
    kept_out("client2", "does not name its address 127.0.0.1");
}

/// Node 3 presents `<name>.crt`: the others refuse it with `cause` in their log.
fn kept_out(name: &str, cause: &str) {
    let certs = TempDir::new("quorum-rogue-certs");
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let rogue = certs.path().join(format!("{name}-store.pem"));
    let pem = [
        std::fs::read(certs.path().join(format!("{name}.crt"))).unwrap(),
        std::fs::read(certs.path().join(format!("{name}.key"))).unwrap(),
    ]
    .concat();
    std::fs::write(&rogue, pem).unwrap();
    let (key, trust) = (c("server.pem"), c("truststore.pem"));
    let extras = [
        ("sslQuorum", "true"),
        ("ssl.quorum.keyStore.location", key.as_str()),
        ("ssl.quorum.trustStore.location", trust.as_str()),
    ];
    let mut cluster = Ensemble::with_extras(&extras);
    // Node 3 presents the rogue certificate.
    let cfg_path = cluster.log_path(2).with_file_name("zoo.cfg");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(&key, &rogue.display().to_string());
    std::fs::write(&cfg_path, cfg).unwrap();
    for i in 0..3 {
        cluster.start(i);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let modes: Vec<String> = (0..3).map(|i| cluster.mode(i)).collect();
        let served = modes[..2].iter().any(|m| m == "leader") && modes[..2].iter().any(|m| m == "follower");
        let refused = (0..2).any(|i| {
            let log = std::fs::read_to_string(cluster.log_path(i)).unwrap();
            log.contains("quorum TLS handshake with a connecting peer failed") && log.contains(cause)
        });
        if served && refused {
            assert!(
                !matches!(modes[2].as_str(), "leader" | "follower"),
                "the rogue server joined: {modes:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{modes:?}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rogue dialer backs off: a handful of refusals per second at most, not a loop.
    std::thread::sleep(Duration::from_secs(2));
    let refusals = |i: usize| {
        let log = std::fs::read_to_string(cluster.log_path(i)).unwrap();
        log.matches("quorum TLS handshake with a connecting peer failed").count()
    };
    let before = refusals(0) + refusals(1);
    std::thread::sleep(Duration::from_secs(2));
    let after = refusals(0) + refusals(1);
    assert!(after - before <= 8, "{} refusals in 2 s", after - before);
    let value = |i: usize, key: &str| -> u64 {
        let mntr = support::four_letter(cluster.port(i), "mntr").unwrap();
        mntr.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('\t')?.parse().ok()).unwrap_or(0)
    };
    assert!(
        value(0, "zk_quorum_tls_handshake_failures_accept")
            + value(1, "zk_quorum_tls_handshake_failures_accept")
            >= 1
    );
    let mut client = TestClient::connect_within(cluster.port(0), Duration::from_secs(10));
    assert_eq!(create(&mut client, "/without-rogue"), 0);
}
