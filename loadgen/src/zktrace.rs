//! Apache ZooKeeper's own records of traffic, turned into fkload traces: transaction logs
//! (`version-2/log.*`, parsed by `ferrokeeper_proto::zkfile::log`, the parser the server's
//! import uses) and the audit log (`audit.enable=true`: one line per write,
//! `session=0x.. user=.. ip=.. operation=create znode=/x znode_type=persistent result=success`).
//!
//! Both record writes only (reads leave no trace in either). What each gives:
//!
//! | | transaction log | audit log |
//! |---|---|---|
//! | time | the leader's `TxnHeader.time` (ms) | the log line's timestamp (ms) |
//! | session | `TxnHeader.clientId` | `session=` |
//! | ops | create (mode: persistent, ephemeral, container, TTL), delete, setData, multi (its sub-ops kept) | create (mode from `znode_type`), delete, setData; a multi appears as its sub-ops |
//! | sizes | the data written | none (replayed empty) |
//! | failed writes | error txns, without the op: not replayable | `result=failure` lines, replayed (they will likely fail again) |
//!
//! Not replayed and counted in [`Converted::skipped`]: session creation and close (the replay
//! uses its own sessions), setACL, reconfig, error txns, and audit lines of other operations.
//! A sequential create is logged with the name it got; replay creates exactly that name (so
//! later ops on it find it), without the sequential flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrokeeper_proto::txn::Txn;
use ferrokeeper_proto::zkfile;

use crate::trace::{TraceEvent, TraceSubOp};

/// A converted trace and what was left out of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Converted {
    /// Events in time order, `t_us` from the first one.
    pub events: Vec<TraceEvent>,
    /// What was not turned into events, by kind (e.g. `createSession`, `error`, `setACL`).
    pub skipped: BTreeMap<String, u64>,
}

impl Converted {
    /// Events by op name (`multi` counts once however many sub-ops it holds).
    pub fn op_counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ev in &self.events {
            *out.entry(ev.op.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// What kind of file `bytes` is, judged by its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ZkLog,
    AuditLog,
    FkloadTrace,
}

/// A ZooKeeper log starts with "ZKLG"; an fkload trace's first line is a JSON object; a file
/// with an `operation=` key in its first lines is an audit log.
pub fn kind_of(bytes: &[u8]) -> Kind {
    if bytes.starts_with(&zkfile::log::MAGIC.to_be_bytes()) {
        return Kind::ZkLog;
    }
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(head);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if !first.starts_with('{') && text.lines().take(1000).any(|l| l.contains("operation=")) {
        Kind::AuditLog
    } else {
        Kind::FkloadTrace
    }
}

/// The `log.<zxid>` files of a directory (or of its `version-2/`), in zxid order.
pub fn log_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = if dir.join("version-2").is_dir() { dir.join("version-2") } else { dir.to_owned() };
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(zxid) = zkfile::zxid_from_name(&name, "log") {
            logs.push((zxid, entry.path()));
        }
    }
    anyhow::ensure!(!logs.is_empty(), "{}: no ZooKeeper log.* files", dir.display());
    logs.sort();
    Ok(logs.into_iter().map(|(_, p)| p).collect())
}

/// Converts ZooKeeper log files, read in the given order (a txn at or below a zxid already
/// seen is skipped, as when two files overlap).
pub fn from_zk_logs(files: &[PathBuf]) -> anyhow::Result<Converted> {
    let mut out = Converted::default();
    let mut last_zxid = i64::MIN;
    let mut t0: Option<i64> = None;
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        let (entries, _end) = zkfile::log::decode(&bytes)
            .map_err(|(offset, why)| anyhow::anyhow!("{}: at offset {offset}: {why}", file.display()))?;
        for entry in entries {
            if entry.header.zxid <= last_zxid {
                continue;
            }
            last_zxid = entry.header.zxid;
            let start = *t0.get_or_insert(entry.header.time);
            let t_us = (entry.header.time - start).max(0) as u64 * 1000;
            match event_of_txn(&entry.txn) {
                Ok(mut ev) => {
                    ev.t_us = t_us;
                    ev.session = Some(entry.header.client_id);
                    out.events.push(ev);
                }
                Err(kind) => *out.skipped.entry(kind.to_owned()).or_insert(0) += 1,
            }
        }
    }
    out.events.sort_by_key(|e| e.t_us);
    Ok(out)
}

fn event(op: &str, path: &str, size: usize, mode: Option<&str>, ttl: Option<i64>) -> TraceEvent {
    TraceEvent {
        t_us: 0,
        op: op.to_owned(),
        path: path.to_owned(),
        size,
        latency_us: 0,
        session: None,
        mode: mode.map(str::to_owned),
        ttl,
        ops: Vec::new(),
    }
}

/// One txn as an event, or the name of what it is when it is not replayed.
fn event_of_txn(txn: &Txn) -> Result<TraceEvent, &'static str> {
    let len = |data: &Option<bytes::Bytes>| data.as_ref().map_or(0, |d| d.len());
    Ok(match txn {
        Txn::Create { txn, .. } => {
            let mode = if txn.ephemeral { "ephemeral" } else { "persistent" };
            event("create", &txn.path, len(&txn.data), Some(mode), None)
        }
        Txn::CreateContainer(txn) => event("create", &txn.path, len(&txn.data), Some("container"), None),
        Txn::CreateTtl(txn) => event("create", &txn.path, len(&txn.data), Some("ttl"), Some(txn.ttl)),
        Txn::Delete { txn, .. } => event("delete", &txn.path, 0, None, None),
        Txn::SetData(txn) => event("set", &txn.path, len(&txn.data), None, None),
        Txn::Check(txn) => event("check", &txn.path, 0, None, None),
        Txn::Multi(subs) => {
            let mut ev = event("multi", "", 0, None, None);
            for sub in subs {
                // A multi that failed is logged as a multi of error txns: nothing to replay.
                let sub = event_of_txn(sub).map_err(|_| "multi (failed)")?;
                ev.size += sub.size;
                ev.ops.push(TraceSubOp {
                    op: sub.op,
                    path: sub.path,
                    size: sub.size,
                    mode: sub.mode,
                    ttl: sub.ttl,
                });
            }
            if let Some(first) = ev.ops.first() {
                ev.path = first.path.clone();
            }
            ev
        }
        Txn::SetAcl(_) => return Err("setACL"),
        Txn::CreateSession(_) => return Err("createSession"),
        Txn::CloseSession(_) => return Err("closeSession"),
        Txn::Error(_) => return Err("error"),
    })
}

/// Converts an audit log's text (lines without an `operation=` key are not audit lines and are
/// ignored; an audit line whose timestamp cannot be read is an error naming the line).
pub fn from_audit_log(text: &str, name: &Path) -> anyhow::Result<Converted> {
    let mut out = Converted::default();
    let mut t0: Option<i64> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("operation=") else { continue };
        // The key=value fields start with `session=` (client operations) or `user=`.
        let start = ["session=", "user="].iter().filter_map(|k| line.find(k)).min().unwrap_or(at);
        let fields: BTreeMap<&str, &str> =
            line[start..].split('\t').filter_map(|f| f.trim().split_once('=')).collect();
        let ms = timestamp_ms(line).ok_or_else(|| {
            anyhow::anyhow!(
                "{}:{}: an audit line without a timestamp ('YYYY-MM-DD HH:MM:SS,mmm' first)",
                name.display(),
                i + 1
            )
        })?;
        let operation = fields.get("operation").copied().unwrap_or_default();
        let path = fields.get("znode").copied().unwrap_or_default();
        let ev = match operation {
            "create" => {
                let (mode, ttl) = match fields.get("znode_type").copied().unwrap_or("persistent") {
                    "ephemeral" | "ephemeral_sequential" => ("ephemeral", None),
                    "container" => ("container", None),
                    t if t.contains("ttl") => ("ttl", Some(60_000)),
                    _ => ("persistent", None),
                };
                event("create", path, 0, Some(mode), ttl)
            }
            "delete" => event("delete", path, 0, None, None),
            "setData" => event("set", path, 0, None, None),
            other => {
                *out.skipped.entry(other.to_owned()).or_insert(0) += 1;
                continue;
            }
        };
        if path.is_empty() || !path.starts_with('/') {
            *out.skipped.entry(format!("{operation} (no znode)")).or_insert(0) += 1;
            continue;
        }
        let start_ms = *t0.get_or_insert(ms);
        let mut ev = ev;
        ev.t_us = (ms - start_ms).max(0) as u64 * 1000;
        ev.session = fields.get("session").and_then(|s| parse_session(s));
        out.events.push(ev);
    }
    // Lines are written in time order; a stable sort keeps same-millisecond lines in file order.
    out.events.sort_by_key(|e| e.t_us);
    Ok(out)
}

fn parse_session(text: &str) -> Option<i64> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Milliseconds since 1970 of a line starting `YYYY-MM-DD HH:MM:SS,mmm` (log4j's ISO8601; a
/// `T` between date and time and a `.` before the milliseconds are accepted too). The zone is
/// not known and not needed: only differences are used.
pub fn timestamp_ms(line: &str) -> Option<i64> {
    let b = line.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = line.get(from..from + len)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let ms = if b.len() >= 23 && (b[19] == b',' || b[19] == b'.') { num(20, 3)? } else { 0 };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some((((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The create mode a trace names.
pub fn create_mode(mode: Option<&str>) -> ferrokeeper_client::CreateMode {
    use ferrokeeper_client::CreateMode;
    match mode {
        Some("ephemeral") => CreateMode::Ephemeral,
        Some("container") => CreateMode::Container,
        Some("ttl") => CreateMode::PersistentWithTtl,
        _ => CreateMode::Persistent,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferrokeeper_proto::op;
    use ferrokeeper_proto::txn::{CreateTxn, DeleteTxn, ErrorTxn, SetDataTxn, TxnHeader};

    #[test]
    fn timestamps_and_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let a = timestamp_ms("2026-11-29 11:40:51,090 INFO audit").unwrap();
        let b = timestamp_ms("2026-11-29T11:40:52.824 x").unwrap();
        assert_eq!(b - a, 1734);
        assert_eq!(timestamp_ms("INFO 2026-11-29"), None);
        assert_eq!(timestamp_ms("2026-13-29 11:40:51,090"), None);
    }

    #[test]
    fn audit_lines_become_events() {
        let text = "2026-11-29 11:40:47,380 INFO audit.Slf4jAuditLogger: user=root\toperation=serverStart\tresult=success\n\
            2026-11-29 11:40:51,090 INFO audit.Slf4jAuditLogger: session=0x100008c982e0000\tuser=127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/b\tznode_type=persistent\tresult=success\n\
            2026-11-29 11:40:51,911 INFO audit.Slf4jAuditLogger: session=0x100008c982e0001\tuser=127.0.0.1\tip=127.0.0.1\toperation=create\tznode=/b/x0000000000\tznode_type=ephemeral_sequential\tresult=success\n\
            some other line\n\
            2026-11-29 11:40:52,824 INFO audit.Slf4jAuditLogger: session=0x100008c982e0002\tuser=127.0.0.1\tip=127.0.0.1\toperation=setData\tznode=/b\tresult=success\n\
            2026-11-29 11:40:54,112 ERROR audit.Slf4jAuditLogger: session=0x100008c982e0004\tuser=127.0.0.1\tip=127.0.0.1\toperation=delete\tznode=/b/nonexist\tresult=failure\n";
        assert_eq!(kind_of(text.as_bytes()), Kind::AuditLog);
        let c = from_audit_log(text, Path::new("audit.log")).unwrap();
        let ops: Vec<(&str, &str, u64)> =
            c.events.iter().map(|e| (e.op.as_str(), e.path.as_str(), e.t_us)).collect();
        assert_eq!(
            ops,
            [
                ("create", "/b", 0),
                ("create", "/b/x0000000000", 821_000),
                ("set", "/b", 1_734_000),
                ("delete", "/b/nonexist", 3_022_000)
            ]
        );
        assert_eq!(c.events[1].mode.as_deref(), Some("ephemeral"));
        assert_eq!(c.events[0].session, Some(0x100008c982e0000));
        assert_eq!(c.skipped.get("serverStart"), Some(&1));
        let bad = "11:40 operation=create znode=/x\n";
        let e = from_audit_log(bad, Path::new("a.log")).unwrap_err().to_string();
        assert!(e.contains("a.log:1"), "{e}");
    }

    #[test]
    fn log_txns_become_events() {
        let h = |zxid: i64, time: i64, t: i32| TxnHeader { client_id: 7, cxid: 1, zxid, time, txn_type: t };
        let create = Txn::Create {
            op: op::CREATE,
            txn: CreateTxn {
                path: "/a".into(),
                data: Some(vec![1u8; 5].into()),
                acl: vec![],
                ephemeral: false,
                parent_c_version: 1,
            },
        };
        let multi = Txn::Multi(vec![
            Txn::SetData(SetDataTxn { path: "/a".into(), data: Some(vec![2u8; 3].into()), version: 1 }),
            Txn::Delete { op: op::DELETE, txn: DeleteTxn { path: "/a".into() } },
        ]);
        let mut bytes = Vec::new();
        zkfile::log::encode_header(&mut bytes);
        zkfile::log::encode_entry(&mut bytes, &h(1, 1000, op::CREATE), &create);
        zkfile::log::encode_entry(&mut bytes, &h(2, 1005, op::MULTI), &multi);
        zkfile::log::encode_entry(&mut bytes, &h(3, 1010, -1), &Txn::Error(ErrorTxn { err: -101 }));
        assert_eq!(kind_of(&bytes), Kind::ZkLog);
        let dir = std::env::temp_dir().join(format!("fkload-zktrace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("log.1");
        std::fs::write(&file, &bytes).unwrap();
        let c = from_zk_logs(&log_files(&dir).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.events.len(), 2);
        assert_eq!((c.events[0].op.as_str(), c.events[0].size, c.events[0].session), ("create", 5, Some(7)));
        assert_eq!((c.events[1].op.as_str(), c.events[1].t_us, c.events[1].ops.len()), ("multi", 5000, 2));
        assert_eq!(c.skipped.get("error"), Some(&1));
    }
}
