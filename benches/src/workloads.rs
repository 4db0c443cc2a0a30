//! Fixed workloads over the server's hot paths, shared by the criterion benches
//! (`benches/hot_paths.rs`, wall-clock, for local profiling) and the instruction-count gate
//! (`src/bin/benchgate.rs` under callgrind, for CI).
//!
//! Every fixture is built from constants only (no clock, no RNG, no files), so a workload
//! executes the same instructions on every run: that is what makes the gate's counts exact.

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::frame;
use ferrokeeper_proto::op;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::txn::{Txn, TxnHeader, TxnRecord};
use ferrokeeper_proto::{
    Acl, Create2Response, CreateRequest, DeleteRequest, GetDataRequest, GetDataResponse, Id, Jute,
    ReplyHeader, RequestHeader, SetDataRequest, SetDataResponse, Stat,
};
use ferrokeeper_server::tree::{ApplyOutcome, Caller, ConnId, DataTree, TreeConfig};
use ferrokeeper_server::txlog::format::encode_record;

/// Payload size of the "1 KiB" setData / getData workloads.
pub const DATA_BYTES: usize = 1024;
/// Watchers registered on one node by the watch-triggering workload.
pub const WATCHERS: usize = 1000;
/// Records per group-commit batch in the batch-encoding workload.
pub const BATCH_RECORDS: usize = 64;

/// A deterministic 1 KiB payload.
pub fn data_1k() -> Bytes {
    Bytes::from((0..DATA_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

// ----- framing and the jute codec --------------------------------------------------------

/// A whole client frame (`length | RequestHeader | body`), as it arrives on the socket.
pub fn request_frame(xid: i32, request: &Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::write(&mut out, |b| {
        RequestHeader { xid, op: request.op() }.write(b);
        request.write_body(b);
    });
    out.to_vec()
}

/// `getData /app/config/node-0001 watch=true`.
pub fn get_data_request() -> Request {
    Request::GetData(GetDataRequest { path: "/app/config/node-0001".into(), watch: true })
}

/// `getData /app/config/node-0001 watch=false`: a read that registers nothing.
pub fn plain_get_data_request() -> Request {
    Request::GetData(GetDataRequest { path: "/app/config/node-0001".into(), watch: false })
}

/// `setData /app/config/node-0001` with 1 KiB, any version.
pub fn set_data_request() -> Request {
    Request::SetData(SetDataRequest {
        path: "/app/config/node-0001".into(),
        data: Some(data_1k()),
        version: -1,
    })
}

/// `create2 /app/queue/item-` (sequential) with 64 bytes and OPEN_ACL_UNSAFE.
pub fn create_request() -> Request {
    Request::Create2(CreateRequest {
        path: "/app/queue/item-".into(),
        data: Some(Bytes::from_static(&[0x42; 64])),
        acl: Acl::open_unsafe(),
        flags: 2,
    })
}

/// What a connection task does with the front of its input buffer: find the frame, decode the
/// header, decode the body. `None` if the buffer does not hold one valid request.
pub fn decode_frame(input: &[u8]) -> Option<(RequestHeader, Request)> {
    let length = frame::check(input, frame::MAX_FRAME_DEFAULT).ok()??;
    let payload = input.get(4..4 + length)?;
    let header = RequestHeader::decode(payload).ok()?;
    let body = payload.get(8..)?;
    let request = Request::decode(header.op, body).ok()?;
    Some((header, request))
}

/// A plausible stat of a 1 KiB node.
pub fn sample_stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0010,
        mzxid: 0x1_0000_2000,
        ctime: 1_790_000_000_000,
        mtime: 1_790_000_100_000,
        version: 17,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: DATA_BYTES as i32,
        num_children: 0,
        pzxid: 0x1_0000_0010,
    }
}

/// The replies the core encodes for the three requests above.
pub fn get_data_reply() -> Response {
    Response::GetData(GetDataResponse { data: Some(data_1k()), stat: sample_stat() })
}

pub fn set_data_reply() -> Response {
    Response::SetData(SetDataResponse { stat: sample_stat() })
}

pub fn create_reply() -> Response {
    Response::Create2(Create2Response { path: "/app/queue/item-0000000042".into(), stat: sample_stat() })
}

/// What the core does per reply: one frame of `ReplyHeader | body` appended to the
/// connection's outbound buffer.
pub fn encode_reply(out: &mut BytesMut, xid: i32, zxid: i64, response: &Response) {
    let header = ReplyHeader { xid, zxid, err: 0 };
    frame::write(out, |b| {
        header.write(b);
        response.write_body(b);
    });
}

// ----- the data tree ---------------------------------------------------------------------

/// A tree with one live session and the parents the workloads write under, plus a zxid
/// counter: the write path of the core without the log in between.
pub struct TreeBench {
    pub tree: DataTree,
    pub zxid: i64,
    pub caller: Caller,
}

/// The session every workload writes as.
pub const SESSION: i64 = 0x100_0000_0001;

impl TreeBench {
    pub fn new() -> TreeBench {
        let mut tree = DataTree::new(TreeConfig::default());
        let zxid = 1;
        let txn = tree.prep_create_session(SESSION, 30_000, zxid);
        let header = TxnHeader { client_id: SESSION, cxid: 0, zxid, time: 1_000, txn_type: txn.txn_type() };
        tree.apply(&header, &txn);
        let caller = caller(SESSION, 1);
        let mut bench = TreeBench { tree, zxid, caller };
        for path in ["/app", "/app/config", "/app/queue", "/bench"] {
            bench.create(path, Bytes::new());
        }
        bench.create("/app/config/node-0001", data_1k());
        bench
    }

    /// prep + apply of one write, as the core does once the txn is durable.
    pub fn write(&mut self, request: &Request) -> ApplyOutcome {
        self.zxid += 1;
        let time = 1_000 + self.zxid;
        let txn = self.tree.prep(&self.caller, request, self.zxid, time);
        let header = TxnHeader {
            client_id: SESSION,
            cxid: self.zxid as i32,
            zxid: self.zxid,
            time,
            txn_type: txn.txn_type(),
        };
        self.tree.apply(&header, &txn)
    }

    /// Creates a persistent node; panics if the tree refuses (a broken fixture).
    pub fn create(&mut self, path: &str, data: Bytes) {
        let request = Request::Create(CreateRequest {
            path: path.into(),
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        let outcome = self.write(&request);
        assert!(outcome.reply.is_ok(), "fixture create {path}: {:?}", outcome.reply);
    }
}

impl Default for TreeBench {
    fn default() -> TreeBench {
        TreeBench::new()
    }
}

/// A caller with the `ip:127.0.0.1` identity every connection has.
pub fn caller(session_id: i64, conn: ConnId) -> Caller {
    Caller { session_id, conn, auth: vec![Id::new("ip", "127.0.0.1")] }
}

/// `create /bench/n-<i>` requests with 100 bytes each (built outside the measurement).
pub fn create_requests(count: usize) -> Vec<Request> {
    (0..count)
        .map(|i| {
            Request::Create(CreateRequest {
                path: format!("/bench/n-{i:06}"),
                data: Some(Bytes::from_static(&[0x17; 100])),
                acl: Acl::open_unsafe(),
                flags: 0,
            })
        })
        .collect()
}

/// `delete /bench/n-<i>` requests matching [`create_requests`].
pub fn delete_requests(count: usize) -> Vec<Request> {
    (0..count)
        .map(|i| Request::Delete(DeleteRequest { path: format!("/bench/n-{i:06}"), version: -1 }))
        .collect()
}

/// The watched node of the watch-triggering workload.
pub const WATCHED_PATH: &str = "/app/config/node-0001";

/// Registers a data watch on [`WATCHED_PATH`] from each of `count` connections (conn ids
/// 1000, 1001, …), as `getData(watch=true)` from that many clients does.
pub fn register_watchers(bench: &mut TreeBench, count: usize) {
    let request = Request::GetData(GetDataRequest { path: WATCHED_PATH.into(), watch: true });
    for conn in 0..count as ConnId {
        let reader = caller(SESSION, 1_000 + conn);
        let reply = bench.tree.read(&reader, &request);
        assert!(reply.is_ok(), "fixture watch registration: {reply:?}");
    }
}

// ----- the transaction log ---------------------------------------------------------------

/// A setData txn record of 1 KiB, as the core hands it to the log.
pub fn set_data_record(zxid: i64) -> TxnRecord {
    let txn = Txn::SetData(ferrokeeper_proto::txn::SetDataTxn {
        path: "/app/config/node-0001".into(),
        data: Some(data_1k()),
        version: 18,
    });
    let header =
        TxnHeader { client_id: SESSION, cxid: 7, zxid, time: 1_790_000_100_000, txn_type: op::SET_DATA };
    TxnRecord { header, txn }
}

/// Serializes a txn record (core side) and frames it with length + CRC32C (writer side).
pub fn encode_log_record(out: &mut Vec<u8>, record: &TxnRecord) {
    let payload = record.encode_to_vec();
    encode_record(out, record.header.zxid, &payload);
}

/// The writer thread's per-batch work: every queued payload framed into one reused buffer.
pub fn encode_batch(buffer: &mut Vec<u8>, first_zxid: i64, payloads: &[Vec<u8>]) {
    buffer.clear();
    for (zxid, payload) in (first_zxid..).zip(payloads) {
        encode_record(buffer, zxid, payload);
    }
}
