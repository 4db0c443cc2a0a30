//! `ferrokeeper`: run a server from a zoo.cfg (`ferrokeeper --config zoo.cfg`, or
//! `ferrokeeper zoo.cfg` as a drop-in for QuorumPeerMain), and the offline tools:
//! `ferrokeeper purge`, `ferrokeeper log dump`, `ferrokeeper snapshot dump`,
//! `ferrokeeper import-zookeeper`, `ferrokeeper export-zookeeper`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrokeeper_server::config::Config;
use ferrokeeper_server::server::Server;
use ferrokeeper_server::telemetry::{LogFormat, OtlpSettings, Telemetry};

#[derive(Parser, Debug)]
#[command(name = "ferrokeeper", version, about = "A ZooKeeper-compatible coordination server")]
struct Args {
    /// Path of the zoo.cfg to read.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The zoo.cfg path given positionally, as QuorumPeerMain takes it.
    #[arg(value_name = "ZOO_CFG")]
    positional: Option<PathBuf>,
}

/// Offline tools on a server's files.
#[derive(Parser, Debug)]
#[command(name = "ferrokeeper")]
enum Tool {
    /// Delete old snapshots and the log segments only they needed (zkCleanup.sh).
    Purge {
        /// The server's zoo.cfg (dataDir / dataLogDir are read from it).
        #[arg(long = "config", short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Snapshots to keep (at least 3, as ZooKeeper).
        #[arg(short = 'n', default_value_t = 3)]
        count: usize,
    },
    /// Print log records (zkTxnLogToolkit).
    #[command(subcommand)]
    Log(DumpCommand),
    /// Print a snapshot (zkSnapShotToolkit).
    #[command(subcommand)]
    Snapshot(DumpCommand),
    /// Make a ferrokeeper dataDir from an Apache ZooKeeper 3.5-3.9 dataDir (read only).
    ImportZookeeper {
        /// ZooKeeper's dataDir (holding version-2/ and the epoch files).
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: PathBuf,
        /// ZooKeeper's dataLogDir, when its logs are not in dataDir.
        #[arg(long = "data-log-dir", value_name = "DIR")]
        data_log_dir: Option<PathBuf>,
        /// The ferrokeeper dataDir to write (must hold no ferrokeeper data yet).
        #[arg(long = "to", value_name = "DIR")]
        to: PathBuf,
    },
    /// Write a ferrokeeper dataDir's state as an Apache ZooKeeper snapshot (read only).
    ExportZookeeper {
        /// ferrokeeper's dataDir (holding fk-snap/ and the epoch files).
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: PathBuf,
        /// ferrokeeper's dataLogDir, when its log is not in dataDir.
        #[arg(long = "data-log-dir", value_name = "DIR")]
        data_log_dir: Option<PathBuf>,
        /// The ZooKeeper dataDir to write (must hold no ZooKeeper data yet).
        #[arg(long = "to", value_name = "DIR")]
        to: PathBuf,
    },
}

#[derive(clap::Subcommand, Debug)]
enum DumpCommand {
    /// Print every record of a file (or, for logs, of every segment in a directory).
    Dump { path: PathBuf },
}

fn run_tool() -> ExitCode {
    let result = match Tool::parse() {
        Tool::Purge { config, count } => {
            Config::load(&config).map_err(|e| e.to_string()).and_then(|config| {
                let retain = count.max(3);
                ferrokeeper_server::txlog::purge::purge(&config.snap_dir, &config.log.dir, retain)
                    .map(|report| {
                        for path in &report.deleted {
                            println!("deleted {}", path.display());
                        }
                        println!(
                            "kept {} snapshots and {} log segments",
                            report.kept_snapshots, report.kept_segments
                        );
                    })
                    .map_err(|e| e.to_string())
            })
        }
        Tool::Log(DumpCommand::Dump { path }) => ferrokeeper_server::txlog::dump::log(&path),
        Tool::Snapshot(DumpCommand::Dump { path }) => ferrokeeper_server::txlog::dump::snapshot(&path),
        Tool::ImportZookeeper { data_dir, data_log_dir, to } => {
            let paths = ferrokeeper_server::zkformat::import::Paths { data_dir, data_log_dir, to };
            ferrokeeper_server::zkformat::import::import(&paths).map(|report| print_import(&report))
        }
        Tool::ExportZookeeper { data_dir, data_log_dir, to } => {
            let paths = ferrokeeper_server::zkformat::export::Paths { data_dir, data_log_dir, to };
            ferrokeeper_server::zkformat::export::export(&paths).map(|report| {
                println!(
                    "replayed {} txns; {} nodes, {} sessions at zxid {:#x}",
                    report.txns_replayed, report.nodes, report.sessions, report.zxid
                );
                println!("wrote {}", report.written.display());
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ferrokeeper: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_import(report: &ferrokeeper_server::zkformat::import::Report) {
    println!("snapshot {} (zxid {:#x})", report.snapshot.display(), report.snapshot_zxid);
    for (path, txns, end) in &report.logs {
        println!("log {}: {txns} txns, end {end:?}", path.display());
    }
    println!(
        "replayed {} txns ({} failed, ignored as ZooKeeper does); last zxid {:#x}",
        report.txns_replayed, report.txns_failed, report.zxid
    );
    println!(
        "{} nodes, {} sessions, currentEpoch {}, acceptedEpoch {}",
        report.nodes, report.sessions, report.current_epoch, report.accepted_epoch
    );
    println!("wrote {}", report.written.display());
}

fn main() -> ExitCode {
    if matches!(
        std::env::args().nth(1).as_deref(),
        Some("purge" | "log" | "snapshot" | "import-zookeeper" | "export-zookeeper")
    ) {
        return run_tool();
    }
    let (properties, rest) = split_properties(std::env::args().collect());
    let args = Args::parse_from(rest);
    let Some(path) = args.config.or(args.positional) else {
        eprintln!(
            "ferrokeeper: no configuration given; usage: ferrokeeper [-Dname=value ...] --config zoo.cfg"
        );
        return ExitCode::from(2);
    };
    let config = match Config::load_with(&path, &properties) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ferrokeeper: {error}");
            return ExitCode::from(2);
        }
    };
    let otlp = match OtlpSettings::resolve(&config.otlp, |key| std::env::var(key).ok()) {
        Ok(otlp) => otlp,
        Err(error) => {
            eprintln!("ferrokeeper: {error}");
            return ExitCode::from(2);
        }
    };
    let format = match LogFormat::from_env(std::env::var("FK_LOG_FORMAT").ok().as_deref()) {
        Ok(format) => format,
        Err(error) => {
            eprintln!("ferrokeeper: {error}");
            return ExitCode::from(2);
        }
    };
    let (telemetry, tracer) = match Telemetry::init(format, otlp.as_ref(), resource(&config)) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("ferrokeeper: cannot set up logging and tracing: {error}");
            return ExitCode::from(2);
        }
    };
    for key in &config.unknown_keys {
        tracing::warn!(key, "unknown configuration key ignored");
    }
    for setting in &config.ignored_settings {
        tracing::warn!("{setting}");
    }
    if let Some(scheme) = &config.auth.require_client_auth_scheme {
        tracing::warn!(
            value = %scheme,
            "requireClientAuthScheme is not read by ZooKeeper 3.5-3.9 and does nothing here either; \
             use sessionRequireClientSASLAuth=true, or enforce.auth.enabled=true with enforce.auth.schemes"
        );
    }
    // A dataDir of Apache ZooKeeper's and none of ferrokeeper's yet: import it first.
    match ferrokeeper_server::zkformat::import::import_on_start(&config) {
        Ok(None) => {}
        Ok(Some(report)) => tracing::info!(
            snapshot = %report.snapshot.display(),
            txns_replayed = report.txns_replayed,
            nodes = report.nodes,
            sessions = report.sessions,
            zxid = format_args!("0x{:x}", report.zxid),
            written = %report.written.display(),
            "imported Apache ZooKeeper's dataDir (its files are left as they were)"
        ),
        Err(error) => {
            eprintln!("ferrokeeper: cannot import Apache ZooKeeper's data: {error}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferrokeeper: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let server = match Server::start_traced(config, tracer).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("ferrokeeper: {error:#}");
                return ExitCode::FAILURE;
            }
        };
        let code = tokio::select! {
            _ = wait_for_signal() => {
                tracing::info!("shutting down");
                ExitCode::SUCCESS
            }
            reason = server.failed() => {
                eprintln!("ferrokeeper: fatal: {reason}");
                ExitCode::FAILURE
            }
        };
        server.shutdown().await;
        code
    });
    drop(runtime);
    telemetry.shutdown();
    code
}

/// Takes the `-Dname=value` arguments (Java system properties, as `SERVER_JVMFLAGS` hands
/// them to QuorumPeerMain) out of `args`; `-Dname` alone sets `name` to the empty string, as
/// Java does. The rest, program name first, goes to the argument parser.
fn split_properties(args: Vec<String>) -> (Vec<(String, String)>, Vec<String>) {
    let mut properties = Vec::new();
    let mut rest = Vec::with_capacity(args.len());
    for arg in args {
        match arg.strip_prefix("-D") {
            Some(property) if !property.is_empty() => {
                let (name, value) = property.split_once('=').unwrap_or((property, ""));
                properties.push((name.to_owned(), value.to_owned()));
            }
            _ => rest.push(arg),
        }
    }
    (properties, rest)
}

/// What identifies this server in exported traces.
fn resource(config: &Config) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| config.client_port_address.to_string());
    // A TLS-only server is known by its secure port.
    let port = config.client_port.or(config.client_tls.as_ref().map(|tls| tls.port)).unwrap_or(0);
    let mut attributes = vec![
        KeyValue::new("service.instance.id", format!("{host}:{port}")),
        KeyValue::new("host.name", host),
        KeyValue::new("zk.client_port", i64::from(port)),
    ];
    if let Some(quorum) = &config.quorum {
        attributes.push(KeyValue::new("zk.server_id", quorum.my_id as i64));
    }
    attributes
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers the process can still be stopped by SIGKILL.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
