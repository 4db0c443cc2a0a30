//! fkload against a secure ferrokeeper (issue 14): TLS-only (`secureClientPort`, client
//! certificates required) with SASL DIGEST-MD5 enforced (`sessionRequireClientSASLAuth`), the
//! client settings given as the Java client's properties with `-D`. Every session connects over
//! TLS and logs in, or the server would refuse its requests.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{free_port, server_binary};

fn run_bounded(cmd: &mut Command, limit: Duration, log: &Path) -> bool {
    let file = std::fs::File::create(log).unwrap();
    let mut child = cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fkload_over_tls_with_sasl() {
    let dir = std::env::temp_dir().join(format!("fkload-secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let certs = dir.join("certs");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-test-certs.sh");
    assert!(run_bounded(
        Command::new("bash").arg(script).arg(&certs),
        Duration::from_secs(60),
        &dir.join("certs.log")
    ));
    let jaas = dir.join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_load=\"loadpw\"; };\n\
         Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"load\" password=\"loadpw\"; };\n",
    )
    .unwrap();
    let port = free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=2000\ndataDir={}\nsecureClientPortAddress=127.0.0.1\nsecureClientPort={port}\n\
             ssl.keyStore.location={}\nssl.trustStore.location={}\nssl.clientAuth=need\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             sessionRequireClientSASLAuth=true\n",
            dir.join("data").display(),
            c("server.pem"),
            c("truststore.pem"),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut server = Command::new(server_binary())
        .arg(format!("-Djava.security.auth.login.config={}", jaas.display()))
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ferrokeeper did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let workload: PathBuf = [env!("CARGO_MANIFEST_DIR"), "workloads", "read-heavy.yaml"].iter().collect();
    let out = dir.join("result.json");
    let mut fkload = Command::new(env!("CARGO_BIN_EXE_fkload"));
    fkload
        .args(["run", "-w"])
        .arg(&workload)
        .args(["-t", &format!("127.0.0.1:{port}"), "--no-progress", "--no-server-stats"])
        .args(["--sessions", "4", "--inflight", "2", "--duration", "1", "--warmup", "0.2"])
        .args(["-D", "zookeeper.client.secure=true"])
        .args(["-D", &format!("zookeeper.ssl.keyStore.location={}", c("client.pem"))])
        .args(["-D", &format!("zookeeper.ssl.trustStore.location={}", c("ca.pem"))])
        .args(["-D", &format!("java.security.auth.login.config={}", jaas.display())])
        .arg("--out")
        .arg(&out);
    let ok = run_bounded(&mut fkload, Duration::from_secs(90), &dir.join("fkload.log"));
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let _ = server.kill();
    let _ = server.wait();
    let fkload_log = std::fs::read_to_string(dir.join("fkload.log")).unwrap_or_default();
    assert!(ok, "fkload failed:\n{fkload_log}\nserver:\n{server_log}");
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let get = &result["ops"]["get"];
    assert!(get["count"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(get["errors"].as_u64(), Some(0), "{result}");
    assert!(server_log.contains("adding SASL authorization"), "{server_log}");
    let _ = std::fs::remove_dir_all(&dir);
}
