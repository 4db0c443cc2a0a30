//! Faults during a run: a schedule (`faults:` in the workload, or `--fault`), the actions
//! (SIGKILL / restart, SIGSTOP / SIGCONT, a user's command), and what each did to the load.
//!
//! Targets are found when the action is due: `leader` / `follower` by asking every host of the
//! connect string `srvr`, `node:N` by position (1-based) in the connect string. An action on a
//! node runs either on a local process — the one listening on the node's client port (found
//! through `/proc/net/tcp*` and `/proc/<pid>/fd`; a restart re-executes its command line, cwd
//! and environment) — or, when the workload has `fault_commands`, the user's command template
//! (`{host}`, `{port}`, `{node}` 1-based, `{index}` 0-based: ssh, kubectl, iptables ...).
//!
//! Measurement (from a log of every op's start, end and error, kept only when faults are
//! scheduled): per action, over the span until the next action, the **write unavailability
//! window** — from the first write that failed or stalled (took longer than 5 × the writes' p99
//! in the 5 s before, at least 50 ms) to the first success of a write sent after that point —
//! the latency peak, errors by code, sessions that expired. After the run, every key written is
//! read back: each acknowledged setData carried a unique tag, and the node must still hold
//! a state at least as new as the newest acknowledged write (its `mzxid`), with that write's
//! data when nothing newer was applied.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::mntr::four_letter;
use crate::stats::lock;
use crate::workload::OpKind;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL the target; restart it at `restart_at` if given.
    Kill,
    /// SIGSTOP the target for `duration` seconds, then SIGCONT.
    Stop,
    /// Run the `run` command template; the `undo` template `duration` seconds later.
    Command,
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Seconds after the run's first phase began (warm-up included).
    pub at: f64,
    pub action: FaultAction,
    /// `leader`, `follower` or `node:N` (1-based position in the connect string).
    #[serde(default = "default_target")]
    pub target: String,
    /// Kill: restart the process at this time (seconds, like `at`).
    #[serde(default)]
    pub restart_at: Option<f64>,
    /// Stop / command: seconds until SIGCONT / the undo command.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Command: the template to run.
    #[serde(default)]
    pub run: Option<String>,
    /// Command: the template that undoes it.
    #[serde(default)]
    pub undo: Option<String>,
}

fn default_target() -> String {
    "leader".to_owned()
}

/// Command templates that replace the local-process actions (remote hosts, Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultCommands {
    pub kill: Option<String>,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub cont: Option<String>,
}

impl Fault {
    /// Rejects faults that cannot run.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.at >= 0.0, "fault at {}: must be >= 0", self.at);
        Target::parse(&self.target)?;
        match self.action {
            FaultAction::Kill => {
                if let Some(r) = self.restart_at {
                    anyhow::ensure!(r > self.at, "fault at {}: restart_at must be after at", self.at);
                }
            }
            FaultAction::Stop => {
                anyhow::ensure!(
                    self.duration.is_some_and(|d| d > 0.0),
                    "fault at {}: stop needs a duration > 0",
                    self.at
                );
            }
            FaultAction::Command => {
                anyhow::ensure!(self.run.is_some(), "fault at {}: command needs run", self.at);
                anyhow::ensure!(
                    self.undo.is_none() || self.duration.is_some(),
                    "fault at {}: undo needs a duration",
                    self.at
                );
            }
        }
        Ok(())
    }
}

/// Which node a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Leader,
    Follower,
    /// 0-based index into the connect string's hosts.
    Node(usize),
}

impl Target {
    pub fn parse(text: &str) -> anyhow::Result<Target> {
        match text {
            "leader" => Ok(Target::Leader),
            "follower" => Ok(Target::Follower),
            _ => {
                let n: usize =
                    text.strip_prefix("node:").and_then(|n| n.parse().ok()).filter(|n| *n >= 1).ok_or_else(
                        || anyhow::anyhow!("fault target {text}: leader, follower or node:N (1-based)"),
                    )?;
                Ok(Target::Node(n - 1))
            }
        }
    }
}

/// The hosts of a connect string (without the chroot).
pub fn hosts(connect: &str) -> Vec<String> {
    let hosts = connect.split('/').next().unwrap_or_default();
    hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect()
}

/// The `Mode:` each host reports through `srvr`, asked concurrently with a 2 s limit each
/// (empty when a host does not answer: dead, stopped or not serving).
pub async fn modes(hosts: &[String]) -> Vec<String> {
    let asks: Vec<_> = hosts
        .iter()
        .map(|h| async move {
            tokio::time::timeout(Duration::from_secs(2), four_letter(h, "srvr"))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_owned())))
                .unwrap_or_default()
        })
        .collect();
    futures_join(asks).await
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future<Output = String>>(futures: Vec<F>) -> Vec<String> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<String>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none()
                && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
            {
                done[i] = Some(v);
            }
        }
        if done.iter().all(Option::is_some) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    done.into_iter().map(Option::unwrap_or_default).collect()
}

/// How long an action waits for its target to exist (no leader during an election).
pub const RESOLVE_WAIT: Duration = Duration::from_secs(30);

/// Finds the target's index among `hosts`, with the mode each host reported. A leader or
/// follower that does not exist yet (an election is running) is waited for, up to
/// [`RESOLVE_WAIT`].
pub async fn resolve(target: Target, hosts: &[String]) -> anyhow::Result<(usize, String)> {
    let deadline = Instant::now() + RESOLVE_WAIT;
    loop {
        let modes = modes(hosts).await;
        let pick = |role: &str| modes.iter().position(|m| m == role);
        let index = match target {
            Target::Leader => pick("leader"),
            Target::Follower => pick("follower"),
            Target::Node(i) => (i < hosts.len()).then_some(i),
        };
        match index {
            Some(i) => return Ok((i, modes[i].clone())),
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            None => anyhow::bail!(
                "no {target:?} among {hosts:?} within {} s (srvr modes {modes:?})",
                RESOLVE_WAIT.as_secs()
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Local processes

/// What is needed to start a killed local process again.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: std::path::PathBuf,
    pub env: Vec<(String, String)>,
    /// Where its stdout went, when that was a file (the restart appends there).
    pub log: Option<std::path::PathBuf>,
}

/// The pid of the local process listening on TCP `port` (IPv4 or IPv6), from `/proc`.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is field 9.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else { continue };
            let listening_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && listening_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| link.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Reads how a running process was started.
pub fn process_spec(pid: u32) -> anyhow::Result<ProcessSpec> {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let argv = split(std::fs::read(dir.join("cmdline"))?);
    anyhow::ensure!(!argv.is_empty(), "pid {pid}: empty command line");
    let env = split(std::fs::read(dir.join("environ")).unwrap_or_default())
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let cwd = std::fs::read_link(dir.join("cwd"))?;
    let log = std::fs::read_link(dir.join("fd/1")).ok().filter(|p| p.is_file());
    Ok(ProcessSpec { argv, cwd, env, log })
}

/// Sends a signal by name (`KILL`, `STOP`, `CONT`) with `kill(1)`.
pub fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid}: {status}");
    Ok(())
}

/// Starts a process again as it was; returns the new pid. The child is not waited for: it
/// outlives fkload like the original did.
pub fn respawn(spec: &ProcessSpec) -> anyhow::Result<u32> {
    let (stdout, stderr) = match &spec.log {
        Some(p) => {
            let f = std::fs::OpenOptions::new().append(true).open(p)?;
            (std::process::Stdio::from(f.try_clone()?), std::process::Stdio::from(f))
        }
        None => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    let child = std::process::Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()?;
    Ok(child.id())
}

/// Fills a command template for a node.
pub fn fill(template: &str, host: &str, index: usize) -> String {
    let (h, p) = host.rsplit_once(':').unwrap_or((host, ""));
    template
        .replace("{host}", h)
        .replace("{port}", p)
        .replace("{node}", &(index + 1).to_string())
        .replace("{index}", &index.to_string())
}

/// Runs a shell command, bounded to 60 s; fails on a non-zero exit.
pub async fn shell(command: &str) -> anyhow::Result<String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .map_err(|_| anyhow::anyhow!("`{command}` did not finish within 60 s"))??;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "`{command}` exited with {}: {}", out.status, text.trim());
    Ok(text.trim().to_owned())
}

// ---------------------------------------------------------------------------------------------
// The schedule runner

/// One action that was carried out (or failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Seconds since the run's clock zero (the series' `t` axis).
    pub t: f64,
    /// Index of the fault in the schedule.
    pub fault: usize,
    /// `kill`, `restart`, `stop`, `cont`, `command` or `undo`.
    pub action: String,
    /// The target as written, and what it resolved to.
    pub target: String,
    pub node: Option<usize>,
    pub addr: Option<String>,
    /// The node's `srvr` mode when the action began.
    pub role: Option<String>,
    pub pid: Option<u32>,
    /// Restart: the new process's pid.
    pub new_pid: Option<u32>,
    /// Command output, or what was done.
    pub detail: String,
    pub error: Option<String>,
}

struct Step {
    at: f64,
    fault: usize,
    action: &'static str,
}

fn steps(faults: &[Fault]) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let (first, second) = match f.action {
            FaultAction::Kill => ("kill", f.restart_at.map(|r| ("restart", r))),
            FaultAction::Stop => ("stop", f.duration.map(|d| ("cont", f.at + d))),
            FaultAction::Command => ("command", f.undo.as_ref().and(f.duration).map(|d| ("undo", f.at + d))),
        };
        out.push(Step { at: f.at, fault: i, action: first });
        if let Some((action, at)) = second {
            out.push(Step { at, fault: i, action });
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

/// When the schedule runs: `start` is the instant `at = 0`, `t0` the clock zero of the
/// recorded times, `end` the end of the run (no action is begun or waited for after it).
#[derive(Debug, Clone, Copy)]
pub struct ScheduleClock {
    pub start: Instant,
    pub t0: Instant,
    pub end: Instant,
}

/// Carries out the schedule, appending each action to `events` as it completes (so the run
/// can stop the schedule at its end and keep what happened).
pub async fn run_schedule(
    faults: Vec<Fault>,
    commands: Option<FaultCommands>,
    connect: String,
    clock: ScheduleClock,
    events: std::sync::Arc<Mutex<Vec<FaultEvent>>>,
) {
    let t0 = clock.t0;
    let mut runner = Runner { hosts: hosts(&connect), commands, hit: BTreeMap::new(), t0 };
    for step in steps(&faults) {
        tokio::time::sleep_until((clock.start + Duration::from_secs_f64(step.at)).into()).await;
        let f = &faults[step.fault];
        let mut ev = FaultEvent {
            t: Instant::now().duration_since(t0).as_secs_f64(),
            fault: step.fault,
            action: step.action.to_owned(),
            target: f.target.clone(),
            node: None,
            addr: None,
            role: None,
            pid: None,
            new_pid: None,
            detail: String::new(),
            error: None,
        };
        let left = clock.end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, runner.act(step.action, f, step.fault, &mut ev)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ev.error = Some(format!("{e:#}")),
            Err(_) => ev.error = Some("the run ended before the action could be carried out".to_owned()),
        }
        lock(&events).push(ev);
    }
}

/// What carrying out a schedule needs between its steps.
struct Runner {
    hosts: Vec<String>,
    commands: Option<FaultCommands>,
    /// Per fault: the node it hit, the pid, and for local kills how to restart the process.
    hit: BTreeMap<usize, (usize, Option<u32>, Option<ProcessSpec>)>,
    t0: Instant,
}

impl Runner {
    async fn act(
        &mut self,
        action: &str,
        f: &Fault,
        fault: usize,
        ev: &mut FaultEvent,
    ) -> anyhow::Result<()> {
        let (hosts, commands, hit, t0) = (&self.hosts, self.commands.as_ref(), &mut self.hit, self.t0);
        // The event's time is when the signal or command goes out, not when the step began
        // (finding the target takes a few milliseconds in which writes still succeed).
        let stamp = |ev: &mut FaultEvent| ev.t = Instant::now().duration_since(t0).as_secs_f64();
        // The second half of a fault acts on the node the first half hit.
        let (index, role) = match hit.get(&fault) {
            Some((i, _, _)) if matches!(action, "restart" | "cont" | "undo") => (*i, None),
            _ => {
                let (i, role) = resolve(Target::parse(&f.target)?, hosts).await?;
                (i, Some(role))
            }
        };
        let addr = hosts[index].clone();
        ev.node = Some(index + 1);
        ev.addr = Some(addr.clone());
        ev.role = role;
        let template = |t: Option<&String>| t.map(|t| fill(t, &addr, index));
        let port: u16 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let local_pid = || {
            pid_listening_on(port).ok_or_else(|| {
                anyhow::anyhow!("no local process listens on {addr}; give fault_commands for remote nodes")
            })
        };
        match action {
            "command" | "undo" => {
                let cmd = template(if action == "command" { f.run.as_ref() } else { f.undo.as_ref() })
                    .ok_or_else(|| anyhow::anyhow!("no {action} template"))?;
                hit.insert(fault, (index, None, None));
                stamp(ev);
                ev.detail = format!("$ {cmd}\n{}", shell(&cmd).await?);
            }
            _ => {
                let remote = commands.and_then(|c| match action {
                    "kill" => c.kill.as_ref(),
                    "restart" => c.start.as_ref(),
                    "stop" => c.stop.as_ref(),
                    _ => c.cont.as_ref(),
                });
                if let Some(t) = remote {
                    let cmd = fill(t, &addr, index);
                    hit.insert(fault, (index, None, None));
                    stamp(ev);
                    ev.detail = format!("$ {cmd}\n{}", shell(&cmd).await?);
                    return Ok(());
                }
                match action {
                    "kill" => {
                        let pid = local_pid()?;
                        let spec = process_spec(pid)?;
                        ev.pid = Some(pid);
                        stamp(ev);
                        signal(pid, "KILL")?;
                        ev.detail = format!("SIGKILL pid {pid} ({})", spec.argv.join(" "));
                        hit.insert(fault, (index, Some(pid), Some(spec)));
                    }
                    "restart" => {
                        let spec = hit.get(&fault).and_then(|h| h.2.clone()).ok_or_else(|| {
                            anyhow::anyhow!("nothing to restart: the kill did not capture a process")
                        })?;
                        stamp(ev);
                        let pid = respawn(&spec)?;
                        ev.new_pid = Some(pid);
                        ev.detail = format!("started pid {pid} ({})", spec.argv.join(" "));
                    }
                    "stop" => {
                        let pid = local_pid()?;
                        ev.pid = Some(pid);
                        stamp(ev);
                        signal(pid, "STOP")?;
                        ev.detail = format!("SIGSTOP pid {pid}");
                        hit.insert(fault, (index, Some(pid), None));
                    }
                    _ => {
                        let pid = hit
                            .get(&fault)
                            .and_then(|h| h.1)
                            .ok_or_else(|| anyhow::anyhow!("no stopped pid"))?;
                        ev.pid = Some(pid);
                        stamp(ev);
                        signal(pid, "CONT")?;
                        ev.detail = format!("SIGCONT pid {pid}");
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The op log and the analysis

/// One op as the fault analysis sees it. Times in µs since the run's clock zero; `start` is
/// the intended send time in open loop (so latency is response time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpEvent {
    pub op: OpKind,
    /// The session (global number) that sent it.
    pub session: u32,
    pub start_us: u64,
    pub end_us: u64,
    pub error: Option<&'static str>,
}

/// Most events kept (about 32 MB); later ops are not logged and the report says so.
pub const OP_LOG_MAX: usize = 1_000_000;

/// Every op of a run with faults, bounded.
#[derive(Debug, Default)]
pub struct OpLog {
    events: Mutex<Vec<OpEvent>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl OpLog {
    pub fn push(&self, e: OpEvent) {
        let mut v = lock(&self.events);
        if v.len() < OP_LOG_MAX {
            v.push(e);
        } else {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn take(&self) -> (Vec<OpEvent>, u64) {
        let mut v = std::mem::take(&mut *lock(&self.events));
        v.sort_by_key(|e| e.end_us);
        (v, self.dropped.load(std::sync::atomic::Ordering::Relaxed))
    }
}

fn is_write(op: OpKind) -> bool {
    matches!(op, OpKind::Set | OpKind::Create | OpKind::Delete | OpKind::Multi | OpKind::WatchSet)
}

/// What one action did to the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    pub event: FaultEvent,
    /// The span measured: from the action to the next one (or the end of the run), seconds.
    pub span_end_t: f64,
    /// Writes slower than this counted as stalled, ms.
    pub stall_threshold_ms: f64,
    /// First failed or stalled write (s, series axis), if any.
    pub unavailable_from_t: Option<f64>,
    /// First success of a write sent after that (s).
    pub unavailable_until_t: Option<f64>,
    /// The write unavailability window, ms (to the span's end if writes never recovered).
    pub write_unavailable_ms: f64,
    /// The longest any one session waited to write: from its first failed or stalled write in
    /// the span to its next successful write, ms. A follower's stall leaves the service
    /// writable (the window above stays short) while its own clients wait this long.
    #[serde(default)]
    pub session_write_gap_max_ms: f64,
    /// Whether writes succeeded again within the span.
    pub recovered: bool,
    /// Highest latency of an op completing in the span, ms (response time in open loop).
    pub latency_peak_ms: f64,
    /// Ops completing in the span, and failed ones by error code.
    pub ops: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Sessions that expired in the span.
    pub sessions_expired: u64,
}

/// Measures each event's span in the op log (sorted by end time). `session_ends` are the
/// times (µs) at which sessions were declared expired.
pub fn analyze(
    events: &[FaultEvent],
    log: &[OpEvent],
    end_us: u64,
    session_ends: &[u64],
) -> Vec<FaultReport> {
    let mut out = Vec::new();
    for (k, ev) in events.iter().enumerate() {
        let from = (ev.t * 1e6) as u64;
        let until = events.get(k + 1).map_or(end_us, |n| (n.t * 1e6) as u64).max(from);
        // Baseline: writes completing in the 5 s before the action.
        let mut base: Vec<u64> = log
            .iter()
            .filter(|e| {
                is_write(e.op) && e.error.is_none() && e.end_us < from && e.end_us + 5_000_000 >= from
            })
            .map(|e| e.end_us - e.start_us)
            .collect();
        base.sort_unstable();
        let base_p99 =
            base.get((base.len() * 99 / 100).min(base.len().saturating_sub(1))).copied().unwrap_or(0);
        let stall_us = (5 * base_p99).max(50_000);
        let bad = |e: &OpEvent| e.error.is_some() || e.end_us - e.start_us > stall_us;
        let first_bad = log
            .iter()
            .filter(|e| is_write(e.op) && e.end_us > from && e.start_us < until && bad(e))
            .map(|e| e.start_us.max(from))
            .min();
        let (until_t, recovered, unavailable_us) = match first_bad {
            None => (None, true, 0),
            Some(s) => {
                match log
                    .iter()
                    .filter(|e| is_write(e.op) && e.error.is_none() && e.start_us >= s)
                    .map(|e| e.end_us)
                    .min()
                {
                    Some(end) => (Some(end as f64 / 1e6), true, end - s),
                    None => (None, false, until.saturating_sub(s)),
                }
            }
        };
        // Per session: its first bad write in the span, then its next success after that.
        let mut first_bad_by_session: BTreeMap<u32, u64> = BTreeMap::new();
        for e in log.iter().filter(|e| is_write(e.op) && e.end_us > from && e.start_us < until && bad(e)) {
            let s = first_bad_by_session.entry(e.session).or_insert(u64::MAX);
            *s = (*s).min(e.start_us.max(from));
        }
        let session_gap_us = first_bad_by_session
            .iter()
            .map(|(session, s)| {
                log.iter()
                    .filter(|e| {
                        e.session == *session && is_write(e.op) && e.error.is_none() && e.start_us >= *s
                    })
                    .map(|e| e.end_us)
                    .min()
                    .unwrap_or(until.max(*s))
                    - s
            })
            .max()
            .unwrap_or(0);
        let in_span: Vec<&OpEvent> = log.iter().filter(|e| e.end_us >= from && e.end_us < until).collect();
        let mut errors_by_code = BTreeMap::new();
        for e in &in_span {
            if let Some(code) = e.error {
                *errors_by_code.entry(code.to_owned()).or_insert(0) += 1;
            }
        }
        out.push(FaultReport {
            event: ev.clone(),
            span_end_t: until as f64 / 1e6,
            stall_threshold_ms: stall_us as f64 / 1000.0,
            unavailable_from_t: first_bad.map(|s| s as f64 / 1e6),
            unavailable_until_t: until_t,
            write_unavailable_ms: unavailable_us as f64 / 1000.0,
            session_write_gap_max_ms: session_gap_us as f64 / 1000.0,
            recovered,
            latency_peak_ms: in_span.iter().map(|e| e.end_us - e.start_us).max().unwrap_or(0) as f64 / 1000.0,
            ops: in_span.len() as u64,
            errors_by_code,
            sessions_expired: session_ends.iter().filter(|t| **t >= from && **t < until).count() as u64,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Acknowledged writes

/// Per key: the newest acknowledged write `(mzxid, tag)` and the tags of writes whose outcome
/// is unknown (they failed, but may have been applied).
/// A key's newest acknowledged write `(mzxid, tag)` and the tags of writes of unknown outcome.
pub type KeyWrites = (i64, String, Vec<String>);

#[derive(Debug, Default)]
pub struct WriteLedger {
    keys: Mutex<BTreeMap<usize, KeyWrites>>,
    acked: std::sync::atomic::AtomicU64,
}

impl WriteLedger {
    pub fn acked(&self, key: usize, mzxid: i64, tag: String) {
        self.acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = lock(&self.keys);
        let e = m.entry(key).or_insert_with(|| (i64::MIN, String::new(), Vec::new()));
        if mzxid > e.0 {
            e.0 = mzxid;
            e.1 = tag;
        }
    }

    pub fn unknown(&self, key: usize, tag: String) {
        let mut m = lock(&self.keys);
        m.entry(key).or_insert_with(|| (i64::MIN, String::new(), Vec::new())).2.push(tag);
    }

    /// setData calls acknowledged so far.
    pub fn acked_count(&self) -> u64 {
        self.acked.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn take(&self) -> (BTreeMap<usize, KeyWrites>, u64) {
        (std::mem::take(&mut *lock(&self.keys)), self.acked.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The tag a write carries at the start of its value.
pub fn tag(worker: usize, seq: u64) -> String {
    format!("fk{worker}.{seq};")
}

/// The after-the-run check that acknowledged writes survived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DurabilityCheck {
    /// setData calls acknowledged during the run.
    pub acked_writes: u64,
    /// Keys read back (every key with an acknowledged write).
    pub keys_checked: u64,
    /// Keys whose state is older than their newest acknowledged write, or holds other data.
    pub lost: Vec<String>,
    /// Keys that could not be read within the time limit.
    pub unreadable: Vec<String>,
    /// Every acknowledged write is still readable.
    pub ok: bool,
}

/// Reads every key with an acknowledged write (after a `sync`, so a follower has caught up):
/// its `mzxid` must be at least the newest acknowledged write's, and when equal, its data
/// must start with that write's tag. A newer state is accepted: zxids are totally ordered, so
/// it came after the acknowledged write (a write of this run whose reply was lost, or another
/// worker's).
pub async fn verify(
    zk: &ferrokeeper_client::ZooKeeper,
    keys: &[String],
    ledger: &WriteLedger,
    limit: Duration,
) -> DurabilityCheck {
    let (entries, acked_writes) = ledger.take();
    let deadline = Instant::now() + limit;
    let mut check = DurabilityCheck { acked_writes, ..DurabilityCheck::default() };
    let _ = tokio::time::timeout(limit, zk.sync("/")).await;
    for (key, (mzxid, acked_tag, _unknown)) in entries.iter().filter(|(_, e)| e.0 > i64::MIN) {
        let path = &keys[*key];
        check.keys_checked += 1;
        let read = loop {
            match zk.get_data(path).await {
                Ok(r) => break Some(r),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => break None,
            }
        };
        let Some((data, stat)) = read else {
            check.unreadable.push(path.clone());
            continue;
        };
        if let Some(problem) = judge(path, *mzxid, acked_tag, stat.mzxid, &data) {
            check.lost.push(problem);
        }
    }
    check.ok = check.lost.is_empty() && check.unreadable.is_empty();
    check
}

/// Whether a node read back (`mzxid`, `data`) still holds the newest acknowledged write
/// (`acked_mzxid`, `acked_tag`) or a later state; `Some(why)` if the write is lost.
pub fn judge(path: &str, acked_mzxid: i64, acked_tag: &str, mzxid: i64, data: &[u8]) -> Option<String> {
    if mzxid < acked_mzxid {
        Some(format!(
            "{path}: mzxid {mzxid:#x} is older than the acknowledged write {acked_tag} at {acked_mzxid:#x}"
        ))
    } else if mzxid == acked_mzxid && !data.starts_with(acked_tag.as_bytes()) {
        Some(format!(
            "{path}: at the acknowledged mzxid {acked_mzxid:#x} the data is {:?}, not the write {acked_tag}",
            String::from_utf8_lossy(&data[..data.len().min(24)])
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(t: f64) -> FaultEvent {
        FaultEvent {
            t,
            fault: 0,
            action: "kill".into(),
            target: "leader".into(),
            node: Some(1),
            addr: None,
            role: None,
            pid: None,
            new_pid: None,
            detail: String::new(),
            error: None,
        }
    }

    fn op(start_ms: u64, end_ms: u64, error: Option<&'static str>) -> OpEvent {
        OpEvent { op: OpKind::Set, session: 0, start_us: start_ms * 1000, end_us: end_ms * 1000, error }
    }

    #[test]
    fn a_stalled_session_shows_as_a_gap_not_as_unavailability() {
        let mut log = Vec::new();
        for i in 0..300u64 {
            // Session 0 writes every 10 ms throughout; session 1 stalls from 1.0 s to 2.5 s.
            log.push(op(i * 10, i * 10 + 2, None));
            if !(100..250).contains(&i) {
                log.push(OpEvent { session: 1, ..op(i * 10 + 5, i * 10 + 7, None) });
            }
        }
        log.push(OpEvent { session: 1, ..op(1_000, 2_500, None) });
        // Its stalled write succeeds at 2.5 s: the gap ends there.
        log.push(OpEvent { session: 1, ..op(2_500, 2_503, None) });
        log.sort_by_key(|e| e.end_us);
        let r = analyze(&[ev(1.0)], &log, 3_000_000, &[]);
        assert!(r[0].write_unavailable_ms < 20.0, "{}", r[0].write_unavailable_ms);
        assert!((r[0].session_write_gap_max_ms - 1500.0).abs() < 1e-6, "{}", r[0].session_write_gap_max_ms);
    }

    #[test]
    fn unavailability_runs_from_first_bad_write_to_first_later_success() {
        let mut log = Vec::new();
        // Healthy writes every 10 ms taking 2 ms, until 10 s.
        for i in 0..1000u64 {
            log.push(op(i * 10, i * 10 + 2, None));
        }
        // The fault at 10.000 s: a write in flight stalls until 12.5 s (succeeds: it was sent
        // before the outage began, so it does not end the window), writes fail 10.1 .. 12 s.
        log.push(op(9_999, 12_500, None));
        for i in 0..20u64 {
            log.push(op(10_100 + i * 100, 10_100 + i * 100 + 1, Some("ConnectionLoss")));
        }
        // A write sent at 11.0 s stalls and succeeds at 12.4 s: the first success sent after
        // the outage began.
        log.push(op(11_000, 12_400, None));
        for i in 0..100u64 {
            log.push(op(12_600 + i * 10, 12_600 + i * 10 + 2, None));
        }
        log.sort_by_key(|e| e.end_us);
        let r = analyze(&[ev(10.0)], &log, 20_000_000, &[15_000_000]);
        assert_eq!(r.len(), 1);
        let r = &r[0];
        assert_eq!(r.unavailable_from_t, Some(10.0), "the stalled in-flight write marks the start");
        assert_eq!(r.unavailable_until_t, Some(12.4));
        assert!((r.write_unavailable_ms - 2400.0).abs() < 1e-6, "{}", r.write_unavailable_ms);
        assert!(r.recovered);
        assert_eq!(r.errors_by_code["ConnectionLoss"], 20);
        assert!((r.latency_peak_ms - 2501.0).abs() < 1e-6, "{}", r.latency_peak_ms);
        assert_eq!(r.sessions_expired, 1);
        assert_eq!(r.stall_threshold_ms, 50.0);
    }

    #[test]
    fn no_bad_write_means_no_window_and_no_recovery_means_open_window() {
        let log: Vec<OpEvent> = (0..100u64).map(|i| op(i * 10, i * 10 + 2, None)).collect();
        let r = analyze(&[ev(0.5)], &log, 1_000_000, &[]);
        assert_eq!(r[0].write_unavailable_ms, 0.0);
        assert!(r[0].unavailable_from_t.is_none());
        let mut log: Vec<OpEvent> = (0..50u64).map(|i| op(i * 10, i * 10 + 2, None)).collect();
        log.push(op(600, 601, Some("ConnectionLoss")));
        let r = analyze(&[ev(0.55)], &log, 2_000_000, &[]);
        assert!(!r[0].recovered);
        assert!((r[0].write_unavailable_ms - 1400.0).abs() < 1e-6, "{}", r[0].write_unavailable_ms);
    }

    #[test]
    fn judges_acknowledged_writes() {
        let t = tag(3, 17);
        assert_eq!(t, "fk3.17;");
        let data = format!("{t}aaaa");
        assert!(judge("/k", 100, &t, 100, data.as_bytes()).is_none(), "the write itself");
        assert!(judge("/k", 100, &t, 120, b"fk1.2;bbbb").is_none(), "a newer state overwrote it");
        assert!(judge("/k", 100, &t, 90, data.as_bytes()).unwrap().contains("older"), "rolled back");
        assert!(judge("/k", 100, &t, 100, b"fk9.9;cccc").unwrap().contains("not the write"), "other data");
        let ledger = WriteLedger::default();
        ledger.acked(0, 50, tag(0, 1));
        ledger.acked(0, 40, tag(1, 1));
        ledger.unknown(0, tag(2, 1));
        let (m, acked) = ledger.take();
        assert_eq!(acked, 2);
        assert_eq!(m[&0].0, 50, "the newest acknowledged write is kept, whatever the arrival order");
        assert_eq!(m[&0].1, tag(0, 1));
        assert_eq!(m[&0].2, vec![tag(2, 1)]);
    }

    #[test]
    fn schedules_and_templates() {
        let f: Vec<Fault> = serde_yaml::from_str(
            "- {at: 20, action: kill, target: leader, restart_at: 40}\n\
             - {at: 5, action: stop, target: follower, duration: 3}\n\
             - {at: 30, action: command, target: 'node:2', run: 'echo {host} {port}', undo: 'echo undo {node}', duration: 2}\n",
        )
        .unwrap();
        for x in &f {
            x.validate().unwrap();
        }
        let s: Vec<(f64, &str)> = steps(&f).iter().map(|s| (s.at, s.action)).collect();
        assert_eq!(
            s,
            vec![
                (5.0, "stop"),
                (8.0, "cont"),
                (20.0, "kill"),
                (30.0, "command"),
                (32.0, "undo"),
                (40.0, "restart")
            ]
        );
        assert_eq!(
            fill("ssh {host} kill -9 $(cat /srv/{node}/pid) # {port} {index}", "10.0.0.2:2181", 1),
            "ssh 10.0.0.2 kill -9 $(cat /srv/2/pid) # 2181 1"
        );
        assert!(Target::parse("node:0").is_err());
        assert_eq!(Target::parse("node:3").unwrap(), Target::Node(2));
        let bad: Fault = serde_yaml::from_str("{at: 1, action: stop}").unwrap();
        assert!(bad.validate().is_err(), "stop without a duration");
    }
}
