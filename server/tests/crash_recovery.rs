//! Crash test with real processes: a client pipelines creates and setData calls and records
//! every acknowledged write; the server is killed with SIGKILL at a random moment, restarted on
//! the same directories, and every acknowledged write must be there with its data.
//! Rounds: `FK_CRASH_ROUNDS` (default 6). Seed: `FK_CRASH_SEED`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(config: &Path, port: u16, log: &Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start: {}", std::fs::read_to_string(log).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

struct Client {
    stream: TcpStream,
    input: BytesMut,
    xid: i32,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let request = ConnectRequest {
            timeout: 30_000,
            passwd: Some(Bytes::from_static(&[0; 16])),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        frame::write(&mut out, |b| request.write(b));
        stream.write_all(&out)?;
        let mut client = Client { stream, input: BytesMut::new(), xid: 0 };
        let payload = client.read_frame()?;
        let response = ConnectResponse::decode(&payload).map_err(std::io::Error::other)?;
        assert_ne!(response.session_id, 0);
        Ok(client)
    }

    fn read_frame(&mut self) -> std::io::Result<Bytes> {
        loop {
            if let Some(n) = frame::check(&self.input, 1 << 24).map_err(std::io::Error::other)? {
                let _ = self.input.split_to(4);
                return Ok(self.input.split_to(n).freeze());
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends all requests, then reads replies in order; stops at the first I/O error and
    /// returns the error codes received so far.
    fn pipeline(&mut self, requests: &[Request]) -> Vec<(i32, Option<Response>)> {
        let mut out = BytesMut::new();
        let first_xid = self.xid + 1;
        for request in requests {
            self.xid += 1;
            frame::write(&mut out, |b| {
                RequestHeader { xid: self.xid, op: request.op() }.write(b);
                request.write_body(b);
            });
        }
        let mut replies = Vec::new();
        if self.stream.write_all(&out).is_err() {
            return replies;
        }
        for (i, request) in requests.iter().enumerate() {
            let Ok(payload) = self.read_frame() else { return replies };
            let header = ReplyHeader::decode(&payload).unwrap();
            assert_eq!(header.xid, first_xid + i as i32, "replies come back in order");
            let body =
                if header.err == 0 { Response::decode(request.op(), &payload[16..]).ok() } else { None };
            replies.push((header.err, body));
        }
        replies
    }
}

/// What the client knows about one key: the last acknowledged value, and values sent after it
/// whose fate is unknown (they may or may not have been made durable).
#[derive(Default)]
struct KeyState {
    acked: Option<String>,
    unknown: Vec<String>,
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let rounds: usize = std::env::var("FK_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let seed: u64 = std::env::var("FK_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test seed {seed} (replay: FK_CRASH_SEED={seed})");
    let mut rng = seed;
    let mut next = move |bound: u64| {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (rng >> 33) % bound
    };
    let dir = std::env::temp_dir().join(format!("fk-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("zoo.cfg");
    std::fs::write(
        &config,
        format!(
            "tickTime=2000\ndataDir={}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\nsnapCount=400\n\
             preAllocSize=1024\n",
            dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut keys: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut counter = 0u64;
    let mut total_acked = 0usize;
    for round in 0..rounds {
        let mut server = start(&config, port, &log);
        verify(&mut keys, port, round);
        // Write until the kill.
        let kill_after = Duration::from_millis(50 + next(400));
        let started = Instant::now();
        let writer = {
            let mut client = Client::connect(port).unwrap();
            if round == 0 {
                let create = Request::Create(CreateRequest {
                    path: "/crash".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 0,
                });
                assert_eq!(client.pipeline(&[create])[0].0, 0);
            }
            client
        };
        let mut client = writer;
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = server.0.kill();
            let _ = server.0.wait();
            server
        });
        loop {
            let mut batch = Vec::new();
            let mut sent = Vec::new();
            for _ in 0..16 {
                counter += 1;
                let value = format!("v{counter}");
                let existing = keys.len() as u64;
                let path = if existing > 0 && next(3) > 0 {
                    keys.keys().nth(next(existing) as usize).cloned().unwrap()
                } else {
                    format!("/crash/k{counter}")
                };
                let data = Some(Bytes::from(value.clone().into_bytes()));
                let request = if keys.contains_key(&path) {
                    Request::SetData(SetDataRequest { path: path.clone(), data, version: -1 })
                } else {
                    Request::Create(CreateRequest {
                        path: path.clone(),
                        data,
                        acl: Acl::open_unsafe(),
                        flags: 0,
                    })
                };
                keys.entry(path.clone()).or_default().unknown.push(value.clone());
                sent.push((path, value));
                batch.push(request);
            }
            let replies = client.pipeline(&batch);
            for ((path, value), (err, _)) in sent.iter().zip(&replies) {
                assert_eq!(*err, 0, "write to {path} failed with {err}");
                let state = keys.get_mut(path).unwrap();
                let position = state.unknown.iter().position(|v| v == value).unwrap();
                state.unknown.drain(..=position);
                state.acked = Some(value.clone());
                total_acked += 1;
            }
            if replies.len() < batch.len() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "server was not killed");
        }
        drop(killer.join().unwrap());
        // Keys never acknowledged and never created stay unknown; drop the ones with no state.
        keys.retain(|_, s| s.acked.is_some() || !s.unknown.is_empty());
    }
    let server = start(&config, port, &log);
    verify(&mut keys, port, rounds);
    drop(server);
    eprintln!("{rounds} SIGKILL rounds, {total_acked} acknowledged writes, all present");
    assert!(total_acked > rounds, "the test wrote too little to mean anything");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every acknowledged value is there (or a later unacknowledged one); keys whose creation
/// was never acknowledged may be missing.
fn verify(keys: &mut BTreeMap<String, KeyState>, port: u16, round: usize) {
    if keys.is_empty() {
        return;
    }
    let mut client = Client::connect(port).unwrap();
    let paths: Vec<String> = keys.keys().cloned().collect();
    for chunk in paths.chunks(256) {
        let requests: Vec<Request> = chunk
            .iter()
            .map(|p| Request::GetData(GetDataRequest { path: p.clone(), watch: false }))
            .collect();
        let replies = client.pipeline(&requests);
        assert_eq!(replies.len(), requests.len());
        for (path, (err, body)) in chunk.iter().zip(replies) {
            let state = keys.get_mut(path).unwrap();
            if err == Code::NoNode.as_i32() {
                assert!(state.acked.is_none(), "round {round}: acknowledged create of {path} lost");
                state.unknown.clear();
                continue;
            }
            assert_eq!(err, 0);
            let Some(Response::GetData(r)) = body else { panic!("no body") };
            let found = String::from_utf8(r.data.unwrap().to_vec()).unwrap();
            let known = state.acked.as_ref() == Some(&found) || state.unknown.contains(&found);
            assert!(known, "round {round}: {path} holds {found}, acknowledged {:?}", state.acked);
            // What is there now is the truth for the next round.
            state.acked = Some(found);
            state.unknown.clear();
        }
    }
    keys.retain(|_, s| s.acked.is_some());
}
