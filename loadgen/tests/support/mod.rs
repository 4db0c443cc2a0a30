//! A tiny fake ZooKeeper-protocol server for fkload's tests: accepts the handshake and answers
//! every request as a getData (100 bytes) after a known delay, with an optional stall.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use fkload::workload::{KeyDist, MixOp, SizeDist, TreeShape, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// When and how the fake server answers.
pub struct Fake {
    pub delay: Duration,
    /// The stall starts this long after the first request and lasts `stall_len`.
    pub stall_after: Option<Duration>,
    pub stall_len: Duration,
    pub first: OnceLock<Instant>,
    /// Drop each connection (without answering) once it has sent this many requests.
    pub close_after: Option<usize>,
}

impl Fake {
    /// Answers after `delay`, never stalls.
    pub fn steady(delay: Duration) -> Fake {
        Fake {
            delay,
            stall_after: None,
            stall_len: Duration::ZERO,
            first: OnceLock::new(),
            close_after: None,
        }
    }

    fn reply_at(&self, arrival: Instant) -> Instant {
        let first = *self.first.get_or_init(|| arrival);
        let normal = arrival + self.delay;
        if let Some(after) = self.stall_after {
            let (s, e) = (first + after, first + after + self.stall_len);
            if normal > s && arrival < e {
                return normal.max(e);
            }
        }
        normal
    }
}

async fn serve(listener: TcpListener, fake: Arc<Fake>) {
    let mut session = 0x100i64;
    while let Ok((stream, _)) = listener.accept().await {
        session += 1;
        tokio::spawn(connection(stream, fake.clone(), session));
    }
}

async fn connection(mut stream: TcpStream, fake: Arc<Fake>, session_id: i64) {
    stream.set_nodelay(true).unwrap();
    // Handshake: ConnectRequest in, ConnectResponse out.
    let len = stream.read_i32().await.unwrap();
    let mut req = vec![0u8; len as usize];
    stream.read_exact(&mut req).await.unwrap();
    let mut out = BytesMut::new();
    out.put_i32(4 + 4 + 8 + 4 + 16 + 1);
    out.put_i32(0);
    out.put_i32(30_000);
    out.put_i64(session_id);
    out.put_i32(16);
    out.put_slice(&[0u8; 16]);
    out.put_u8(0);
    stream.write_all(&out).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i32, i32, Instant)>();
    let writer = tokio::spawn(async move {
        let data = [b'x'; 100];
        while let Some((xid, op, at)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            let mut out = BytesMut::new();
            let body_len = if op == 4 { 4 + data.len() + 68 } else { 0 };
            out.put_i32((16 + body_len) as i32);
            out.put_i32(xid);
            out.put_i64(1);
            out.put_i32(0);
            if op == 4 {
                out.put_i32(data.len() as i32);
                out.put_slice(&data);
                out.put_slice(&[0u8; 68]);
            }
            if w.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let mut requests = 0usize;
    while let Ok(len) = r.read_i32().await {
        requests += 1;
        if fake.close_after.is_some_and(|n| requests > n) {
            writer.abort();
            return;
        }
        let mut frame = vec![0u8; len as usize];
        if r.read_exact(&mut frame).await.is_err() {
            break;
        }
        let arrival = Instant::now();
        let xid = i32::from_be_bytes(frame[0..4].try_into().unwrap());
        let op = i32::from_be_bytes(frame[4..8].try_into().unwrap());
        // Pings (-2) and closeSession (-11) are answered at once; everything else as getData.
        let at = if xid == -2 || op == -11 { arrival } else { fake.reply_at(arrival) };
        let reply_op = if op == -11 || xid == -2 { 0 } else { 4 };
        if tx.send((xid, reply_op, at)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

pub async fn start(fake: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, Arc::new(fake)));
    addr
}

pub fn workload(sessions: usize, inflight: usize, secs: f64, rate: Option<f64>) -> Workload {
    Workload {
        name: "fake-get".into(),
        description: String::new(),
        ops: BTreeMap::from([(MixOp::Get, 1)]),
        znodes: 10,
        tree: TreeShape::default(),
        value_size: SizeDist::Fixed { size: 100 },
        keys: KeyDist::Uniform,
        sessions,
        inflight,
        duration_secs: secs,
        warmup_secs: 0.0,
        rate,
        steps: Vec::new(),
        step_secs: 1.0,
        slo: None,
        watchers: 0,
        faults: Vec::new(),
        fault_commands: None,
    }
}
