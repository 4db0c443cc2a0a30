//! dashboards/: the Grafana dashboards, the Prometheus config and the provisioning files, checked
//! against a live system.
//!
//! 1. Static: every `dashboards/grafana/*.json` parses, has panels with unique ids and grid
//!    positions, every non-row panel has targets with an `expr`, every datasource reference is the
//!    `${DS_PROMETHEUS}` variable of type prometheus, and every `$variable` an expression uses is
//!    a template variable of its dashboard. The provisioning YAML names a prometheus datasource
//!    and a file provider.
//!    The committed JSON must equal what `dashboards/generate.py` writes (if python3 is there).
//! 2. `promtool check config` on `dashboards/prometheus.yml` (a copy with the test's ports) and
//!    `dashboards/docker/prometheus.yml`.
//! 3. Live: a 3-node ferrokeeper ensemble (debug build, free ports, metrics on), fkload under
//!    read-heavy load with `--metrics-port`, and Prometheus (`prometheus`, Debian's 2.42)
//!    scraping them every second. No request fails: the error panels must show the zero lines of
//!    the error series that servers and fkload create at start, not "No data". Once every target
//!    is up and has been scraped a few times, **every panel's query** and every `label_values`
//!    variable query goes through `/api/v1/query` (`$__rate_interval` → 10s, `$job` etc. → `.*`)
//!    and must return at least one series with a number (not NaN). Failures list the queries.
//!    Then the error panels' queries must read exactly 0: the load was healthy.
//!
//! Needs `prometheus` and `promtool` on PATH (scripts/prometheus-deps.sh, called by
//! scripts/install-test-deps.sh); fails if they are missing unless `FK_SKIP_ORACLE=1`, which runs
//! only the static part. The ferrokeeper binary is the one next to fkload in the same target
//! directory: `cargo test --workspace` builds it (ferrokeeper-server has integration tests, so its
//! binary is built before any test runs); if it is missing (e.g. `cargo test -p
//! ferrokeeper-loadgen` in a fresh target dir) the test says to run `cargo build -p
//! ferrokeeper-server` first. Every process is killed by pid on drop.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const RATE_INTERVAL: &str = "10s";
const INTERVAL: &str = "2s";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn dashboards_dir() -> PathBuf {
    repo_root().join("dashboards")
}

// ---------------------------------------------------------------------------------------------
// Static checks

struct Dashboard {
    file: String,
    variables: BTreeMap<String, Value>,
    /// (panel title, expr) for every target.
    queries: Vec<(String, String)>,
}

fn load_dashboards() -> Vec<Dashboard> {
    let dir = dashboards_dir().join("grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected at least 3 dashboards in {}, found {files:?}", dir.display());
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        let dash = check_dashboard(&file, &json, &mut problems);
        let uid = json["uid"].as_str().unwrap_or_default().to_owned();
        if uid.is_empty() || !uids.insert(uid.clone()) {
            problems.push(format!("{file}: missing or duplicate uid {uid:?}"));
        }
        out.push(dash);
    }
    assert!(problems.is_empty(), "dashboard problems:\n  {}", problems.join("\n  "));
    out
}

fn is_ds_ref(v: &Value) -> bool {
    v["type"] == "prometheus" && v["uid"] == "${DS_PROMETHEUS}"
}

fn check_dashboard(file: &str, json: &Value, problems: &mut Vec<String>) -> Dashboard {
    for key in ["title", "uid"] {
        if !json[key].is_string() {
            problems.push(format!("{file}: no {key}"));
        }
    }
    let mut variables = BTreeMap::new();
    for var in json["templating"]["list"].as_array().cloned().unwrap_or_default() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        if var["type"] == "query" && !is_ds_ref(&var["datasource"]) {
            problems.push(format!("{file}: variable {name}: datasource is not ${{DS_PROMETHEUS}}"));
        }
        variables.insert(name, var);
    }
    match variables.get("DS_PROMETHEUS") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push(format!("{file}: no datasource variable DS_PROMETHEUS of type prometheus")),
    }
    let mut panels: Vec<Value> = Vec::new();
    for p in json["panels"].as_array().cloned().unwrap_or_default() {
        for nested in p["panels"].as_array().cloned().unwrap_or_default() {
            panels.push(nested);
        }
        panels.push(p);
    }
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("<untitled>").to_owned();
        let id = p["id"].as_i64().unwrap_or(-1);
        if !ids.insert(id) {
            problems.push(format!("{file}: panel {title:?}: missing or duplicate id {id}"));
        }
        let pos = &p["gridPos"];
        let (x, w) = (pos["x"].as_i64().unwrap_or(-1), pos["w"].as_i64().unwrap_or(-1));
        if x < 0 || w <= 0 || x + w > 24 || pos["h"].as_i64().unwrap_or(0) <= 0 || !pos["y"].is_i64() {
            problems.push(format!("{file}: panel {title:?}: bad gridPos {pos}"));
        }
        if p["type"] == "row" {
            continue;
        }
        if !is_ds_ref(&p["datasource"]) {
            problems.push(format!("{file}: panel {title:?}: datasource is not ${{DS_PROMETHEUS}}"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{file}: panel {title:?}: no targets"));
        }
        let mut refs = BTreeSet::new();
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default().trim().to_owned();
            if expr.is_empty() {
                problems.push(format!("{file}: panel {title:?}: a target without expr"));
                continue;
            }
            if !t["datasource"].is_null() && !is_ds_ref(&t["datasource"]) {
                problems
                    .push(format!("{file}: panel {title:?}: target datasource is not ${{DS_PROMETHEUS}}"));
            }
            if !refs.insert(t["refId"].as_str().unwrap_or_default().to_owned()) {
                problems.push(format!("{file}: panel {title:?}: duplicate refId"));
            }
            for var in used_variables(&expr) {
                if !var.starts_with("__") && !variables.contains_key(&var) {
                    problems.push(format!("{file}: panel {title:?}: unknown variable ${var} in {expr}"));
                }
            }
            queries.push((title.clone(), expr));
        }
    }
    if queries.is_empty() {
        problems.push(format!("{file}: no panels with queries"));
    }
    Dashboard { file: file.to_owned(), variables, queries }
}

/// `$name` and `${name}` occurrences.
fn used_variables(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start {
                out.push(expr[start..end].to_owned());
            }
            i = if braced { end + 1 } else { end };
        } else {
            i += 1;
        }
    }
    out
}

/// Grafana's substitution, for an "All" selection: template variables become `.*` (every selector
/// uses `=~`), the built-in intervals fixed durations.
fn substitute(expr: &str, variables: &BTreeMap<String, Value>) -> String {
    let mut e = expr.to_owned();
    for (name, value) in [
        ("__rate_interval", RATE_INTERVAL),
        ("__interval", INTERVAL),
        ("__range", "1m"),
        ("__range_s", "60"),
        ("__interval_ms", "2000"),
    ] {
        e = e.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len())); // $fkload_job before $job
    for name in names {
        e = e.replace(&format!("${{{name}}}"), ".*").replace(&format!("${name}"), ".*");
    }
    e
}

/// The committed JSON is what `dashboards/generate.py` writes (when python3 is there).
fn check_generated(tmp: &Path) {
    let script = dashboards_dir().join("generate.py");
    let Ok(out) = Command::new("python3").arg(&script).arg(tmp).output() else {
        eprintln!("no python3: not checking that dashboards/grafana matches generate.py");
        return;
    };
    assert!(out.status.success(), "generate.py failed: {}", String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(tmp).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let committed =
            std::fs::read_to_string(dashboards_dir().join("grafana").join(&name)).unwrap_or_default();
        assert!(
            committed == std::fs::read_to_string(&path).unwrap(),
            "dashboards/grafana/{} differs from what dashboards/generate.py writes: run `python3 \
             dashboards/generate.py` (and edit generate.py, not the JSON)",
            name.to_string_lossy()
        );
    }
}

fn check_provisioning() {
    let dir = dashboards_dir().join("provisioning");
    let ds: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("datasources/prometheus.yaml")).unwrap())
            .unwrap();
    let sources = ds["datasources"].as_sequence().expect("datasources: a list");
    assert!(
        sources.iter().any(|s| s["type"].as_str() == Some("prometheus") && s["url"].as_str().is_some()),
        "provisioning/datasources/prometheus.yaml: no prometheus datasource with a url"
    );
    let dash: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("dashboards/ferrokeeper.yaml")).unwrap())
            .unwrap();
    let providers = dash["providers"].as_sequence().expect("providers: a list");
    assert!(
        providers
            .iter()
            .any(|p| p["type"].as_str() == Some("file") && p["options"]["path"].as_str().is_some()),
        "provisioning/dashboards/ferrokeeper.yaml: no file provider with options.path"
    );
    let compose = std::fs::read_to_string(dashboards_dir().join("docker-compose.yml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&compose).unwrap();
    for service in ["node1", "node2", "node3", "prometheus", "grafana", "fkload"] {
        assert!(!compose["services"][service].is_null(), "docker-compose.yml: no service {service}");
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Children killed (SIGKILL, by pid) and reaped on drop.
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Procs {
    fn spawn(&mut self, name: &str, cmd: &mut Command, log: &Path) {
        let file = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        self.0.push((name.to_owned(), child));
    }

    fn check_alive(&mut self, logs: &dyn Fn() -> String) {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited early ({status})\n{}", logs());
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn four_letter(port: u16, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn promtool_check(config: &Path) {
    let out = Command::new("promtool").args(["check", "config"]).arg(config).output().unwrap();
    assert!(
        out.status.success(),
        "promtool check config {} failed:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Prometheus HTTP API (HTTP/1.0, so never chunked)

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn prom_api(port: u16, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(port, path).map_err(|e| format!("GET {path}: {e}"))?;
    let json: Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: HTTP {status}: {e}: {body}"))?;
    if json["status"] != "success" {
        return Err(format!("{} {}", json["errorType"], json["error"]));
    }
    Ok(json["data"].clone())
}

fn query(port: u16, expr: &str) -> Result<Value, String> {
    prom_api(port, &format!("/api/v1/query?query={}", url_encode(expr)))
}

/// Number of series and how many of them hold a number (not NaN / ±Inf).
fn summarize(data: &Value) -> (usize, usize) {
    let finite = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok()).is_some_and(f64::is_finite);
    match data["resultType"].as_str() {
        Some("vector") => {
            let r = data["result"].as_array().cloned().unwrap_or_default();
            (r.len(), r.iter().filter(|s| finite(&s["value"])).count())
        }
        Some("scalar") => (1, usize::from(finite(&data["result"]))),
        _ => (0, 0),
    }
}

fn scalar(port: u16, expr: &str) -> f64 {
    query(port, expr)
        .ok()
        .and_then(|d| d["result"].as_array().and_then(|r| r.first().cloned()))
        .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------

/// `docker-compose config` (Debian's docker-compose, installed by scripts/install-test-deps.sh;
/// no engine involved) accepts `dashboards/docker-compose.yml` with every profile, and the files
/// fit together: mounted files exist, Grafana's dashboards land where the provisioning provider
/// reads, Prometheus scrapes the port the node entrypoint serves metrics on, and the nodes export
/// traces to the jaeger service's address.
#[test]
fn compose_file_is_valid_and_consistent() {
    let dir = dashboards_dir();
    if !have("docker-compose") {
        let skip = std::env::var("FK_SKIP_ORACLE").is_ok_and(|v| v == "1");
        assert!(
            skip,
            "`docker-compose` not found: run scripts/install-test-deps.sh, or set FK_SKIP_ORACLE=1"
        );
        eprintln!("FK_SKIP_ORACLE=1 and no docker-compose: skipping the compose check");
        return;
    }
    let out = Command::new("docker-compose")
        .current_dir(&dir)
        .args(["-f", "docker-compose.yml", "--profile", "load", "config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose config rejects dashboards/docker-compose.yml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let services = &config["services"];
    for service in ["node1", "node2", "node3", "prometheus", "grafana", "jaeger", "fkload"] {
        assert!(!services[service].is_null(), "no service {service}");
    }
    // A mount as (source, target): long syntax, or "source:target[:mode]".
    let mounts = |service: &str| -> Vec<(String, String)> {
        services[service]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|v| match v.as_str() {
                Some(short) => {
                    let mut parts = short.split(':');
                    (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned())
                }
                None => (
                    v["source"].as_str().unwrap_or_default().to_owned(),
                    v["target"].as_str().unwrap_or_default().to_owned(),
                ),
            })
            .collect()
    };
    // Bind mounts point at files of the repository.
    for service in ["prometheus", "grafana"] {
        let mounts = mounts(service);
        assert!(!mounts.is_empty(), "{service}: no volumes");
        for (source, _) in mounts {
            assert!(Path::new(&source).exists(), "{service}: mounted {source} does not exist");
        }
    }
    let dockerfile = dir.join(services["node1"]["build"]["dockerfile"].as_str().unwrap_or("Dockerfile"));
    let dockerfile = if dockerfile.exists() { dockerfile } else { repo_root().join("dashboards/Dockerfile") };
    assert!(dockerfile.exists(), "no Dockerfile at {}", dockerfile.display());
    // Grafana reads the dashboards where they are mounted.
    let provider: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("provisioning/dashboards/ferrokeeper.yaml")).unwrap(),
    )
    .unwrap();
    let path = provider["providers"][0]["options"]["path"].as_str().unwrap();
    let grafana = mounts("grafana");
    assert!(
        grafana.iter().any(|(_, target)| target == path),
        "grafana mounts {grafana:?}, provider reads {path}"
    );
    // Prometheus scrapes what the entrypoint serves.
    let entrypoint = std::fs::read_to_string(dir.join("docker/entrypoint.sh")).unwrap();
    let port = entrypoint
        .lines()
        .find_map(|l| l.trim().strip_prefix("echo \"metricsProvider.httpPort=")?.strip_suffix('"'))
        .expect("entrypoint.sh sets metricsProvider.httpPort");
    let scrape = std::fs::read_to_string(dir.join("docker/prometheus.yml")).unwrap();
    for node in ["node1", "node2", "node3"] {
        assert!(
            scrape.contains(&format!("{node}:{port}")),
            "docker/prometheus.yml does not scrape {node}:{port}"
        );
    }
    // Nodes export traces to jaeger's OTLP/HTTP port.
    let jaeger_ip = services["jaeger"]["networks"]["fk"]["ipv4_address"].as_str().unwrap();
    for node in ["node1", "node2", "node3"] {
        let endpoint =
            services[node]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str().unwrap_or_default();
        assert_eq!(endpoint, format!("http://{jaeger_ip}:4318"), "{node}");
    }
}

#[test]
fn dashboards_queries_return_data_from_a_live_cluster() {
    let started = Instant::now();
    let dashboards = load_dashboards();
    check_provisioning();
    let generated = TempDir::new("fk-dashboards-gen");
    check_generated(&generated.0);
    let total: usize = dashboards.iter().map(|d| d.queries.len()).sum();
    eprintln!("static checks passed: {} dashboards, {total} queries", dashboards.len());

    let skip = std::env::var("FK_SKIP_ORACLE").is_ok_and(|v| v == "1");
    if !have("prometheus") || !have("promtool") {
        assert!(
            skip,
            "`prometheus` / `promtool` not found on PATH: run scripts/install-test-deps.sh (or \
             scripts/prometheus-deps.sh), or set FK_SKIP_ORACLE=1 to run only the static checks"
        );
        eprintln!("FK_SKIP_ORACLE=1 and no prometheus: skipping promtool and the live queries");
        return;
    }

    let fkload = PathBuf::from(env!("CARGO_BIN_EXE_fkload"));
    let server = fkload.with_file_name("ferrokeeper");
    assert!(
        server.exists(),
        "{} not found: `cargo test --workspace` builds it; otherwise run `cargo build -p \
         ferrokeeper-server` first",
        server.display()
    );

    let tmp = TempDir::new("fk-dashboards");
    let dir = tmp.0.clone();

    // The ensemble.
    let quorum: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let metrics_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let fkload_port = free_port();
    let prom_port = free_port();
    let mut procs = Procs::default();
    for i in 0..3 {
        let node = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(node.join("data")).unwrap();
        std::fs::write(node.join("data/myid"), format!("{}\n", i + 1)).unwrap();
        let mut cfg = format!(
            "tickTime=100\ninitLimit=20\nsyncLimit=5\nmaxSessionTimeout=60000\ndataDir={}\n\
             clientPort={}\nclientPortAddress=127.0.0.1\nmetricsProvider.httpPort={}\n\
             metricsProvider.httpHost=127.0.0.1\n4lw.commands.whitelist=*\ntxnLogBackend=sync\n",
            node.join("data").display(),
            client_ports[i],
            metrics_ports[i]
        );
        for (j, (q, e)) in quorum.iter().enumerate() {
            cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1));
        }
        std::fs::write(node.join("zoo.cfg"), cfg).unwrap();
        procs.spawn(
            &format!("node {}", i + 1),
            Command::new(&server).arg("--config").arg(node.join("zoo.cfg")).env("RUST_LOG", "info"),
            &node.join("node.log"),
        );
    }
    let logs = {
        let dir = dir.clone();
        move || {
            let mut out = String::new();
            for name in ["node1/node.log", "node2/node.log", "node3/node.log", "fkload.log", "prometheus.log"]
            {
                out.push_str(&format!("--- {name} ---\n{}\n", tail(&dir.join(name), 20)));
            }
            out
        }
    };

    // Wait for one leader and two followers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let modes: Vec<String> = client_ports
            .iter()
            .map(|&p| {
                four_letter(p, "srvr")
                    .ok()
                    .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned)))
                    .unwrap_or_default()
            })
            .collect();
        if modes.iter().filter(|m| *m == "leader").count() == 1
            && modes.iter().filter(|m| *m == "follower").count() == 2
        {
            eprintln!("ensemble up after {:.1?}: {modes:?}", started.elapsed());
            break;
        }
        procs.check_alive(&logs);
        assert!(Instant::now() < deadline, "no stable ensemble: {modes:?}\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Prometheus, on a copy of dashboards/prometheus.yml with the test's ports.
    let mut config = std::fs::read_to_string(dashboards_dir().join("prometheus.yml")).unwrap();
    let mut rewrite = |from: String, to: u16| {
        assert!(config.contains(&from), "dashboards/prometheus.yml does not scrape {from}");
        config = config.replace(&from, &format!("127.0.0.1:{to}"));
    };
    for (i, port) in metrics_ports.iter().enumerate() {
        rewrite(format!("127.0.0.1:{}", 7001 + i), *port);
    }
    rewrite("127.0.0.1:9464".to_owned(), fkload_port);
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    promtool_check(&config_path);
    promtool_check(&dashboards_dir().join("docker/prometheus.yml"));
    procs.spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn"),
        &dir.join("prometheus.log"),
    );

    // fkload under load; its metrics on fkload_port.
    let connect = client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    procs.spawn(
        "fkload",
        Command::new(&fkload)
            .current_dir(repo_root())
            .args(["run", "-w", "loadgen/workloads/read-heavy.yaml", "-t", &connect])
            .args([
                "--duration",
                "120",
                "--warmup",
                "0",
                "--sessions",
                "8",
                "--no-progress",
                "--no-server-stats",
            ])
            .args(["--metrics-port", &fkload_port.to_string()]),
        &dir.join("fkload.log"),
    );

    // Every target up, then enough scrapes for a 10 s rate window.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        procs.check_alive(&logs);
        let up = scalar(prom_port, "sum(up)");
        let scrapes = scalar(prom_port, "min(count_over_time(up[1m]) and on(instance) up == 1)");
        let fk_ops = scalar(prom_port, "sum(fkload_ops_total)");
        if up >= 4.0 && scrapes >= 8.0 && fk_ops > 0.0 {
            eprintln!("4 targets up, {scrapes} scrapes each, after {:.1?}", started.elapsed());
            break;
        }
        if Instant::now() > deadline {
            let targets = prom_api(prom_port, "/api/v1/targets").map(|d| d.to_string()).unwrap_or_else(|e| e);
            panic!(
                "targets not up / scraped (up={up}, scrapes={scrapes}, fkload ops={fk_ops}): {targets}\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every panel query and every label_values variable query.
    let mut empty = Vec::new();
    let mut report = Vec::new();
    for d in &dashboards {
        let mut items: Vec<(String, String)> = d.queries.clone();
        for (name, var) in &d.variables {
            let q = var["query"]["query"].as_str().or(var["query"].as_str()).unwrap_or_default();
            if let Some(args) = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
                let (selector, label) = args.rsplit_once(',').unwrap();
                // label_values(sel, label) is non-empty iff some series of sel has the label.
                items.push((
                    format!("variable ${name}"),
                    format!("count by ({}) ({})", label.trim(), selector.trim()),
                ));
            }
        }
        for (title, expr) in items {
            let concrete = substitute(&expr, &d.variables);
            match query(prom_port, &concrete) {
                Ok(data) => {
                    let (series, finite) = summarize(&data);
                    report.push(format!("{:>3} series ({finite} numeric)  {}: {title}", series, d.file));
                    if finite == 0 {
                        empty.push(format!(
                            "{} / {title}: {concrete}  -> {} series, none numeric",
                            d.file, series
                        ));
                    }
                }
                Err(e) => empty.push(format!("{} / {title}: {concrete}  -> error {e}", d.file)),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        empty.is_empty(),
        "{} of {} queries returned no data:\n  {}\n{}",
        empty.len(),
        report.len(),
        empty.join("\n  "),
        logs()
    );
    // The error panels drew zero lines because there were no errors, not a leftover constant.
    for d in &dashboards {
        for (title, expr) in d.queries.iter().filter(|(_, e)| e.contains("errors_total")) {
            let concrete = substitute(expr, &d.variables);
            let data = query(prom_port, &concrete).unwrap();
            for series in data["result"].as_array().cloned().unwrap_or_default() {
                let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
                assert!(value == 0.0, "{} / {title}: {value} in a run without errors ({series})", d.file);
            }
        }
    }
    eprintln!("{} queries returned data; test took {:.1?}", report.len(), started.elapsed());
}
