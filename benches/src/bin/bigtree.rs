//! `bigtree`: the tools of `scripts/bench-bigtree.sh`.
//!
//! - `gen`: writes an Apache ZooKeeper snapshot (`<out>/version-2/snapshot.<zxid>`) of a big
//!   tree, so that ZooKeeper and ferrokeeper (through `ferrokeeper import-zookeeper`) start on
//!   the very same tree without hours of creates: `/bench/wide` with `--wide` children (one
//!   parent, names padded so each path is ~100 bytes) and `/bench/deep/<a>/<b>/<c>/<leaf>`
//!   with `--deep` leaves (four levels of ~22-byte names: ~100-byte paths); every node holds
//!   `--data-bytes` bytes.
//! - `children`: one getChildren over a raw session that accepts a reply of any length, and
//!   what came back: the reply's error code and size, or the connection's end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use clap::{Parser, Subcommand};
use ferrokeeper_proto::StatPersisted;
use ferrokeeper_proto::jute::Jute;
use ferrokeeper_proto::zkfile::{adler32, snap};

#[derive(Parser)]
#[command(name = "bigtree", about = "Big-tree benchmark tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a ZooKeeper snapshot of a big tree.
    Gen {
        #[arg(long)]
        wide: u64,
        #[arg(long)]
        deep: u64,
        #[arg(long, default_value_t = 50)]
        data_bytes: usize,
        /// ZooKeeper dataDir to create (`version-2/` inside).
        #[arg(long)]
        out: PathBuf,
    },
    /// One getChildren of PATH on 127.0.0.1:PORT, any reply size accepted.
    Children {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        path: String,
    },
}

/// The zxid every generated node carries (epoch 1, counter 1) and the snapshot's name.
const ZXID: i64 = 0x1_0000_0001;
const TIME_MS: i64 = 1_700_000_000_000;
/// Leaves per inner node of the deep part.
const FANOUT: u64 = 30;

fn stat(children: u64) -> StatPersisted {
    StatPersisted {
        czxid: ZXID,
        mzxid: ZXID,
        ctime: TIME_MS,
        mtime: TIME_MS,
        version: 0,
        cversion: children as i32,
        aversion: 0,
        ephemeral_owner: 0,
        pzxid: ZXID,
    }
}

struct Writer {
    out: Vec<u8>,
    data: Bytes,
    nodes: u64,
}

impl Writer {
    fn node(&mut self, path: &str, data: bool, children: u64) {
        path.to_owned().write(&mut self.out);
        let data = if data { Some(self.data.clone()) } else { Some(Bytes::new()) };
        data.write(&mut self.out);
        // -1: OPEN_ACL_UNSAFE, not in the ACL cache.
        self.out.put_i64(-1);
        stat(children).write(&mut self.out);
        self.nodes += 1;
    }
}

fn generate(wide: u64, deep: u64, data_bytes: usize, out: &std::path::Path) -> std::io::Result<u64> {
    let mut w =
        Writer { out: Vec::with_capacity(1 << 20), data: Bytes::from(vec![b'd'; data_bytes]), nodes: 0 };
    w.out.put_i32(snap::MAGIC);
    w.out.put_i32(snap::VERSION);
    w.out.put_i64(-1);
    w.out.put_i32(0); // sessions
    w.out.put_i32(0); // ACL cache (every node uses -1)
    w.node("", false, 2);
    w.node("/zookeeper", false, 1);
    w.node("/zookeeper/quota", false, 0);
    w.node("/bench", false, 2);
    w.node("/bench/wide", false, wide);
    for i in 0..wide {
        // "/bench/wide/" (12) + 88 = 100 bytes.
        w.node(&format!("/bench/wide/w{i:0>87}"), true, 0);
    }
    // Deep: /bench/deep/<a>/<b>/<c>/<leaf>, FANOUT leaves per <c>, FANOUT <c> per <b>, ...
    let per_c = FANOUT;
    let cs = deep.div_ceil(per_c);
    let bs = cs.div_ceil(FANOUT);
    let as_ = bs.div_ceil(FANOUT);
    w.node("/bench/deep", false, as_);
    let mut leaf = 0u64;
    'a: for a in 0..as_ {
        let pa = format!("/bench/deep/a{a:0>21}");
        let b_here = (bs - a * FANOUT).min(FANOUT);
        w.node(&pa, false, b_here);
        for b in 0..b_here {
            let pb = format!("{pa}/b{b:0>21}");
            let c_first = (a * FANOUT + b) * FANOUT;
            let c_here = cs.saturating_sub(c_first).min(FANOUT);
            w.node(&pb, false, c_here);
            for c in 0..c_here {
                let pc = format!("{pb}/c{c:0>21}");
                let l_here = (deep - leaf).min(per_c);
                w.node(&pc, false, l_here);
                for l in 0..l_here {
                    w.node(&format!("{pc}/l{l:0>21}"), true, 0);
                }
                leaf += l_here;
                if leaf >= deep {
                    break 'a;
                }
            }
        }
    }
    "/".to_owned().write(&mut w.out);
    let sum = adler32(&w.out);
    w.out.put_i64(i64::from(sum));
    "/".to_owned().write(&mut w.out);
    let dir = out.join("version-2");
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::File::create(dir.join(format!("snapshot.{ZXID:x}")))?;
    file.write_all(&w.out)?;
    file.sync_all()?;
    Ok(w.nodes)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.put_i32(payload.len() as i32);
    out.extend_from_slice(payload);
    out
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if len < 0 {
        return Err(std::io::Error::other(format!("negative frame length {len}")));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    Ok(body)
}

fn children(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
    let mut connect = Vec::new();
    connect.put_i32(0);
    connect.put_i64(0);
    connect.put_i32(30_000);
    connect.put_i64(0);
    connect.put_i32(16);
    connect.extend_from_slice(&[0u8; 16]);
    connect.put_u8(0);
    s.write_all(&frame(&connect))?;
    read_frame(&mut s)?;
    // getChildren (8): xid, type, path, watch.
    let mut request = Vec::new();
    request.put_i32(1);
    request.put_i32(8);
    path.to_owned().write(&mut request);
    request.put_u8(0);
    let start = Instant::now();
    s.write_all(&frame(&request))?;
    match read_frame(&mut s) {
        Ok(reply) if reply.len() >= 16 => {
            let err = i32::from_be_bytes(reply[12..16].try_into().unwrap_or_default());
            let count = if err == 0 && reply.len() >= 20 {
                i32::from_be_bytes(reply[16..20].try_into().unwrap_or_default())
            } else {
                0
            };
            Ok(format!(
                "reply err={err} frame_bytes={} children={count} after_ms={}",
                reply.len(),
                start.elapsed().as_millis()
            ))
        }
        Ok(reply) => Ok(format!("short reply of {} bytes", reply.len())),
        Err(e) => Ok(format!("no reply: {e} (after {} ms)", start.elapsed().as_millis())),
    }
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Gen { wide, deep, data_bytes, out } => {
            generate(wide, deep, data_bytes, &out).map(|n| format!("nodes={n}"))
        }
        Cmd::Children { port, path } => children(port, &path),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bigtree: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_snapshot_is_the_tree_described() {
        let dir = std::env::temp_dir().join(format!("bigtree-gen-{}", std::process::id()));
        let nodes = generate(50, 1000, 50, &dir).unwrap();
        let bytes = std::fs::read(dir.join(format!("version-2/snapshot.{ZXID:x}"))).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let state = snap::decode(&bytes, ZXID).unwrap();
        let reachable = state.reachable();
        assert_eq!(reachable.len() as u64, nodes);
        assert_eq!(state.nodes["/bench/wide"].children.len(), 50);
        let leaves: Vec<_> =
            reachable.iter().filter(|(p, _)| p.starts_with("/bench/deep/") && p.len() > 90).collect();
        assert_eq!(leaves.len(), 1000);
        for (path, node) in
            reachable.iter().filter(|(p, _)| p.starts_with("/bench/wide/")).chain(leaves.iter().copied())
        {
            assert!((100..=103).contains(&path.len()), "{path}");
            assert_eq!(node.data.as_ref().unwrap().len(), 50);
            assert!(node.children.is_empty());
        }
        // Inner nodes' cversion is their child count, as ZooKeeper's creates would leave it.
        for (_, node) in &reachable {
            assert_eq!(node.stat.cversion as usize, node.children.len());
        }
    }
}
