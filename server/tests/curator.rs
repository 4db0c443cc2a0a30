//! Black-box compatibility with Apache Curator: compiles `tests/curator/CuratorSmoke.java` with
//! `javac` against Debian's Curator 5.4 jars (on Debian's ZooKeeper 3.8 client) and runs it
//! against a standalone ferrokeeper and against a 3-node ferrokeeper ensemble. The Java program
//! asserts every result (CRUD with versions, watches, sequential and ephemeral nodes,
//! transactions, CuratorCache, InterProcessMutex, LeaderLatch, DistributedAtomicLong,
//! SharedCount; in the ensemble its two main sessions sit on different servers), prints
//! `ok <check>` per check and `CURATOR-OK` at the end, and exits non-zero on any mismatch.
//!
//! Needs `javac` and the packages `libcurator-{framework,recipes,client}-java` (see
//! `scripts/install-test-deps.sh`); without them the tests fail, unless `FK_SKIP_ORACLE=1`
//! (then they skip). `FK_DIFF_SELF=1` runs the standalone test against Apache ZooKeeper instead
//! (validates the Java program against the oracle). `FK_CURATOR_JAR_DIR` replaces
//! `/usr/share/java` (lets the missing-dependency path be exercised).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Ensemble, ServerKind, ServerProcess, TempDir};

/// Where Debian installs jars.
const JAR_DIR: &str = "/usr/share/java";

/// The jars of `libcurator-framework-java`, `libcurator-recipes-java` and
/// `libcurator-client-java` (Debian bookworm, Curator 5.4.0; names from `dpkg -L`).
const CURATOR_JARS: [&str; 3] = ["curator-framework.jar", "curator-recipes.jar", "curator-client.jar"];

/// What the Curator jars' manifests name and the program needs at compile and run time:
/// ZooKeeper's client (`libzookeeper-java`), Guava (`libguava-java`) and SLF4J with its simple
/// binding on stderr (`libslf4j-java`); all are dependencies of the Curator packages.
const DEPENDENCY_JARS: [&str; 5] =
    ["zookeeper.jar", "zookeeper-jute.jar", "guava.jar", "slf4j-api.jar", "slf4j-simple.jar"];

/// Bounds of the javac run and of one run of the Java program (it has its own 45 s watchdog).
const COMPILE_LIMIT: Duration = Duration::from_secs(60);
const RUN_LIMIT: Duration = Duration::from_secs(50);

fn jar_dir() -> PathBuf {
    PathBuf::from(std::env::var("FK_CURATOR_JAR_DIR").unwrap_or_else(|_| JAR_DIR.to_owned()))
}

fn javac_works() -> bool {
    Command::new("javac").arg("-version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// The classpath of Curator and its dependencies, or `None` (after printing why) when the test
/// must skip. Panics naming the install script when something is missing.
fn dependencies() -> Option<String> {
    let dir = jar_dir();
    let mut missing: Vec<String> = Vec::new();
    if !javac_works() {
        missing.push("javac (package default-jdk-headless)".to_owned());
    }
    if !Path::new("/usr/bin/java").exists() {
        missing.push("/usr/bin/java".to_owned());
    }
    let jars: Vec<PathBuf> = CURATOR_JARS.iter().chain(DEPENDENCY_JARS.iter()).map(|j| dir.join(j)).collect();
    missing.extend(jars.iter().filter(|j| !j.exists()).map(|j| j.display().to_string()));
    if missing.is_empty() {
        let paths: Vec<String> = jars.iter().map(|j| j.display().to_string()).collect();
        return Some(paths.join(":"));
    }
    if std::env::var("FK_SKIP_ORACLE").as_deref() == Ok("1") {
        eprintln!("SKIPPED: the Curator test needs {} and FK_SKIP_ORACLE=1", missing.join(", "));
        return None;
    }
    panic!(
        "the Curator test needs {}: run `scripts/install-test-deps.sh` (installs default-jdk-headless \
         and libcurator-{{framework,recipes,client}}-java), or set FK_SKIP_ORACLE=1 to skip it",
        missing.join(", ")
    );
}

/// The compiled program: a temp dir of classes and the full runtime classpath.
struct Program {
    classes: TempDir,
    classpath: String,
}

fn compile(dependency_classpath: &str) -> Program {
    let classes = TempDir::new("curator-classes");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/curator/CuratorSmoke.java");
    let mut cmd = Command::new("javac");
    cmd.arg("-d").arg(classes.path()).args(["-encoding", "UTF-8", "-cp", dependency_classpath, source]);
    let (ok, stdout, stderr) =
        support::run_with_timeout(&mut cmd, COMPILE_LIMIT).unwrap_or_else(|e| panic!("javac: {e}"));
    assert!(ok, "javac {source} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let classpath = format!("{}:{dependency_classpath}", classes.path().display());
    Program { classes, classpath }
}

/// Runs the program against `connect` and asserts it passed; `logs` gives the server side for
/// the failure message.
fn run_smoke(program: &Program, connect: &str, target: &str, logs: impl Fn() -> String) {
    assert!(program.classes.path().join("CuratorSmoke.class").exists());
    let mut cmd = Command::new("/usr/bin/java");
    cmd.args([
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        // the client logs a warning for every socket the server closes after closeSession
        "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn=error",
        "-cp",
        &program.classpath,
        "CuratorSmoke",
        connect,
    ]);
    let started = Instant::now();
    let (ok, stdout, stderr) = support::run_with_timeout(&mut cmd, RUN_LIMIT).unwrap_or_else(|e| {
        panic!("CuratorSmoke against {target} did not finish: {e}\nserver logs:\n{}", logs())
    });
    let elapsed = started.elapsed();
    assert!(
        ok && stdout.lines().any(|l| l == "CURATOR-OK"),
        "CuratorSmoke failed against {target} ({connect}) after {elapsed:.1?}\nstdout:\n{stdout}\n\
         stderr:\n{stderr}\nserver logs:\n{}",
        logs()
    );
    eprintln!("CuratorSmoke against {target} ({connect}) passed in {elapsed:.1?}:\n{stdout}");
}

#[test]
fn curator_standalone() {
    let Some(dependency_classpath) = dependencies() else { return };
    let kind = support::server_under_test();
    if kind == ServerKind::ZooKeeper && !support::oracle_available() {
        return;
    }
    let program = compile(&dependency_classpath);
    let server = ServerProcess::start(kind, &[("4lw.commands.whitelist", "*")]);
    run_smoke(&program, &server.addr(), &format!("standalone {}", kind.name()), || server.log_tail());
}

#[test]
fn curator_ensemble() {
    let Some(dependency_classpath) = dependencies() else { return };
    let program = compile(&dependency_classpath);
    // Client addresses in the server lines: Curator's EnsembleTracker takes /zookeeper/config.
    let layout = support::Layout { client_in_server_lines: true, ..support::Layout::default() };
    let mut ensemble = Ensemble::build_layout(ServerKind::Ferrokeeper, &[], false, &layout);
    for i in 0..support::ENSEMBLE_SIZE {
        ensemble.start(i);
    }
    ensemble.wait_stable(Duration::from_secs(30));
    let connect: Vec<String> =
        (0..support::ENSEMBLE_SIZE).map(|i| format!("127.0.0.1:{}", ensemble.port(i))).collect();
    run_smoke(&program, &connect.join(","), "a 3-node ferrokeeper ensemble", || ensemble.logs());
}
