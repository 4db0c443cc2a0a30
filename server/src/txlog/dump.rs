//! `ferrokeeper log dump` and `ferrokeeper snapshot dump`: records printed one per line.

use std::path::Path;

use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::{Txn, TxnRecord};

use super::format::{Tail, decode_segment_header, scan_segment};
use super::{reader, snapshot};
use crate::tree::TreeConfig;

fn describe(txn: &Txn) -> String {
    let data = |d: &Option<bytes::Bytes>| match d {
        None => "null".to_owned(),
        Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
    };
    match txn {
        Txn::Create { op, txn } => format!(
            "{} {} data={} ephemeral={} parentCVersion={} acl={:?}",
            if *op == 1 { "create" } else { "create2" },
            txn.path,
            data(&txn.data),
            txn.ephemeral,
            txn.parent_c_version,
            txn.acl
        ),
        Txn::CreateContainer(t) => format!("createContainer {} data={}", t.path, data(&t.data)),
        Txn::CreateTtl(t) => format!("createTTL {} data={} ttl={}", t.path, data(&t.data), t.ttl),
        Txn::Delete { op, txn } => {
            format!("{} {}", if *op == 2 { "delete" } else { "deleteContainer" }, txn.path)
        }
        Txn::SetData(t) => format!("setData {} data={} version={}", t.path, data(&t.data), t.version),
        Txn::SetAcl(t) => format!("setACL {} acl={:?} version={}", t.path, t.acl, t.version),
        Txn::Check(t) => format!("check {} version={}", t.path, t.version),
        Txn::CreateSession(t) => format!("createSession timeout={}", t.time_out),
        Txn::CloseSession(t) => format!("closeSession ephemerals={:?}", t.paths_to_delete),
        Txn::Error(t) => format!("error {}", t.err),
        Txn::Multi(txns) => format!("multi [{}]", txns.iter().map(describe).collect::<Vec<_>>().join("; ")),
    }
}

fn print_record(record: &TxnRecord) {
    let h = &record.header;
    println!(
        "zxid=0x{:x} time={} session=0x{:x} cxid=0x{:x} {}",
        h.zxid,
        h.time,
        h.client_id,
        h.cxid,
        describe(&record.txn)
    );
}

/// Dumps one segment file, or every segment of a directory in order.
pub fn log(path: &Path) -> Result<(), String> {
    let files = if path.is_dir() {
        reader::segments(path).map_err(|e| e.to_string())?.into_iter().map(|(_, p)| p).collect()
    } else {
        vec![path.to_owned()]
    };
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let first = decode_segment_header(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        println!("# {} first zxid 0x{first:x}", file.display());
        let scan = scan_segment(&bytes, i64::MIN);
        for r in &scan.records {
            match TxnRecord::decode(&bytes[r.payload.clone()]) {
                Ok(record) => print_record(&record),
                Err(e) => println!("zxid=0x{:x} undecodable: {e}", r.zxid),
            }
        }
        match scan.tail {
            Tail::Clean => println!("# end of data at offset {}", scan.end),
            Tail::Torn { offset } => println!("# torn write at offset {offset} (recovery truncates here)"),
            Tail::Corrupt { offset, reason } => println!("# DAMAGED at offset {offset}: {reason}"),
        }
    }
    Ok(())
}

pub fn snapshot(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tree = snapshot::decode(&bytes, TreeConfig { extended_types_enabled: true, ..TreeConfig::default() })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("# snapshot at zxid 0x{:x}, {} sessions", tree.last_processed_zxid(), tree.sessions().len());
    for (id, timeout) in tree.sessions() {
        println!("session 0x{id:x} timeout={timeout}");
    }
    tree.for_each_node(|path, data, acl, stat| {
        let data = match data {
            None => "null".to_owned(),
            Some(d) => format!("{:?}", String::from_utf8_lossy(d)),
        };
        println!(
            "{path} data={data} czxid=0x{:x} mzxid=0x{:x} pzxid=0x{:x} version={} cversion={} aversion={} \
             ephemeralOwner=0x{:x} acl={acl:?}",
            stat.czxid,
            stat.mzxid,
            stat.pzxid,
            stat.version,
            stat.cversion,
            stat.aversion,
            stat.ephemeral_owner
        );
    });
    Ok(())
}
