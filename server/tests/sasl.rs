//! SASL DIGEST-MD5 on the client port (issue 14): ZooKeeper's JAAS `Server` section, `sasl`
//! ACL ids with `authProvider.1=…SASLAuthenticationProvider`, `superUser`,
//! `sessionRequireClientSASLAuth`, and the refusals (wrong password, unknown user, a truncated
//! token), each closing only its own connection and counted in `/metrics` and `mntr`.
//!
//! One scripted session (a raw client speaking DIGEST-MD5 with `ferrokeeper_proto::sasl`) runs
//! against ferrokeeper and against Apache ZooKeeper 3.8 configured the same way; their
//! transcripts (whoami, getACL, NoAuth/InvalidACL outcomes, how a failed login ends) must be
//! equal. kazoo (pure-sasl) and zkCli.sh (a JAAS `Client` section) log in to ferrokeeper.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use ferrokeeper_proto::op::perms;
use ferrokeeper_proto::records::*;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::sasl::digest_md5::DigestClient;
use support::{ServerKind, ServerProcess, TempDir, TestClient};

const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

/// A JAAS file with the server's users and a client section for `bob`.
fn write_jaas(dir: &Path) -> String {
    let path = dir.join("jaas.conf");
    let text = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_admin="adminsecret"
    user_bob="bobsecret"
    user_alice="alicesecret";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";
};
"#;
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Starts `kind` with the JAAS file given as `-Djava.security.auth.login.config` (ZooKeeper
/// reads it only as a system property; ferrokeeper takes the same argument).
fn start(kind: ServerKind, jaas: &str, extra: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start_with_properties(kind, extra, &[("java.security.auth.login.config", jaas)])
}

/// How a SASL login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    Ok,
    /// The server answered this error code; `closed`: it then closed the connection.
    Refused {
        err: i32,
        closed: bool,
    },
    /// The server answered OK without proving the password (`allowSaslFailedClients`).
    NotAuthenticated {
        closed: bool,
    },
}

fn sasl_call(client: &mut TestClient, token: &[u8]) -> Result<Vec<u8>, i32> {
    let request = Request::Sasl(GetSaslRequest { token: Some(Bytes::copy_from_slice(token)) });
    let (header, body) = client.call(&request).unwrap();
    assert_eq!(header.zxid, 0, "SASL replies carry zxid 0, as ZooKeeper's");
    match body {
        Ok(Response::Sasl(SetSaslResponse { token })) => Ok(token.map(|t| t.to_vec()).unwrap_or_default()),
        Ok(other) => panic!("unexpected SASL reply {other:?}"),
        Err(err) => Err(err),
    }
}

fn refused(client: &mut TestClient, err: i32) -> Login {
    Login::Refused { err, closed: client.is_closed_by_server(Duration::from_secs(5)) }
}

/// DIGEST-MD5 as ZooKeeper's Java client runs it; `cut` truncates the digest-response.
fn login(client: &mut TestClient, user: &str, password: &str, cut: Option<usize>) -> Login {
    let mut digest = DigestClient::new(user, password);
    let challenge = match sasl_call(client, &digest.initial_token()) {
        Ok(challenge) => challenge,
        Err(err) => return refused(client, err),
    };
    let mut response = digest.respond(&challenge, "Y2xpZW50bm9uY2U").unwrap();
    if let Some(cut) = cut {
        response.truncate(cut);
    }
    match sasl_call(client, &response) {
        Ok(rspauth) => match digest.finish(&rspauth) {
            Ok(()) => Login::Ok,
            Err(_) => {
                Login::NotAuthenticated { closed: client.is_closed_by_server(Duration::from_millis(500)) }
            }
        },
        Err(err) => refused(client, err),
    }
}

fn connect(port: u16) -> TestClient {
    TestClient::connect(port).unwrap()
}

fn whoami(client: &mut TestClient) -> Vec<String> {
    match client.call(&Request::WhoAmI).unwrap().1 {
        Ok(Response::WhoAmI(r)) => r
            .client_info
            .iter()
            .filter(|i| i.auth_scheme != "ip")
            .map(|i| format!("{}:{}", i.auth_scheme, i.user))
            .collect(),
        other => vec![format!("whoami failed: {other:?}")],
    }
}

fn create(client: &mut TestClient, path: &str, acl: Vec<Acl>) -> String {
    let request = Request::Create(CreateRequest {
        path: path.to_owned(),
        data: Some(Bytes::from_static(b"d")),
        acl,
        flags: 0,
    });
    match client.call(&request).unwrap().1 {
        Ok(_) => "ok".to_owned(),
        Err(err) => format!("err {err}"),
    }
}

fn get(client: &mut TestClient, path: &str) -> String {
    match client.call(&Request::GetData(GetDataRequest { path: path.to_owned(), watch: false })).unwrap().1 {
        Ok(_) => "ok".to_owned(),
        Err(err) => format!("err {err}"),
    }
}

fn get_acl(client: &mut TestClient, path: &str) -> String {
    match client.call(&Request::GetAcl(GetAclRequest { path: path.to_owned() })).unwrap().1 {
        Ok(Response::GetAcl(r)) => r
            .acl
            .iter()
            .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    }
}

/// The scripted session: every outcome, in order.
fn provider_script(port: u16) -> Vec<String> {
    let mut log = Vec::new();
    let mut bob = connect(port);
    log.push(format!("bob login: {:?}", login(&mut bob, "bob", "bobsecret", None)));
    log.push(format!("bob whoami: {:?}", whoami(&mut bob)));
    log.push(format!(
        "create sasl:bob: {}",
        create(&mut bob, "/s", vec![Acl::new(perms::ALL, "sasl", "bob")])
    ));
    log.push(format!("create creator-all: {}", create(&mut bob, "/c", Acl::creator_all())));
    log.push(format!("getAcl /s: {}", get_acl(&mut bob, "/s")));
    log.push(format!("getAcl /c: {}", get_acl(&mut bob, "/c")));
    log.push(format!("bob reads /s: {}", get(&mut bob, "/s")));
    let kerberos_ids = ["bob@EXAMPLE.COM", "zk/host@EXAMPLE.COM", "a/b/c", "a@b@c", "a/b/c@R"];
    for (i, id) in kerberos_ids.iter().enumerate() {
        let outcome = create(&mut bob, &format!("/k{i}"), vec![Acl::new(perms::ALL, "sasl", id)]);
        log.push(format!("create sasl:{id}: {outcome}"));
    }
    let mut alice = connect(port);
    log.push(format!("alice login: {:?}", login(&mut alice, "alice", "alicesecret", None)));
    log.push(format!("alice reads /s: {}", get(&mut alice, "/s")));
    let mut admin = connect(port);
    log.push(format!("admin login: {:?}", login(&mut admin, "admin", "adminsecret", None)));
    log.push(format!("admin whoami: {:?}", whoami(&mut admin)));
    log.push(format!("admin (super) reads /s: {}", get(&mut admin, "/s")));
    let mut plain = connect(port);
    log.push(format!("plain reads /s: {}", get(&mut plain, "/s")));
    log.push(format!("plain creates creator-all: {}", create(&mut plain, "/p", Acl::creator_all())));
    let mut wrong = connect(port);
    log.push(format!("wrong password: {:?}", login(&mut wrong, "bob", "nope", None)));
    let mut unknown = connect(port);
    log.push(format!("unknown user: {:?}", login(&mut unknown, "mallory", "x", None)));
    let mut truncated = connect(port);
    log.push(format!("truncated token: {:?}", login(&mut truncated, "bob", "bobsecret", Some(40))));
    // The other connections were not disturbed.
    log.push(format!("bob reads /s after: {}", get(&mut bob, "/s")));
    log.push(format!("plain ping after: {}", plain.ping().unwrap().err));
    log
}

fn enforced_script(port: u16) -> Vec<String> {
    let mut log = Vec::new();
    let mut plain = connect(port);
    log.push(format!("unauthenticated getData: {}", get(&mut plain, "/")));
    log.push(format!("closed: {}", plain.is_closed_by_server(Duration::from_secs(5))));
    let mut digest_only = connect(port);
    log.push(format!("addauth digest: {}", digest_only.auth("digest", b"bob:x").unwrap()));
    log.push(format!("digest-only getData: {}", get(&mut digest_only, "/")));
    let mut bob = connect(port);
    log.push(format!("bob login: {:?}", login(&mut bob, "bob", "bobsecret", None)));
    log.push(format!("bob getData: {}", get(&mut bob, "/")));
    let mut wrong = connect(port);
    log.push(format!("wrong password: {:?}", login(&mut wrong, "bob", "nope", None)));
    log
}

/// `allowSaslFailedClients` keeps a failed login's connection (without a `sasl` id);
/// `letAnySaslUserDoX` names an ACL id every SASL user matches.
fn lenient_script(port: u16) -> Vec<String> {
    let mut log = Vec::new();
    let mut bob = connect(port);
    log.push(format!("bob login: {:?}", login(&mut bob, "bob", "bobsecret", None)));
    let acl = vec![Acl::new(perms::ALL, "sasl", "anyone_sasl")];
    log.push(format!("create sasl:anyone_sasl: {}", create(&mut bob, "/any", acl)));
    let mut alice = connect(port);
    log.push(format!("alice login: {:?}", login(&mut alice, "alice", "alicesecret", None)));
    log.push(format!("alice reads /any: {}", get(&mut alice, "/any")));
    let mut wrong = connect(port);
    log.push(format!("wrong password: {:?}", login(&mut wrong, "alice", "nope", None)));
    log.push(format!("wrong whoami: {:?}", whoami(&mut wrong)));
    log.push(format!("wrong reads /any: {}", get(&mut wrong, "/any")));
    log.push(format!("wrong ping: {}", wrong.ping().unwrap().err));
    log
}

fn provider_config() -> Vec<(&'static str, &'static str)> {
    vec![("authProvider.1", SASL_PROVIDER), ("superUser", "admin"), ("4lw.commands.whitelist", "*")]
}

fn metric(port: u16, sample: &str) -> f64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
}

/// The same session against ZooKeeper 3.8 and ferrokeeper, with SASLAuthenticationProvider and
/// `superUser=admin`, then with `sessionRequireClientSASLAuth=true`, then with
/// `allowSaslFailedClients` and `letAnySaslUserDoX`; and ferrokeeper's failure counters.
#[test]
fn digest_md5_matches_zookeeper() {
    let dir = TempDir::new("sasl");
    let jaas = write_jaas(dir.path());
    let metrics_port = support::free_port().to_string();
    let mut ours_config = provider_config();
    ours_config.push(("metricsProvider.httpHost", "127.0.0.1"));
    ours_config.push(("metricsProvider.httpPort", &metrics_port));
    let ours = start(ServerKind::Ferrokeeper, &jaas, &ours_config);
    let got = provider_script(ours.port);
    for line in &got {
        eprintln!("ferrokeeper: {line}");
    }
    // Three refused logins: wrong password, unknown user, truncated token.
    let metrics_port: u16 = metrics_port.parse().unwrap();
    assert_eq!(metric(metrics_port, "ferrokeeper_auth_failures_total{scheme=\"sasl\"}"), 3.0);
    assert_eq!(metric(metrics_port, "ferrokeeper_auth_failures_total{scheme=\"digest\"}"), 0.0);
    let mntr = support::four_letter(ours.port, "mntr").unwrap();
    assert!(mntr.contains("zk_auth_failures_sasl\t3\n"), "{mntr}");
    assert!(mntr.contains("zk_auth_failed_count\t3\n"), "{mntr}");
    let log = std::fs::read_to_string(ours.dir().join("server.log")).unwrap();
    for cause in ["Mismatched response", "cannot acquire password for mallory", "unterminated quoted value"] {
        assert!(log.contains(cause), "no log line names {cause:?}:\n{log}");
    }
    drop(ours);

    let enforced = [("authProvider.1", SASL_PROVIDER), ("sessionRequireClientSASLAuth", "true")];
    let ours_enforced = start(ServerKind::Ferrokeeper, &jaas, &enforced);
    let got_enforced = enforced_script(ours_enforced.port);
    drop(ours_enforced);
    let lenient = [
        ("authProvider.1", SASL_PROVIDER),
        ("allowSaslFailedClients", "true"),
        ("letAnySaslUserDoX", "anyone_sasl"),
    ];
    let ours_lenient = start(ServerKind::Ferrokeeper, &jaas, &lenient);
    let got_lenient = lenient_script(ours_lenient.port);
    drop(ours_lenient);
    for line in &got_lenient {
        eprintln!("ferrokeeper: {line}");
    }
    assert!(got_lenient.contains(&"alice reads /any: ok".to_owned()), "{got_lenient:#?}");
    for line in &got_enforced {
        eprintln!("ferrokeeper: {line}");
    }
    // What ZooKeeper's source says these must be, independently of the oracle run.
    assert!(got.contains(&"bob whoami: [\"sasl:bob\"]".to_owned()), "{got:#?}");
    assert!(got.contains(&"alice reads /s: err -102".to_owned()), "{got:#?}");
    assert!(got.contains(&"wrong password: Refused { err: -115, closed: true }".to_owned()), "{got:#?}");
    assert!(got_enforced.contains(&"unauthenticated getData: err -124".to_owned()), "{got_enforced:#?}");

    if !support::oracle_available() {
        return;
    }
    let zk = start(ServerKind::ZooKeeper, &jaas, &provider_config());
    let want = provider_script(zk.port);
    drop(zk);
    assert_eq!(got, want, "ferrokeeper (left) and ZooKeeper (right) differ");
    let zk_enforced = start(ServerKind::ZooKeeper, &jaas, &enforced);
    let want_enforced = enforced_script(zk_enforced.port);
    drop(zk_enforced);
    assert_eq!(got_enforced, want_enforced, "ferrokeeper (left) and ZooKeeper (right) differ");
    let zk_lenient = start(ServerKind::ZooKeeper, &jaas, &lenient);
    let want_lenient = lenient_script(zk_lenient.port);
    drop(zk_lenient);
    assert_eq!(got_lenient, want_lenient, "ferrokeeper (left) and ZooKeeper (right) differ");
}

/// Without a JAAS file a SASL token gets an OK with an empty token, as ZooKeeper answers it
/// (its connection has no SaslServer); refused addauths are counted by scheme; a bad JAAS
/// file stops the start naming the file.
#[test]
fn without_jaas_and_with_a_bad_one() {
    let config = [("authProvider.1", SASL_PROVIDER), ("4lw.commands.whitelist", "mntr")];
    let server = ServerProcess::start(ServerKind::Ferrokeeper, &config);
    let mut client = connect(server.port);
    assert_eq!(sasl_call(&mut client, b""), Ok(Vec::new()));
    assert_eq!(client.ping().unwrap().err, 0);
    // addauth refusals count by scheme (a scheme without a provider as `other`).
    assert_eq!(connect(server.port).auth("kerberos", b"x").unwrap(), -115);
    assert_eq!(connect(server.port).auth("sasl", b"x").unwrap(), -115);
    let mntr = support::four_letter(server.port, "mntr").unwrap();
    for line in ["zk_auth_failures_other\t1\n", "zk_auth_failures_sasl\t1\n", "zk_auth_failed_count\t2\n"] {
        assert!(mntr.contains(line), "{line:?} not in\n{mntr}");
    }
    drop(server);

    let dir = TempDir::new("sasl-bad");
    let cfg = dir.path().join("zoo.cfg");
    let jaas = dir.path().join("jaas.conf");
    std::fs::write(&jaas, "Client { org.apache.zookeeper.server.auth.DigestLoginModule required; };")
        .unwrap();
    std::fs::write(&cfg, format!("dataDir={}\nclientPort={}\n", dir.path().display(), support::free_port()))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"));
    cmd.arg(format!("-Djava.security.auth.login.config={}", jaas.display())).arg(&cfg);
    let (ok, _, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(20)).unwrap();
    assert!(!ok);
    assert!(stderr.contains("No JAAS configuration section named 'Server' was found in"), "{stderr}");
}

fn kazoo_with_sasl() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo.client, puresasl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED: python3 cannot import kazoo and puresasl and FK_SKIP_ORACLE=1");
        return false;
    }
    assert!(ok, "python3 cannot import kazoo and puresasl: run scripts/install-test-deps.sh");
    true
}

/// kazoo's `sasl_options` DIGEST-MD5 (pure-sasl) and zkCli.sh with a JAAS `Client` section log
/// in to ferrokeeper.
#[test]
fn kazoo_and_zkcli_log_in() {
    let dir = TempDir::new("sasl-clients");
    let jaas = write_jaas(dir.path());
    let server = start(ServerKind::Ferrokeeper, &jaas, &provider_config());
    if kazoo_with_sasl() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kazoo/sasl_digest.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(server.addr());
        let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(90)).unwrap();
        assert!(
            ok && stdout.contains("kazoo sasl: OK"),
            "kazoo failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
            server.log_tail()
        );
    }
    if !Path::new(support::ZKCLI).exists() {
        assert!(std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1"), "zkCli.sh is missing");
        return;
    }
    let script = dir.path().join("zkcli.txt");
    std::fs::write(
        &script,
        "whoami\ncreate /zkcli-sasl x sasl:bob:cdrwa\ngetAcl /zkcli-sasl\nget /zkcli-sasl\nquit\n",
    )
    .unwrap();
    let mut cmd = Command::new(support::ZKCLI);
    cmd.args(["-server", &server.addr()]);
    let flags = format!("-Djava.security.auth.login.config={jaas} -Dzookeeper.sasl.client=true");
    cmd.stdin(std::fs::File::open(&script).unwrap()).env("CLIENT_JVMFLAGS", flags);
    let (_, stdout, stderr) = support::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    let all = format!("{stdout}\n{stderr}");
    assert!(all.contains("sasl: bob"), "whoami:\n{all}");
    assert!(all.contains("'sasl,'bob\n: cdrwa"), "getAcl:\n{all}");
    assert!(!all.contains("Insufficient permission"), "{all}");
}

/// A token after a completed login is refused and closes the connection (ZooKeeper's
/// SaslServer throws there); a second connection of the same user logs in again.
#[test]
fn a_token_after_the_login_is_refused() {
    let dir = TempDir::new("sasl-again");
    let jaas = write_jaas(dir.path());
    let server = start(ServerKind::Ferrokeeper, &jaas, &provider_config());
    let mut bob = connect(server.port);
    assert_eq!(login(&mut bob, "bob", "bobsecret", None), Login::Ok);
    assert_eq!(sasl_call(&mut bob, b""), Err(-115));
    assert!(bob.is_closed_by_server(Duration::from_secs(5)));
    let mut again = connect(server.port);
    assert_eq!(login(&mut again, "bob", "bobsecret", None), Login::Ok);
    let log = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
    assert!(log.contains("DIGEST-MD5 authentication already completed"), "{log}");
}
