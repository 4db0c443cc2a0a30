//! A successful reply body, typed. On error ZooKeeper sends the ReplyHeader alone.

use bytes::BufMut;

use crate::jute::{DecodeError, Jute, Reader};
use crate::multi::MultiResponse;
use crate::op;
use crate::records::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A reply with no body (delete, setWatches, removeWatches, checkWatches, auth, ping,
    /// closeSession).
    Empty,
    Create(CreateResponse),
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    Multi(MultiResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    WhoAmI(WhoAmIResponse),
    /// addWatch answers with an ErrorResponse carrying 0.
    AddWatch(ErrorResponse),
    /// A SASL token (a null token when the server has nothing to say).
    Sasl(SetSaslResponse),
}

impl Response {
    pub fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.write(out),
            Response::Create2(r) => r.write(out),
            Response::Exists(r) => r.write(out),
            Response::GetData(r) => r.write(out),
            Response::SetData(r) => r.write(out),
            Response::GetAcl(r) => r.write(out),
            Response::SetAcl(r) => r.write(out),
            Response::GetChildren(r) => r.write(out),
            Response::GetChildren2(r) => r.write(out),
            Response::Sync(r) => r.write(out),
            Response::Multi(r) => r.write(out),
            Response::GetEphemerals(r) => r.write(out),
            Response::GetAllChildrenNumber(r) => r.write(out),
            Response::WhoAmI(r) => r.write(out),
            Response::AddWatch(r) => r.write(out),
            Response::Sasl(r) => r.write(out),
        }
    }

    /// Decodes a success body for a request sent with opcode `op_code` (client side).
    pub fn decode(op_code: i32, body: &[u8]) -> Result<Response, DecodeError> {
        let r = &mut Reader::new(body);
        Ok(match op_code {
            op::CREATE => Response::Create(Jute::read(r)?),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2(Jute::read(r)?),
            op::EXISTS => Response::Exists(Jute::read(r)?),
            op::GET_DATA => Response::GetData(Jute::read(r)?),
            op::SET_DATA => Response::SetData(Jute::read(r)?),
            op::GET_ACL => Response::GetAcl(Jute::read(r)?),
            op::SET_ACL => Response::SetAcl(Jute::read(r)?),
            op::GET_CHILDREN => Response::GetChildren(Jute::read(r)?),
            op::GET_CHILDREN2 => Response::GetChildren2(Jute::read(r)?),
            op::SYNC => Response::Sync(Jute::read(r)?),
            op::MULTI | op::MULTI_READ => Response::Multi(Jute::read(r)?),
            op::GET_EPHEMERALS => Response::GetEphemerals(Jute::read(r)?),
            op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber(Jute::read(r)?),
            op::WHO_AM_I => Response::WhoAmI(Jute::read(r)?),
            op::ADD_WATCH => Response::AddWatch(Jute::read(r)?),
            op::SASL => Response::Sasl(Jute::read(r)?),
            _ => Response::Empty,
        })
    }
}
