//! Wall-clock benchmarks of the server's hot paths, for local profiling:
//! `cargo bench -p ferrokeeper-benches --bench hot_paths [-- <filter>]`.
//!
//! The workloads are the ones the instruction-count gate measures (`src/workloads.rs`); the
//! gate is the regression check, these are for looking at time (and at `perf`).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrokeeper_benches::workloads::{self, TreeBench};
use ferrokeeper_proto::Jute;
use ferrokeeper_server::txlog::{Backend, LogSettings, LogWriter};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, request) in [
        ("get_data", workloads::get_data_request()),
        ("set_data_1k", workloads::set_data_request()),
        ("create", workloads::create_request()),
    ] {
        let frame = workloads::request_frame(7, &request);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| b.iter(|| workloads::decode_frame(black_box(&frame)).unwrap()));
    }
    group.finish();

    let mut group = c.benchmark_group("encode_reply");
    for (name, response) in [
        ("get_data_1k", workloads::get_data_reply()),
        ("set_data", workloads::set_data_reply()),
        ("create", workloads::create_reply()),
    ] {
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                if out.len() > 32 * 1024 {
                    out.clear();
                }
                workloads::encode_reply(&mut out, 7, 0x1_0000_2000, black_box(&response));
            })
        });
    }
    group.finish();
}

fn tree(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(100));
    group.bench_function("create", |b| {
        b.iter_batched_ref(
            || (TreeBench::new(), workloads::create_requests(100)),
            |(bench, requests)| {
                for request in requests.iter() {
                    black_box(bench.write(request));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("set_data_1k", |b| {
        let mut bench = TreeBench::new();
        let request = workloads::set_data_request();
        b.iter(|| black_box(bench.write(&request)))
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("delete", |b| {
        b.iter_batched_ref(
            || {
                let mut bench = TreeBench::new();
                for request in workloads::create_requests(100) {
                    bench.write(&request);
                }
                (bench, workloads::delete_requests(100))
            },
            |(bench, requests)| {
                for request in requests.iter() {
                    black_box(bench.write(request));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_data_1k", |b| {
        let mut bench = TreeBench::new();
        let request = workloads::plain_get_data_request();
        let reader = workloads::caller(workloads::SESSION, 2);
        b.iter(|| black_box(bench.tree.read(&reader, &request)))
    });
    group.bench_function("watch_trigger_1k", |b| {
        let mut bench = TreeBench::new();
        let request = workloads::set_data_request();
        b.iter_custom(|rounds| {
            let mut total = Duration::ZERO;
            for _ in 0..rounds {
                workloads::register_watchers(&mut bench, workloads::WATCHERS);
                let started = Instant::now();
                let outcome = bench.write(&request);
                total += started.elapsed();
                assert_eq!(outcome.events.len(), workloads::WATCHERS);
            }
            total
        })
    });
    group.finish();
}

fn txlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("txlog");
    let record = workloads::set_data_record(1);
    let mut buffer = Vec::with_capacity(128 * 1024);
    group.bench_function("record_encode_1k", |b| {
        b.iter(|| {
            if buffer.len() > 64 * 1024 {
                buffer.clear();
            }
            workloads::encode_log_record(&mut buffer, black_box(&record));
        })
    });
    let payloads: Vec<Vec<u8>> = (1..=workloads::BATCH_RECORDS as i64)
        .map(|zxid| workloads::set_data_record(zxid).encode_to_vec())
        .collect();
    group.throughput(Throughput::Elements(workloads::BATCH_RECORDS as u64));
    group.bench_function("batch_encode_64", |b| {
        b.iter(|| workloads::encode_batch(&mut buffer, 1, black_box(&payloads)))
    });

    // The real group-commit writer (its thread, channel and file writes) without fdatasync:
    // 64 appends, then wait until the last is reported written.
    let dir = std::env::temp_dir().join(format!("fk-bench-txlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = LogSettings::new(dir.clone());
    settings.force_sync = false;
    settings.backend = Backend::Sync;
    let writer = LogWriter::start(settings, 0).unwrap();
    let status = writer.status();
    let payload = payloads[0].clone();
    let mut next_zxid = 1i64;
    group.bench_function("group_commit_64_no_fsync", |b| {
        b.iter(|| {
            for _ in 0..workloads::BATCH_RECORDS {
                writer.append(next_zxid, payload.clone());
                next_zxid += 1;
            }
            while status.borrow().durable_zxid < next_zxid - 1 {
                assert!(status.borrow().failure.is_none(), "log writer failed");
                std::thread::yield_now();
            }
        })
    });
    group.finish();
    writer.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, codec, tree, txlog);
criterion_main!(benches);
