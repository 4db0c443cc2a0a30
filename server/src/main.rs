//! `ferrokeeper`: run a server from a zoo.cfg (`ferrokeeper --config zoo.cfg`, or
//! `ferrokeeper zoo.cfg` as a drop-in for QuorumPeerMain).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrokeeper_server::config::Config;
use ferrokeeper_server::server::Server;

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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let Some(path) = args.config.or(args.positional) else {
        eprintln!("ferrokeeper: no configuration given; usage: ferrokeeper --config zoo.cfg");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ferrokeeper: {error}");
            return ExitCode::from(2);
        }
    };
    for key in &config.unknown_keys {
        tracing::warn!(key, "unknown configuration key ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferrokeeper: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::start(config).await {
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
    })
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
