//! Transactions: what a write becomes once validated, what the log stores and what the
//! quorum replicates. Types and records follow `zookeeper.jute` (`TxnHeader`, `CreateTxn`, …).

use bytes::{BufMut, Bytes};

use crate::jute::{DecodeError, Jute, Reader};
use crate::op;
use crate::record;
use crate::records::{Acl, Buffer};

record! {
    pub struct TxnHeader {
        /// The session that issued the write (`clientId`).
        pub client_id: i64,
        pub cxid: i32,
        pub zxid: i64,
        /// Milliseconds since the epoch, stamped by the server that assigned the zxid.
        pub time: i64,
        pub txn_type: i32,
    }
}

record! {
    pub struct CreateTxn {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        pub ephemeral: bool,
        pub parent_c_version: i32,
    }
}
record! {
    pub struct CreateContainerTxn {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        pub parent_c_version: i32,
    }
}
record! {
    pub struct CreateTtlTxn {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        pub parent_c_version: i32,
        pub ttl: i64,
    }
}
record! { pub struct DeleteTxn { pub path: String } }
record! { pub struct SetDataTxn { pub path: String, pub data: Buffer, pub version: i32 } }
record! { pub struct CheckVersionTxn { pub path: String, pub version: i32 } }
record! { pub struct SetAclTxn { pub path: String, pub acl: Vec<Acl>, pub version: i32 } }
record! { pub struct CreateSessionTxn { pub time_out: i32 } }
record! { pub struct CloseSessionTxn { pub paths_to_delete: Vec<String> } }
record! { pub struct ErrorTxn { pub err: i32 } }
record! { pub struct MultiTxnEntry { pub txn_type: i32, pub data: Buffer } }

/// A typed transaction body; `txn_type()` is the `TxnHeader.type` it is logged under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// create (1) or create2 (15), and ephemeral creates.
    Create {
        op: i32,
        txn: CreateTxn,
    },
    CreateContainer(CreateContainerTxn),
    CreateTtl(CreateTtlTxn),
    /// delete (2) or deleteContainer (20).
    Delete {
        op: i32,
        txn: DeleteTxn,
    },
    SetData(SetDataTxn),
    SetAcl(SetAclTxn),
    Check(CheckVersionTxn),
    CreateSession(CreateSessionTxn),
    CloseSession(CloseSessionTxn),
    Error(ErrorTxn),
    /// Sub-transactions all share the multi's zxid; none of them is itself a multi.
    Multi(Vec<Txn>),
}

impl Txn {
    pub fn txn_type(&self) -> i32 {
        match self {
            Txn::Create { op, .. } => *op,
            Txn::CreateContainer(_) => op::CREATE_CONTAINER,
            Txn::CreateTtl(_) => op::CREATE_TTL,
            Txn::Delete { op, .. } => *op,
            Txn::SetData(_) => op::SET_DATA,
            Txn::SetAcl(_) => op::SET_ACL,
            Txn::Check(_) => op::CHECK,
            Txn::CreateSession(_) => op::CREATE_SESSION,
            Txn::CloseSession(_) => op::CLOSE_SESSION,
            Txn::Error(_) => op::ERROR,
            Txn::Multi(_) => op::MULTI,
        }
    }

    pub fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Txn::Create { txn, .. } => txn.write(out),
            Txn::CreateContainer(t) => t.write(out),
            Txn::CreateTtl(t) => t.write(out),
            Txn::Delete { txn, .. } => txn.write(out),
            Txn::SetData(t) => t.write(out),
            Txn::SetAcl(t) => t.write(out),
            Txn::Check(t) => t.write(out),
            Txn::CreateSession(t) => t.write(out),
            Txn::CloseSession(t) => t.write(out),
            Txn::Error(t) => t.write(out),
            Txn::Multi(txns) => {
                let entries: Vec<MultiTxnEntry> = txns
                    .iter()
                    .map(|t| {
                        let mut body = Vec::new();
                        t.write_body(&mut body);
                        MultiTxnEntry { txn_type: t.txn_type(), data: Some(Bytes::from(body)) }
                    })
                    .collect();
                entries.write(out);
            }
        }
    }

    pub fn read_body(txn_type: i32, r: &mut Reader<'_>) -> Result<Txn, DecodeError> {
        Self::read_typed(txn_type, r, true)
    }

    fn read_typed(txn_type: i32, r: &mut Reader<'_>, allow_multi: bool) -> Result<Txn, DecodeError> {
        Ok(match txn_type {
            op::CREATE | op::CREATE2 => Txn::Create { op: txn_type, txn: Jute::read(r)? },
            op::CREATE_CONTAINER => Txn::CreateContainer(Jute::read(r)?),
            op::CREATE_TTL => Txn::CreateTtl(Jute::read(r)?),
            op::DELETE | op::DELETE_CONTAINER => Txn::Delete { op: txn_type, txn: Jute::read(r)? },
            op::SET_DATA => Txn::SetData(Jute::read(r)?),
            op::SET_ACL => Txn::SetAcl(Jute::read(r)?),
            op::CHECK => Txn::Check(Jute::read(r)?),
            op::CREATE_SESSION => Txn::CreateSession(Jute::read(r)?),
            op::CLOSE_SESSION => {
                // Old logs end a closeSession txn with no body.
                if r.remaining() == 0 {
                    Txn::CloseSession(CloseSessionTxn::default())
                } else {
                    Txn::CloseSession(Jute::read(r)?)
                }
            }
            op::ERROR => Txn::Error(Jute::read(r)?),
            op::MULTI if allow_multi => {
                let entries: Vec<MultiTxnEntry> = Jute::read(r)?;
                let mut txns = Vec::with_capacity(entries.len());
                for entry in entries {
                    let data = entry.data.unwrap_or_default();
                    txns.push(Self::read_typed(entry.txn_type, &mut Reader::new(&data), false)?);
                }
                Txn::Multi(txns)
            }
            other => return Err(DecodeError::Invalid(format!("unknown txn type {other}"))),
        })
    }
}

/// A header and its body: one logged / replicated transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub header: TxnHeader,
    pub txn: Txn,
}

impl Jute for TxnRecord {
    const MIN_ENCODED_LEN: usize = 32;
    fn write<B: BufMut>(&self, out: &mut B) {
        debug_assert_eq!(self.header.txn_type, self.txn.txn_type());
        self.header.write(out);
        self.txn.write_body(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = TxnHeader::read(r)?;
        let txn = Txn::read_body(header.txn_type, r)?;
        Ok(TxnRecord { header, txn })
    }
}
