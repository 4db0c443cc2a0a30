//! `fkload`: run a workload, compare two results, replay a trace, or re-render a report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fkload::run::{RunOptions, RunResult, run, sweep};
use fkload::worker::{WorkerSpec, parse_utc, unix_now};
use fkload::workload::Workload;
use fkload::{compare, merge, report, trace};

#[derive(Parser)]
#[command(name = "fkload", version, about = "Load generator for ZooKeeper-protocol servers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Outputs {
    /// Result JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Self-contained HTML report.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Hide the live progress line.
    #[arg(long)]
    no_progress: bool,
}

// Parsed once per process; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run a workload against a target.
    Run {
        /// Workload YAML (see loadgen/workloads/).
        #[arg(long, short)]
        workload: PathBuf,
        /// Connect string, e.g. 127.0.0.1:2181 or h1:p1,h2:p2.
        #[arg(long, short, default_value = "127.0.0.1:2181")]
        target: String,
        #[arg(long)]
        sessions: Option<usize>,
        #[arg(long)]
        inflight: Option<usize>,
        /// Measured seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Warm-up seconds.
        #[arg(long)]
        warmup: Option<f64>,
        /// Open loop at this many ops/s.
        #[arg(long)]
        rate: Option<f64>,
        /// Open loop, stepped: comma-separated rates.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<f64>,
        /// Search the highest rate meeting the workload's SLO, starting here (ops/s).
        #[arg(long)]
        sweep: Option<f64>,
        /// Maximum sweep runs.
        #[arg(long, default_value_t = 8)]
        sweep_runs: usize,
        /// HDR interval log.
        #[arg(long)]
        hdr_log: Option<PathBuf>,
        /// Record the op stream (JSON lines) for replay.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Serve fkload's Prometheus metrics on 127.0.0.1:PORT while running.
        #[arg(long)]
        metrics_port: Option<u16>,
        /// Do not create the key tree (it exists).
        #[arg(long)]
        skip_setup: bool,
        /// Do not read mntr before/after.
        #[arg(long)]
        no_server_stats: bool,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Run worker I's share of the workload (0-based, I < N): its sessions, keys and
        /// open-loop schedule slots. Merge the N results with `fkload merge`.
        #[arg(long, value_name = "I/N")]
        worker: Option<String>,
        /// Start the first phase at this UTC instant (2026-11-29T10:00:00Z or @UNIX_SECONDS), so
        /// workers on several machines start together. Connect and set up before it.
        #[arg(long, value_name = "UTC")]
        start_at: Option<String>,
        /// Write every raw sample of the measured phase to this file (`op service_us
        /// response_us` per line; memory grows with the op count).
        #[arg(long)]
        samples: Option<PathBuf>,
        /// A fault, as a YAML mapping like the workload's `faults:` entries, e.g.
        /// '{at: 20, action: kill, target: leader, restart_at: 40}'. Repeatable.
        #[arg(long)]
        fault: Vec<String>,
        /// Start from this snapshot's tree (Apache ZooKeeper's `snapshot.*` or ferrokeeper's
        /// `fk-snap/snapshot.*`): its nodes are created and its leaves become the keys.
        #[arg(long, value_name = "SNAPSHOT")]
        tree_from: Option<PathBuf>,
        /// A ZooKeeper client property, as the Java client's -D flags: TLS with
        /// `-D zookeeper.client.secure=true` and `zookeeper.ssl.keyStore.*` / `trustStore.*`
        /// (`.location`, `.password`, `.type`) and `zookeeper.ssl.hostnameVerification`; SASL
        /// DIGEST-MD5 with `-D java.security.auth.login.config=FILE` (a JAAS `Client` section).
        /// Repeatable.
        #[arg(short = 'D', value_name = "NAME=VALUE")]
        define: Vec<String>,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Merge the results of `fkload run --worker I/N` processes into one (histograms added
    /// exactly, counts and series summed) and flag workers that fell behind or disagree.
    Merge {
        /// Worker result JSONs.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Flag a worker whose send-lag p99 exceeds this (ms) and twice its service p99.
        #[arg(long, default_value_t = 10.0)]
        lag_threshold_ms: f64,
        /// Flag a worker whose clock is this far (ms, beyond the measurement's uncertainty)
        /// from the workers' median offset against the leader's clock.
        #[arg(long, default_value_t = 10.0)]
        clock_threshold_ms: f64,
        /// Flag a worker that started this much (ms) after --start-at.
        #[arg(long, default_value_t = 100.0)]
        start_threshold_ms: f64,
        /// Exit 1 when any flag is raised.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Compare two result JSONs; exits 1 when B regresses beyond the threshold.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// e.g. 10%.
        #[arg(long, default_value = "10%")]
        threshold: String,
    },
    /// Replay a trace open-loop: fkload's JSON lines, an Apache ZooKeeper transaction log
    /// (`log.*`, or a directory of them) or a ZooKeeper audit log.
    Replay {
        trace: PathBuf,
        #[arg(long, short, default_value = "127.0.0.1:2181")]
        target: String,
        /// Pace multiplier (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[arg(long, default_value_t = 8)]
        sessions: usize,
        #[arg(long, default_value_t = 16)]
        inflight: usize,
        /// Do not create the tree named in the trace's header.
        #[arg(long)]
        skip_setup: bool,
        /// First create this snapshot's tree (e.g. the ZooKeeper snapshot the log follows).
        #[arg(long, value_name = "SNAPSHOT")]
        tree_from: Option<PathBuf>,
        #[command(flatten)]
        outputs: Outputs,
    },
    /// Re-render the HTML report (and summary) of a result JSON.
    Report {
        result: PathBuf,
        #[arg(long)]
        html: PathBuf,
    },
}

fn write_outputs(r: &RunResult, o: &Outputs) -> anyhow::Result<()> {
    println!("{}", report::summary_table(r));
    if let Some(p) = &o.out {
        std::fs::write(p, serde_json::to_vec_pretty(r)?)?;
        println!("result: {}", p.display());
    }
    if let Some(p) = &o.html {
        std::fs::write(p, report::html(r))?;
        println!("report: {}", p.display());
    }
    Ok(())
}

fn read_result(p: &PathBuf) -> anyhow::Result<RunResult> {
    let text = std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
    serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

async fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Run {
            workload,
            target,
            sessions,
            inflight,
            duration,
            warmup,
            rate,
            steps,
            sweep: sweep_start,
            sweep_runs,
            hdr_log,
            record,
            metrics_port,
            skip_setup,
            no_server_stats,
            seed,
            worker,
            start_at,
            samples,
            fault,
            tree_from,
            define,
            outputs,
        } => {
            let worker = match worker {
                Some(text) => WorkerSpec::parse(&text)?,
                None => WorkerSpec::SOLE,
            };
            anyhow::ensure!(
                worker.count == 1 || sweep_start.is_none(),
                "--sweep adapts its rate to the results and cannot be split over workers"
            );
            let start_at = start_at.as_deref().map(parse_utc).transpose()?;
            let mut w = Workload::load(&workload)?;
            if let Some(v) = sessions {
                w.sessions = v;
            }
            if let Some(v) = inflight {
                w.inflight = v;
            }
            if let Some(v) = duration {
                w.duration_secs = v;
            }
            if let Some(v) = warmup {
                w.warmup_secs = v;
            }
            if rate.is_some() {
                w.rate = rate;
                w.steps.clear();
            }
            if !steps.is_empty() {
                w.steps = steps;
            }
            for text in &fault {
                let f: fkload::fault::Fault =
                    serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("--fault {text}: {e}"))?;
                w.faults.push(f);
            }
            w.validate()?;
            let opts = RunOptions {
                connect: target,
                workload: w,
                hdr_log,
                record,
                progress: !outputs.no_progress,
                metrics_port,
                skip_setup,
                seed,
                server_stats: !no_server_stats,
                worker,
                start_at,
                samples,
                tree_from,
                security: fkload::run::Security::from_properties(&properties(&define)?)?,
            };
            // A hard bound on the whole command, so a misbehaving target (a server that accepts
            // but never answers) cannot hang fkload: the planned time plus two minutes of setup.
            let w = &opts.workload;
            let planned = w.warmup_secs
                + if w.steps.is_empty() || w.rate.is_some() {
                    w.duration_secs
                } else {
                    w.step_secs * w.steps.len() as f64
                };
            let runs = if sweep_start.is_some() { 2 * sweep_runs + 1 } else { 1 };
            let wait = start_at.map_or(0.0, |at| (at - unix_now()).max(0.0));
            let limit = std::time::Duration::from_secs_f64((planned + 120.0) * runs as f64 + wait);
            let work = async {
                match sweep_start {
                    Some(start) => sweep(&opts, start, sweep_runs).await,
                    None => run(&opts, None).await,
                }
            };
            let r = tokio::time::timeout(limit, work).await.map_err(|_| {
                anyhow::anyhow!("gave up after {:.0} s (target not answering?)", limit.as_secs_f64())
            })??;
            write_outputs(&r, &outputs)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Merge { results, lag_threshold_ms, clock_threshold_ms, start_threshold_ms, strict, outputs } => {
            let parts = results.iter().map(read_result).collect::<anyhow::Result<Vec<_>>>()?;
            let o = merge::MergeOptions {
                lag_ms: lag_threshold_ms,
                clock_ms: clock_threshold_ms,
                start_ms: start_threshold_ms,
            };
            let merged = merge::merge(&parts, &o)?;
            print!("{}", merge::workers_table(&parts));
            for f in &merged.merge_flags {
                println!("FLAG: {f}");
            }
            write_outputs(&merged, &outputs)?;
            Ok(if strict && !merged.merge_flags.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Compare { a, b, threshold } => {
            let th = compare::parse_threshold(&threshold)?;
            let (text, regressed) = compare::compare(&read_result(&a)?, &read_result(&b)?, th);
            print!("{text}");
            Ok(if regressed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Replay { trace: path, target, speed, sessions, inflight, skip_setup, tree_from, outputs } => {
            let r = trace::replay_with(
                &target,
                &path,
                speed,
                sessions,
                inflight,
                !skip_setup,
                tree_from.as_deref(),
            )
            .await?;
            write_outputs(&r, &outputs)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { result, html } => {
            let r = read_result(&result)?;
            println!("{}", report::summary_table(&r));
            std::fs::write(&html, report::html(&r))?;
            println!("report: {}", html.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fkload: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fkload: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `NAME=VALUE` arguments of `-D` as pairs (`NAME` alone sets the empty string, as Java).
fn properties(defines: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    defines
        .iter()
        .map(|d| {
            let (name, value) = d.split_once('=').unwrap_or((d.as_str(), ""));
            anyhow::ensure!(!name.is_empty(), "-D {d:?}: expected NAME=VALUE");
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}
