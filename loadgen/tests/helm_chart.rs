//! deploy/helm/ferrokeeper: `helm lint --strict`, then `helm template`, then the rendered
//! objects are checked against each other (replicas = server.N lines, peers named
//! `<statefulset>-<ordinal>.<headless service>.<namespace>.svc.cluster.local`, volumes mounted
//! where zoo.cfg's dataDir and dataLogDir point, probes and the Prometheus annotation on the
//! configured ports, the PodDisruptionBudget selecting the pods), and the rendered zoo.cfg starts
//! a real 3-node ferrokeeper ensemble on this machine: every key as rendered, only hosts, ports
//! and directories rewritten to 127.0.0.1 and a temp dir. The myid line of the init container
//! and the readiness and liveness probe commands are executed as rendered (ports rewritten), the
//! ensemble takes a write on one member and serves it from another, the transaction log lands
//! in dataLogDir, and /metrics answers on the annotated port. The fkload Indexed Job renders
//! with the worker index in `--worker` and refuses to render without `startAt`.
//!
//! Helm comes from scripts/helm.sh (a `helm` binary, else Helm's Go SDK from the PyPI package
//! helm-python-sdk; scripts/helm-deps.sh installs one). Missing, the test fails unless
//! FK_SKIP_ORACLE=1.
#![allow(clippy::unwrap_used)]

mod ensemble;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ensemble::{TempDir, four_letter, free_port, repo_root, server_bin, tail};
use serde_yaml::Value;

fn helm(args: &[&str]) -> (bool, String) {
    let o = Command::new("bash")
        .arg(repo_root().join("scripts/helm.sh"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        o.status.success(),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

fn helm_available() -> bool {
    let (ok, text) = helm(&["lint", "--help"]);
    if ok || text.contains("usage") || text.contains("Usage") {
        return true;
    }
    if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED: no helm (scripts/helm-deps.sh installs one) and FK_SKIP_ORACLE=1: {text}");
        return false;
    }
    panic!(
        "no helm: run scripts/helm-deps.sh (or scripts/install-test-deps.sh), or set FK_SKIP_ORACLE=1\n{text}"
    );
}

/// The rendered documents by `kind/name`.
fn render(extra: &[&str]) -> BTreeMap<String, Value> {
    let mut args = vec!["template", "fk", "deploy/helm/ferrokeeper", "--namespace", "zk"];
    args.extend_from_slice(extra);
    let (ok, text) = helm(&args);
    assert!(ok, "helm template failed:\n{text}");
    let mut out = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        let key = format!("{}/{}", v["kind"].as_str().unwrap(), v["metadata"]["name"].as_str().unwrap());
        out.insert(key, v);
    }
    out
}

use serde::Deserialize;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// zoo.cfg as ordered `(key, value)` pairs.
fn parse_cfg(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bash(script: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn chart_lints_renders_and_its_zoo_cfg_runs_an_ensemble() {
    if !helm_available() {
        return;
    }
    let t0 = Instant::now();
    let (ok, text) = helm(&["lint", "deploy/helm/ferrokeeper", "--strict"]);
    assert!(ok, "helm lint --strict:\n{text}");
    let (ok, text) = helm(&[
        "lint",
        "deploy/helm/ferrokeeper",
        "--strict",
        "--set",
        "fkload.enabled=true",
        "--set",
        "fkload.startAt=2026-11-29T10:00:00Z",
    ]);
    assert!(ok, "helm lint --strict with fkload:\n{text}");

    let docs = render(&[]);
    let cm = &docs["ConfigMap/fk-ferrokeeper"];
    let cfg = parse_cfg(cm["data"]["zoo.cfg"].as_str().unwrap());
    let get = |k: &str| {
        cfg.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("zoo.cfg lacks {k}"))
    };
    let servers: Vec<&(String, String)> = cfg.iter().filter(|(k, _)| k.starts_with("server.")).collect();
    let sts = &docs["StatefulSet/fk-ferrokeeper"];
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(servers.len() as u64), "replicas = server.N lines");
    assert_eq!(servers.len(), 3);
    assert_eq!(spec["podManagementPolicy"].as_str(), Some("Parallel"));
    let headless = &docs["Service/fk-ferrokeeper-headless"];
    assert_eq!(spec["serviceName"].as_str(), headless["metadata"]["name"].as_str());
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(headless["spec"]["publishNotReadyAddresses"].as_bool(), Some(true));
    let client_port = get("clientPort");
    let metrics_port = get("metricsProvider.httpPort");
    let headless_ports: Vec<String> =
        headless["spec"]["ports"].as_sequence().unwrap().iter().map(|p| s(&p["port"])).collect();
    for (i, (key, value)) in servers.iter().enumerate() {
        assert_eq!(key, &format!("server.{}", i + 1));
        let (addr, client) = value.split_once(';').unwrap();
        let parts: Vec<&str> = addr.split(':').collect();
        assert_eq!(
            parts[0],
            format!("fk-ferrokeeper-{i}.fk-ferrokeeper-headless.zk.svc.cluster.local"),
            "{value}"
        );
        assert!(
            headless_ports.contains(&parts[1].to_owned()) && headless_ports.contains(&parts[2].to_owned()),
            "{value}"
        );
        assert_eq!(client, client_port);
    }
    let pod = &spec["template"];
    let container = &pod["spec"]["containers"][0];
    let mounts: BTreeMap<String, String> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (s(&m["mountPath"]), s(&m["name"])))
        .collect();
    let claims: Vec<String> = spec["volumeClaimTemplates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| s(&c["metadata"]["name"]))
        .collect();
    for key in ["dataDir", "dataLogDir"] {
        let volume =
            mounts.get(&get(key)).unwrap_or_else(|| panic!("{key}={} is not a mount: {mounts:?}", get(key)));
        assert!(claims.contains(volume), "{key} on {volume}, not a persistent volume claim ({claims:?})");
    }
    assert_ne!(
        mounts[&get("dataDir")],
        mounts[&get("dataLogDir")],
        "dataDir and dataLogDir on their own volumes"
    );
    let ports: Vec<String> =
        container["ports"].as_sequence().unwrap().iter().map(|p| s(&p["containerPort"])).collect();
    assert!(ports.contains(&client_port) && ports.contains(&metrics_port), "{ports:?}");
    assert_eq!(s(&pod["metadata"]["annotations"]["prometheus.io/port"]), metrics_port);
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"].as_str(), Some("true"));
    let pdb = &docs["PodDisruptionBudget/fk-ferrokeeper"];
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"],
        "the PDB selects the members"
    );
    let readiness = s(&container["readinessProbe"]["exec"]["command"][2]);
    let liveness = s(&container["livenessProbe"]["exec"]["command"][2]);
    assert!(readiness.contains("srvr") && liveness.contains("ruok"));
    let init = s(&pod["spec"]["initContainers"][0]["command"][2]);
    let myid_line =
        init.lines().find(|l| l.contains("/data/myid")).expect("the init container writes myid").to_owned();

    // The fkload Indexed Job.
    let with_job = render(&["--set", "fkload.enabled=true", "--set", "fkload.startAt=2026-11-29T10:00:00Z"]);
    let job = &with_job["Job/fk-ferrokeeper-fkload"];
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(job["spec"]["completions"], job["spec"]["parallelism"]);
    let cmd = s(&job["spec"]["template"]["spec"]["containers"][0]["command"][2]);
    assert!(
        cmd.contains("--worker \"${JOB_COMPLETION_INDEX}/4\"")
            && cmd.contains("--start-at 2026-11-29T10:00:00Z"),
        "{cmd}"
    );
    assert!(cmd.contains("/results/w${JOB_COMPLETION_INDEX}.json"), "{cmd}");
    assert!(cmd.contains("fk-ferrokeeper-2.fk-ferrokeeper-headless.zk.svc.cluster.local:2181"), "{cmd}");
    let (ok, text) = helm(&["template", "fk", "deploy/helm/ferrokeeper", "--set", "fkload.enabled=true"]);
    assert!(!ok && text.contains("startAt"), "the job needs startAt: {text}");

    // The rendered zoo.cfg, on this machine.
    let tmp = TempDir::new("fkload-chart");
    let n = servers.len();
    let quorum: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let clients: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let metrics: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut procs = Procs(Vec::new());
    for i in 0..n {
        let node = tmp.0.join(format!("node{}", i + 1));
        let (data, datalog) = (node.join("data"), node.join("datalog"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&datalog).unwrap();
        // myid exactly as the init container computes it, for pod fk-ferrokeeper-<i>.
        let line = myid_line.replace("/data/myid", &data.join("myid").display().to_string());
        let st = Command::new("bash")
            .arg("-c")
            .arg(&line)
            .env("HOSTNAME", format!("fk-ferrokeeper-{i}"))
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read_to_string(data.join("myid")).unwrap().trim(), (i + 1).to_string());
        let mut text = String::new();
        for (k, v) in &cfg {
            let v = match k.as_str() {
                "dataDir" => data.display().to_string(),
                "dataLogDir" => datalog.display().to_string(),
                "clientPort" => clients[i].to_string(),
                "metricsProvider.httpPort" => metrics[i].to_string(),
                _ if k.starts_with("server.") => {
                    let j: usize = k["server.".len()..].parse::<usize>().unwrap() - 1;
                    format!("127.0.0.1:{}:{};{}", quorum[j].0, quorum[j].1, clients[j])
                }
                _ => v.clone(),
            };
            text.push_str(&format!("{k}={v}\n"));
        }
        // Loopback only on this machine.
        text.push_str("clientPortAddress=127.0.0.1\nmetricsProvider.httpHost=127.0.0.1\n");
        std::fs::write(node.join("zoo.cfg"), &text).unwrap();
        let log = std::fs::File::create(node.join("node.log")).unwrap();
        procs.0.push(
            Command::new(server_bin())
                .arg("--config")
                .arg(node.join("zoo.cfg"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let logs = || -> String {
        (1..=n)
            .map(|i| format!("--- node {i} ---\n{}\n", tail(&tmp.0.join(format!("node{i}/node.log")), 15)))
            .collect()
    };
    // Ready as the readiness probe says (run as rendered, on each node's port).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in &mut procs.0 {
            assert!(c.try_wait().unwrap().is_none(), "a node exited:\n{}", logs());
        }
        let ready: Vec<bool> = clients
            .iter()
            .map(|p| bash(&readiness.replace(&format!("/{client_port}"), &format!("/{p}"))))
            .collect();
        if ready.iter().all(|r| *r) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready: {ready:?}\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in &clients {
        assert!(bash(&liveness.replace(&format!("/{client_port}"), &format!("/{p}"))), "liveness on {p}");
    }
    let modes: Vec<String> = clients
        .iter()
        .map(|p| {
            four_letter(*p, "srvr")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
                .unwrap()
        })
        .collect();
    assert_eq!(modes.iter().filter(|m| *m == "leader").count(), 1, "{modes:?}");
    assert_eq!(modes.iter().filter(|m| *m == "follower").count(), n - 1, "{modes:?}");

    // A write through one member, read from another.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use ferrokeeper_client::{Acl, CreateMode, ZooKeeper};
        let (a, _ea) =
            ZooKeeper::connect(&format!("127.0.0.1:{}", clients[0]), Duration::from_secs(10)).await.unwrap();
        a.create("/chart", b"rendered", &Acl::open_unsafe(), CreateMode::Persistent, None).await.unwrap();
        let (b, _eb) = ZooKeeper::connect(&format!("127.0.0.1:{}", clients[n - 1]), Duration::from_secs(10))
            .await
            .unwrap();
        b.sync("/chart").await.unwrap();
        assert_eq!(&b.get_data("/chart").await.unwrap().0[..], b"rendered");
    });
    // The log is in dataLogDir, myid in dataDir.
    for i in 1..=n {
        let datalog = tmp.0.join(format!("node{i}/datalog"));
        let mut files: Vec<String> = Vec::new();
        for e in walk(&datalog) {
            files.push(e);
        }
        assert!(!files.is_empty(), "node {i}: nothing in dataLogDir {}", datalog.display());
    }
    // /metrics on the annotated port.
    let mut s = TcpStream::connect(("127.0.0.1", metrics[0])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.contains("ferrokeeper_"),
        "no ferrokeeper metrics on the metrics port: {}",
        &body[..body.len().min(300)]
    );
    eprintln!(
        "chart: lint, template, checks and a 3-node ensemble from the rendered zoo.cfg in {:.1?}",
        t0.elapsed()
    );
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
