//! The named cases of the instruction-count gate (`scripts/bench-gate.sh`).
//!
//! Each case builds its fixture, then runs a fixed workload inside [`benchgate_measured`].
//! The gate runs `benchgate run <case>` under
//! `valgrind --tool=callgrind --toggle-collect=*benchgate_measured*`, so only instructions
//! executed inside that function are counted: process start-up, fixture building and exit are
//! not. Fixtures come from constants only, so the count is the same on every run.
//!
//! `FK_BENCH_SLOWDOWN=<case>` adds a deliberate extra copy of the input to that case (only
//! the `decode_*` cases honour it); the gate's own test uses it to prove a rise is caught.

use std::hint::black_box;

use bytes::BytesMut;
use ferrokeeper_proto::Jute as _;
use ferrokeeper_proto::response::Response;

use crate::workloads::{self, TreeBench};

/// One named workload of the gate.
pub struct Case {
    pub name: &'static str,
    /// Operations the workload performs; the gate reports instructions per operation too.
    pub operations: u64,
    pub about: &'static str,
    run: fn(&Case, bool),
}

impl Case {
    /// Builds the fixture and runs the measured workload; `slowdown` adds the deliberate extra
    /// copy (decode cases only).
    pub fn run(&self, slowdown: bool) {
        (self.run)(self, slowdown)
    }
}

/// The only code callgrind counts: everything `f` executes.
#[inline(never)]
pub fn benchgate_measured<R>(f: impl FnOnce() -> R) -> R {
    black_box(f())
}

/// Every case, in report order.
pub fn cases() -> &'static [Case] {
    &CASES
}

/// The case called `name`.
pub fn find(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|case| case.name == name)
}

static CASES: [Case; 15] = [
    Case { name: "empty", operations: 1, about: "nothing: the floor of the measurement", run: run_empty },
    Case {
        name: "decode_get_data",
        operations: 1000,
        about: "frame::check + RequestHeader + Request::decode of getData",
        run: run_decode_get_data,
    },
    Case {
        name: "decode_set_data_1k",
        operations: 1000,
        about: "frame::check + RequestHeader + Request::decode of setData 1 KiB",
        run: run_decode_set_data,
    },
    Case {
        name: "decode_create",
        operations: 1000,
        about: "frame::check + RequestHeader + Request::decode of create2",
        run: run_decode_create,
    },
    Case {
        name: "encode_get_data_reply_1k",
        operations: 1000,
        about: "frame::write of ReplyHeader + getData reply (1 KiB + stat)",
        run: run_encode_get_data,
    },
    Case {
        name: "encode_set_data_reply",
        operations: 1000,
        about: "frame::write of ReplyHeader + setData reply (stat)",
        run: run_encode_set_data,
    },
    Case {
        name: "encode_create_reply",
        operations: 1000,
        about: "frame::write of ReplyHeader + create2 reply (path + stat)",
        run: run_encode_create,
    },
    Case {
        name: "tree_create",
        operations: 1000,
        about: "DataTree prep + apply of create (1000 siblings)",
        run: run_tree_create,
    },
    Case {
        name: "tree_set_data_1k",
        operations: 1000,
        about: "DataTree prep + apply of setData 1 KiB",
        run: run_tree_set_data,
    },
    Case {
        name: "tree_delete",
        operations: 1000,
        about: "DataTree prep + apply of delete (1000 siblings)",
        run: run_tree_delete,
    },
    Case {
        name: "tree_get_data",
        operations: 1000,
        about: "DataTree::read of getData 1 KiB, no watch",
        run: run_tree_get_data,
    },
    Case {
        name: "watch_trigger_1k",
        operations: 10,
        about: "setData prep + apply firing 1000 data watches (10 rounds)",
        run: run_watch_trigger,
    },
    Case {
        name: "log_record_encode_1k",
        operations: 1000,
        about: "TxnRecord encode + encode_record (length, CRC32C) of setData 1 KiB",
        run: run_log_record_encode,
    },
    Case {
        name: "log_batch_encode",
        operations: 16,
        about: "writer batch: 64 queued 1 KiB payloads framed into one reused buffer",
        run: run_log_batch_encode,
    },
    Case {
        name: "quorum_set_data_1k",
        operations: 1000,
        about: "3 replicas in memory (replica::sim, no faults): setData 1 KiB from 4 clients spread over \
                them, forward, propose, persist, ack, commit, apply on all three, reply",
        run: run_quorum_set_data,
    },
];

fn run_empty(_case: &Case, _slowdown: bool) {
    benchgate_measured(|| ());
}

fn decode_loop(case: &Case, frame: &[u8], slowdown: bool) {
    let decoded = benchgate_measured(|| {
        let mut decoded = 0u64;
        for _ in 0..case.operations {
            let copy;
            let input: &[u8] = if slowdown {
                // The deliberate regression: one needless copy of the input per request.
                copy = frame.to_vec();
                black_box(&copy)
            } else {
                black_box(frame)
            };
            if black_box(workloads::decode_frame(input)).is_some() {
                decoded += 1;
            }
        }
        decoded
    });
    assert_eq!(decoded, case.operations, "{}: every frame must decode", case.name);
}

fn run_decode_get_data(case: &Case, slowdown: bool) {
    decode_loop(case, &workloads::request_frame(7, &workloads::get_data_request()), slowdown);
}

fn run_decode_set_data(case: &Case, slowdown: bool) {
    decode_loop(case, &workloads::request_frame(7, &workloads::set_data_request()), slowdown);
}

fn run_decode_create(case: &Case, slowdown: bool) {
    decode_loop(case, &workloads::request_frame(7, &workloads::create_request()), slowdown);
}

fn encode_loop(case: &Case, response: &Response) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let written = benchgate_measured(|| {
        let mut written = 0usize;
        for xid in 0..case.operations as i32 {
            // The core hands each connection's buffer over once per batch; model batches of 32.
            if xid % 32 == 0 {
                written += out.len();
                out.clear();
            }
            workloads::encode_reply(&mut out, xid, 0x1_0000_2000, black_box(response));
        }
        written + out.len()
    });
    assert!(written > 0, "{}: replies must be written", case.name);
}

fn run_encode_get_data(case: &Case, _slowdown: bool) {
    encode_loop(case, &workloads::get_data_reply());
}

fn run_encode_set_data(case: &Case, _slowdown: bool) {
    encode_loop(case, &workloads::set_data_reply());
}

fn run_encode_create(case: &Case, _slowdown: bool) {
    encode_loop(case, &workloads::create_reply());
}

fn run_tree_create(case: &Case, _slowdown: bool) {
    let mut bench = TreeBench::new();
    let requests = workloads::create_requests(case.operations as usize);
    let ok = benchgate_measured(|| requests.iter().filter(|r| bench.write(r).reply.is_ok()).count());
    assert_eq!(ok, requests.len(), "{}: every create must succeed", case.name);
}

fn run_tree_set_data(case: &Case, _slowdown: bool) {
    let mut bench = TreeBench::new();
    let request = workloads::set_data_request();
    let ok =
        benchgate_measured(|| (0..case.operations).filter(|_| bench.write(&request).reply.is_ok()).count());
    assert_eq!(ok as u64, case.operations, "{}: every setData must succeed", case.name);
}

fn run_tree_delete(case: &Case, _slowdown: bool) {
    let mut bench = TreeBench::new();
    for request in workloads::create_requests(case.operations as usize) {
        assert!(bench.write(&request).reply.is_ok(), "{}: fixture create", case.name);
    }
    let requests = workloads::delete_requests(case.operations as usize);
    let ok = benchgate_measured(|| requests.iter().filter(|r| bench.write(r).reply.is_ok()).count());
    assert_eq!(ok, requests.len(), "{}: every delete must succeed", case.name);
}

fn run_tree_get_data(case: &Case, _slowdown: bool) {
    let mut bench = TreeBench::new();
    let request = workloads::plain_get_data_request();
    let reader = workloads::caller(workloads::SESSION, 2);
    let ok = benchgate_measured(|| {
        (0..case.operations).filter(|_| black_box(bench.tree.read(&reader, &request)).is_ok()).count()
    });
    assert_eq!(ok as u64, case.operations, "{}: every read must succeed", case.name);
}

fn run_watch_trigger(case: &Case, _slowdown: bool) {
    let mut bench = TreeBench::new();
    let request = workloads::set_data_request();
    for _ in 0..case.operations {
        workloads::register_watchers(&mut bench, workloads::WATCHERS);
        let outcome = benchgate_measured(|| bench.write(&request));
        assert_eq!(outcome.events.len(), workloads::WATCHERS, "{}: every watcher fires", case.name);
    }
}

fn run_log_record_encode(case: &Case, _slowdown: bool) {
    let records: Vec<_> = (1..=case.operations as i64).map(workloads::set_data_record).collect();
    let mut buffer = Vec::with_capacity(128 * 1024);
    let written = benchgate_measured(|| {
        let mut written = 0usize;
        for (index, record) in records.iter().enumerate() {
            if index % workloads::BATCH_RECORDS == 0 {
                written += buffer.len();
                buffer.clear();
            }
            workloads::encode_log_record(&mut buffer, record);
        }
        written + buffer.len()
    });
    assert!(written > records.len() * workloads::DATA_BYTES, "{}: records must be written", case.name);
}

fn run_log_batch_encode(case: &Case, _slowdown: bool) {
    let payloads: Vec<Vec<u8>> = (1..=workloads::BATCH_RECORDS as i64)
        .map(|zxid| workloads::set_data_record(zxid).encode_to_vec())
        .collect();
    let mut buffer = Vec::with_capacity(128 * 1024);
    let written = benchgate_measured(|| {
        let mut written = 0usize;
        for batch in 0..case.operations as i64 {
            workloads::encode_batch(&mut buffer, 1 + batch * payloads.len() as i64, &payloads);
            written += black_box(&buffer).len();
        }
        written
    });
    assert!(written > 0, "{}: batches must be written", case.name);
}

fn run_quorum_set_data(case: &Case, _slowdown: bool) {
    let mut sim = ferrokeeper_server::replica::sim::Sim::bench(3, 4);
    let acked = benchgate_measured(|| sim.bench_writes(case.operations));
    assert!(acked >= case.operations, "{}: every setData must be acknowledged", case.name);
}
