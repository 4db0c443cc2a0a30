//! logbench: transaction-log append throughput and latency by backend, forceSync and
//! concurrency, next to the disk's raw fdatasync rate (the physical reference).
//!
//! `cargo run --release -p ferrokeeper-benches --bin logbench -- --dir /path/on/the/disk`
//! prints a markdown table. Each row keeps `outstanding` appends in flight (a closed loop on
//! the durable watermark, as many clients waiting for their writes would) for `--seconds`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrokeeper_server::txlog::{Backend, LogSettings, LogWriter};

#[derive(Parser)]
struct Args {
    /// Directory on the disk to measure (a scratch subdirectory is created and removed).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Seconds per configuration.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Payload bytes per txn.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// In-flight appends to test (comma separated).
    #[arg(long, default_value = "1,8,64,512")]
    outstanding: String,
}

fn fdatasync_rate(dir: &Path, seconds: f64) -> std::io::Result<(f64, Duration)> {
    let path = dir.join("probe");
    let file = OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let block = vec![7u8; 4096];
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all_at(&block, (count % 256) * 4096)?;
        file.sync_data()?;
        count += 1;
    }
    let elapsed = started.elapsed();
    std::fs::remove_file(&path)?;
    Ok((count as f64 / elapsed.as_secs_f64(), elapsed / count.max(1) as u32))
}

struct Row {
    txns_per_sec: f64,
    txns_per_batch: f64,
    p50_us: u64,
    p99_us: u64,
    backend: Backend,
}

fn run(
    dir: &Path,
    backend: Backend,
    force_sync: bool,
    outstanding: usize,
    args: &Args,
) -> std::io::Result<Row> {
    let log_dir = dir.join(format!("log-{}-{force_sync}-{outstanding}", backend.name()));
    let mut settings = LogSettings::new(log_dir.clone());
    settings.backend = backend;
    settings.force_sync = force_sync;
    let writer = LogWriter::start(settings, 0)?;
    let status = writer.status();
    let payload = vec![0x5au8; args.payload];
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 20);
    let mut sent_at = std::collections::VecDeque::new();
    let mut next_zxid = 1i64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut durable = 0i64;
    while Instant::now() < deadline {
        while sent_at.len() < outstanding {
            writer.append(next_zxid, payload.clone());
            sent_at.push_back((next_zxid, Instant::now()));
            next_zxid += 1;
        }
        // Spin-wait on the watermark: the bench thread stands for many waiting clients.
        loop {
            let current = status.borrow().durable_zxid;
            if let Some(failure) = &status.borrow().failure {
                return Err(std::io::Error::other(failure.clone()));
            }
            if current > durable {
                durable = current;
                break;
            }
            std::thread::yield_now();
        }
        let now = Instant::now();
        while let Some((zxid, at)) = sent_at.front() {
            if *zxid > durable {
                break;
            }
            latencies.push(now.duration_since(*at).as_micros() as u64);
            sent_at.pop_front();
        }
    }
    let elapsed = started.elapsed();
    let stats = writer.stats();
    let backend = writer.backend();
    writer.shutdown();
    let _ = std::fs::remove_dir_all(&log_dir);
    latencies.sort_unstable();
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed).max(1);
    let written = stats.written_txns.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Row {
        txns_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        txns_per_batch: written as f64 / batches as f64,
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        backend,
    })
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let scratch = args.dir.join(format!("fk-logbench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let (rate, each) = fdatasync_rate(&scratch, args.seconds)?;
    println!(
        "Disk: {} — raw 4 KiB pwrite+fdatasync: {rate:.0}/s ({} µs each)\n",
        args.dir.display(),
        each.as_micros()
    );
    println!("| backend | forceSync | in flight | txns/s | txns/fsync batch | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let outstanding: Vec<usize> = args.outstanding.split(',').filter_map(|v| v.trim().parse().ok()).collect();
    for backend in [Backend::Uring, Backend::Sync] {
        for force_sync in [true, false] {
            for &n in &outstanding {
                let row = run(&scratch, backend, force_sync, n, &args)?;
                println!(
                    "| {} | {} | {n} | {:.0} | {:.1} | {} | {} |",
                    row.backend.name(),
                    if force_sync { "yes" } else { "no" },
                    row.txns_per_sec,
                    row.txns_per_batch,
                    row.p50_us,
                    row.p99_us
                );
            }
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
