//! `multi` and `multiRead`: a sequence of (MultiHeader + op record) ended by
//! `MultiHeader{-1, true, -1}`; results likewise (reference §1.7).

use bytes::BufMut;

use crate::jute::{DecodeError, Jute, Reader};
use crate::op;
use crate::records::*;

/// One operation inside a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// create (1), create2 (15) or createContainer (19); `op` keeps which.
    Create {
        op: i32,
        request: CreateRequest,
    },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetChildren(GetChildrenRequest),
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn op(&self) -> i32 {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::CreateTtl(_) => op::CREATE_TTL,
            MultiOp::Delete(_) => op::DELETE,
            MultiOp::SetData(_) => op::SET_DATA,
            MultiOp::Check(_) => op::CHECK,
            MultiOp::GetChildren(_) => op::GET_CHILDREN,
            MultiOp::GetData(_) => op::GET_DATA,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { request, .. } => &request.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiOp::Create { request, .. } => request.write(out),
            MultiOp::CreateTtl(r) => r.write(out),
            MultiOp::Delete(r) => r.write(out),
            MultiOp::SetData(r) => r.write(out),
            MultiOp::Check(r) => r.write(out),
            MultiOp::GetChildren(r) => r.write(out),
            MultiOp::GetData(r) => r.write(out),
        }
    }

    fn read_body(op_code: i32, r: &mut Reader<'_>) -> Result<MultiOp, DecodeError> {
        Ok(match op_code {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => {
                MultiOp::Create { op: op_code, request: CreateRequest::read(r)? }
            }
            op::CREATE_TTL => MultiOp::CreateTtl(CreateTtlRequest::read(r)?),
            op::DELETE | op::DELETE_CONTAINER => MultiOp::Delete(DeleteRequest::read(r)?),
            op::SET_DATA => MultiOp::SetData(SetDataRequest::read(r)?),
            op::CHECK => MultiOp::Check(CheckVersionRequest::read(r)?),
            op::GET_CHILDREN => MultiOp::GetChildren(GetChildrenRequest::read(r)?),
            op::GET_DATA => MultiOp::GetData(GetDataRequest::read(r)?),
            other => return Err(DecodeError::Invalid(format!("invalid type of op in multi: {other}"))),
        })
    }
}

/// The body of a multi (14) or multiRead (22) request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRequest {
    pub ops: Vec<MultiOp>,
}

const DONE: MultiHeader = MultiHeader { op: -1, done: true, err: -1 };

impl Jute for MultiRequest {
    fn write<B: BufMut>(&self, out: &mut B) {
        for op in &self.ops {
            MultiHeader { op: op.op(), done: false, err: -1 }.write(out);
            op.write_body(out);
        }
        DONE.write(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut ops = Vec::new();
        loop {
            let header = MultiHeader::read(r)?;
            if header.done {
                return Ok(MultiRequest { ops });
            }
            ops.push(MultiOp::read_body(header.op, r)?);
        }
    }
}

/// One result of a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create { path: String },
    Create2 { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetChildren { children: Vec<String> },
    GetData { data: Buffer, stat: Stat },
    Error { err: i32 },
}

impl OpResult {
    pub fn op(&self) -> i32 {
        match self {
            OpResult::Create { .. } => op::CREATE,
            OpResult::Create2 { .. } => op::CREATE2,
            OpResult::Delete => op::DELETE,
            OpResult::SetData { .. } => op::SET_DATA,
            OpResult::Check => op::CHECK,
            OpResult::GetChildren { .. } => op::GET_CHILDREN,
            OpResult::GetData { .. } => op::GET_DATA,
            OpResult::Error { .. } => op::ERROR,
        }
    }
}

/// The body of a multi / multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiResponse {
    pub results: Vec<OpResult>,
}

impl Jute for MultiResponse {
    fn write<B: BufMut>(&self, out: &mut B) {
        for result in &self.results {
            let err = match result {
                OpResult::Error { err } => *err,
                _ => 0,
            };
            MultiHeader { op: result.op(), done: false, err }.write(out);
            match result {
                OpResult::Create { path } => path.write(out),
                OpResult::Create2 { path, stat } => {
                    path.write(out);
                    stat.write(out);
                }
                OpResult::Delete | OpResult::Check => {}
                OpResult::SetData { stat } => stat.write(out),
                OpResult::GetChildren { children } => children.write(out),
                OpResult::GetData { data, stat } => {
                    data.write(out);
                    stat.write(out);
                }
                OpResult::Error { err } => err.write(out),
            }
        }
        DONE.write(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::read(r)?;
            if header.done {
                return Ok(MultiResponse { results });
            }
            let result = match header.op {
                op::CREATE => OpResult::Create { path: String::read(r)? },
                op::CREATE2 => OpResult::Create2 { path: String::read(r)?, stat: Stat::read(r)? },
                op::DELETE => OpResult::Delete,
                op::SET_DATA => OpResult::SetData { stat: Stat::read(r)? },
                op::CHECK => OpResult::Check,
                op::GET_CHILDREN => OpResult::GetChildren { children: Vec::read(r)? },
                op::GET_DATA => OpResult::GetData { data: Option::read(r)?, stat: Stat::read(r)? },
                op::ERROR => OpResult::Error { err: r.read_i32()? },
                other => {
                    return Err(DecodeError::Invalid(format!("invalid type of result in multi: {other}")));
                }
            };
            results.push(result);
        }
    }
}
