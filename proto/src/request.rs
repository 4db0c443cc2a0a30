//! A client request after the handshake, decoded by opcode.

use bytes::BufMut;

use crate::jute::{DecodeError, Jute, Reader};
use crate::multi::MultiRequest;
use crate::op;
use crate::records::*;

/// Every request body the client port accepts, tagged by opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    Sync(SyncRequest),
    Ping,
    Check(CheckVersionRequest),
    Multi(MultiRequest),
    MultiRead(MultiRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    DeleteContainer(DeleteContainerRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

/// Why a request body could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown opcode {0}")]
    UnknownOp(i32),
    #[error("malformed request for opcode {op}: {source}")]
    Malformed { op: i32, source: DecodeError },
}

impl Request {
    /// Decodes the body that followed a `RequestHeader` with opcode `op`.
    pub fn decode(op_code: i32, body: &[u8]) -> Result<Request, RequestError> {
        let mut r = Reader::new(body);
        Self::read_body(op_code, &mut r).map_err(|e| match e {
            ReadError::Unknown => RequestError::UnknownOp(op_code),
            ReadError::Decode(source) => RequestError::Malformed { op: op_code, source },
        })
    }

    fn read_body(op_code: i32, r: &mut Reader<'_>) -> Result<Request, ReadError> {
        Ok(match op_code {
            op::CREATE => Request::Create(Jute::read(r)?),
            op::CREATE2 => Request::Create2(Jute::read(r)?),
            op::CREATE_CONTAINER => Request::CreateContainer(Jute::read(r)?),
            op::CREATE_TTL => Request::CreateTtl(Jute::read(r)?),
            op::DELETE => Request::Delete(Jute::read(r)?),
            op::EXISTS => Request::Exists(Jute::read(r)?),
            op::GET_DATA => Request::GetData(Jute::read(r)?),
            op::SET_DATA => Request::SetData(Jute::read(r)?),
            op::GET_ACL => Request::GetAcl(Jute::read(r)?),
            op::SET_ACL => Request::SetAcl(Jute::read(r)?),
            op::GET_CHILDREN => Request::GetChildren(Jute::read(r)?),
            op::GET_CHILDREN2 => Request::GetChildren2(Jute::read(r)?),
            op::SYNC => Request::Sync(Jute::read(r)?),
            op::PING => Request::Ping,
            op::CHECK => Request::Check(Jute::read(r)?),
            op::MULTI => Request::Multi(Jute::read(r)?),
            op::MULTI_READ => Request::MultiRead(Jute::read(r)?),
            op::RECONFIG => Request::Reconfig(Jute::read(r)?),
            op::CHECK_WATCHES => Request::CheckWatches(Jute::read(r)?),
            op::REMOVE_WATCHES => Request::RemoveWatches(Jute::read(r)?),
            op::DELETE_CONTAINER => Request::DeleteContainer(Jute::read(r)?),
            op::AUTH => Request::Auth(Jute::read(r)?),
            op::SET_WATCHES => Request::SetWatches(Jute::read(r)?),
            op::SET_WATCHES2 => Request::SetWatches2(Jute::read(r)?),
            op::SASL => Request::Sasl(Jute::read(r)?),
            op::GET_EPHEMERALS => Request::GetEphemerals(Jute::read(r)?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(Jute::read(r)?),
            op::ADD_WATCH => Request::AddWatch(Jute::read(r)?),
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            _ => return Err(ReadError::Unknown),
        })
    }

    /// The opcode this request travels under.
    pub fn op(&self) -> i32 {
        match self {
            Request::Create(_) => op::CREATE,
            Request::Create2(_) => op::CREATE2,
            Request::CreateContainer(_) => op::CREATE_CONTAINER,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl(_) => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::DeleteContainer(_) => op::DELETE_CONTAINER,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::SetWatches2(_) => op::SET_WATCHES2,
            Request::Sasl(_) => op::SASL,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Writes the body (without the RequestHeader).
    pub fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.write(out),
            Request::CreateTtl(r) => r.write(out),
            Request::Delete(r) => r.write(out),
            Request::Exists(r) => r.write(out),
            Request::GetData(r) => r.write(out),
            Request::SetData(r) => r.write(out),
            Request::GetAcl(r) => r.write(out),
            Request::SetAcl(r) => r.write(out),
            Request::GetChildren(r) => r.write(out),
            Request::GetChildren2(r) => r.write(out),
            Request::Sync(r) => r.write(out),
            Request::Check(r) => r.write(out),
            Request::Multi(r) | Request::MultiRead(r) => r.write(out),
            Request::Reconfig(r) => r.write(out),
            Request::CheckWatches(r) => r.write(out),
            Request::RemoveWatches(r) => r.write(out),
            Request::DeleteContainer(r) => r.write(out),
            Request::Auth(r) => r.write(out),
            Request::SetWatches(r) => r.write(out),
            Request::SetWatches2(r) => r.write(out),
            Request::Sasl(r) => r.write(out),
            Request::GetEphemerals(r) => r.write(out),
            Request::GetAllChildrenNumber(r) => r.write(out),
            Request::AddWatch(r) => r.write(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }

    /// Whether this request changes the tree or the session table (and so needs a zxid).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Multi(_)
                | Request::DeleteContainer(_)
                | Request::CloseSession
                | Request::Reconfig(_)
        )
    }
}

enum ReadError {
    Unknown,
    Decode(DecodeError),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        ReadError::Decode(e)
    }
}
