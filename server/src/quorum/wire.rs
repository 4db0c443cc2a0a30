//! The bytes of one server-to-server frame: a Zab [`Message`] or one of the shell's own
//! messages (forwarded writes, sync, session touches).
//!
//! ```text
//! frame   = tag u8 | fields (big-endian integers; bytes/strings as u32 length + bytes;
//!                             vectors as u32 count + items; bool as one byte 0/1)
//! ```
//!
//! Decoding never panics: a short, overlong or unknown frame is an error and the caller drops
//! that one message (the consensus protocol tolerates lost messages).

use bytes::{BufMut, Bytes, BytesMut};
use ferrokeeper_proto::Id;

use crate::zab::{Message, PeerState, SyncMode, Vote};

/// Most entries or sessions one frame may claim to hold (a bound against garbage counts).
const ITEMS_MAX: usize = 1 << 24;

/// Everything servers send each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// The consensus protocol.
    Zab(Message),
    /// Follower → leader: a client write (or createSession, op −10, body = timeout i32) to
    /// prep with the caller's session and auth ids and propose. The committed txn carries
    /// (session, cxid) in its header, which is how the follower finds the waiting client.
    /// `trace`: the follower traces this write; the leader's spans join its trace.
    Forward { session: i64, cxid: i32, op: i32, auth: Vec<Id>, body: Bytes, trace: Option<TraceParent> },
    /// Follower → leader: a client's `sync`.
    SyncRequest { session: i64, cxid: i32 },
    /// Leader → follower: the `sync` is answered once the follower has applied `zxid`
    /// (everything the leader proposed before it saw the sync).
    SyncDone { session: i64, cxid: i32, zxid: i64 },
    /// Follower → leader: sessions that showed activity since the last touch.
    Touch { sessions: Vec<i64> },
    /// Follower → leader: a client connected here with this existing session (ZooKeeper's
    /// REVALIDATE): this follower owns it now (SessionMoved for writes from elsewhere).
    Revalidate { session: i64 },
    /// Leader → follower: the leader recorded the follower as the session's owner; the
    /// follower answers the reconnecting client now (as ZooKeeper's follower waits for the
    /// leader's REVALIDATE reply), so the old server's writes are refused from then on.
    Revalidated { session: i64 },
}

/// A W3C trace context's ids: the span a forwarded write continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("undecodable peer message: {0}")]
pub struct WireError(pub &'static str);

mod tag {
    pub const NOTIFICATION: u8 = 1;
    pub const FOLLOWER_INFO: u8 = 2;
    pub const LEADER_INFO: u8 = 3;
    pub const ACK_EPOCH: u8 = 4;
    pub const NEW_LEADER: u8 = 5;
    pub const ACK_NEW_LEADER: u8 = 6;
    pub const UP_TO_DATE: u8 = 7;
    pub const PROPOSAL: u8 = 8;
    pub const ACK: u8 = 9;
    pub const COMMIT: u8 = 10;
    pub const PING: u8 = 11;
    pub const PING_REPLY: u8 = 12;
    pub const INFORM: u8 = 13;
    pub const FORWARD: u8 = 20;
    pub const SYNC_REQUEST: u8 = 21;
    pub const SYNC_DONE: u8 = 22;
    pub const TOUCH: u8 = 23;
    pub const REVALIDATE: u8 = 25;
    pub const REVALIDATED: u8 = 26;
    /// FORWARD followed by a [`super::TraceParent`] (untraced writes keep FORWARD's bytes).
    pub const FORWARD_TRACED: u8 = 24;
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn put_entries(out: &mut BytesMut, entries: &[(i64, Bytes)]) {
    out.put_u32(entries.len() as u32);
    for (zxid, payload) in entries {
        out.put_i64(*zxid);
        put_bytes(out, payload);
    }
}

fn peer_state_code(state: PeerState) -> u8 {
    match state {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
    }
}

impl PeerMessage {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        match self {
            PeerMessage::Zab(message) => encode_zab(&mut out, message),
            PeerMessage::Forward { session, cxid, op, auth, body, trace } => {
                out.put_u8(if trace.is_some() { tag::FORWARD_TRACED } else { tag::FORWARD });
                out.put_i64(*session);
                out.put_i32(*cxid);
                out.put_i32(*op);
                out.put_u32(auth.len() as u32);
                for id in auth {
                    put_bytes(&mut out, id.scheme.as_bytes());
                    put_bytes(&mut out, id.id.as_bytes());
                }
                put_bytes(&mut out, body);
                if let Some(trace) = trace {
                    out.put_u128(trace.trace_id);
                    out.put_u64(trace.span_id);
                }
            }
            PeerMessage::SyncRequest { session, cxid } => {
                out.put_u8(tag::SYNC_REQUEST);
                out.put_i64(*session);
                out.put_i32(*cxid);
            }
            PeerMessage::SyncDone { session, cxid, zxid } => {
                out.put_u8(tag::SYNC_DONE);
                out.put_i64(*session);
                out.put_i32(*cxid);
                out.put_i64(*zxid);
            }
            PeerMessage::Revalidate { session } => {
                out.put_u8(tag::REVALIDATE);
                out.put_i64(*session);
            }
            PeerMessage::Revalidated { session } => {
                out.put_u8(tag::REVALIDATED);
                out.put_i64(*session);
            }
            PeerMessage::Touch { sessions } => {
                out.put_u8(tag::TOUCH);
                out.put_u32(sessions.len() as u32);
                for session in sessions {
                    out.put_i64(*session);
                }
            }
        }
        out.freeze()
    }

    pub fn decode(bytes: &Bytes) -> Result<PeerMessage, WireError> {
        let mut r = Cursor { bytes, at: 0 };
        let message = match r.u8()? {
            forward @ (tag::FORWARD | tag::FORWARD_TRACED) => {
                let session = r.i64()?;
                let cxid = r.i32()?;
                let op = r.i32()?;
                let count = r.count(8)?;
                let mut auth = Vec::with_capacity(count);
                for _ in 0..count {
                    let scheme = r.string()?;
                    let id = r.string()?;
                    auth.push(Id { scheme, id });
                }
                let body = r.bytes()?;
                let trace = if forward == tag::FORWARD_TRACED {
                    let high = r.u64()?;
                    let low = r.u64()?;
                    Some(TraceParent {
                        trace_id: (u128::from(high) << 64) | u128::from(low),
                        span_id: r.u64()?,
                    })
                } else {
                    None
                };
                PeerMessage::Forward { session, cxid, op, auth, body, trace }
            }
            tag::SYNC_REQUEST => PeerMessage::SyncRequest { session: r.i64()?, cxid: r.i32()? },
            tag::SYNC_DONE => PeerMessage::SyncDone { session: r.i64()?, cxid: r.i32()?, zxid: r.i64()? },
            tag::REVALIDATE => PeerMessage::Revalidate { session: r.i64()? },
            tag::REVALIDATED => PeerMessage::Revalidated { session: r.i64()? },
            tag::TOUCH => {
                let count = r.count(8)?;
                let mut sessions = Vec::with_capacity(count);
                for _ in 0..count {
                    sessions.push(r.i64()?);
                }
                PeerMessage::Touch { sessions }
            }
            zab => PeerMessage::Zab(decode_zab(zab, &mut r)?),
        };
        if r.at != bytes.len() {
            return Err(WireError("trailing bytes"));
        }
        Ok(message)
    }
}

fn encode_zab(out: &mut BytesMut, message: &Message) {
    match message {
        Message::Notification { state, vote, election_epoch } => {
            out.put_u8(tag::NOTIFICATION);
            out.put_u8(peer_state_code(*state));
            out.put_i64(vote.epoch);
            out.put_i64(vote.zxid);
            out.put_u64(vote.leader);
            out.put_u64(*election_epoch);
        }
        Message::FollowerInfo { conn, accepted_epoch } => {
            out.put_u8(tag::FOLLOWER_INFO);
            out.put_u64(*conn);
            out.put_i64(*accepted_epoch);
        }
        Message::LeaderInfo { conn, epoch } => {
            out.put_u8(tag::LEADER_INFO);
            out.put_u64(*conn);
            out.put_i64(*epoch);
        }
        Message::AckEpoch { conn, epoch, current_epoch, last_zxid, fresh, log_base, log_ends } => {
            out.put_u8(tag::ACK_EPOCH);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*current_epoch);
            out.put_i64(*last_zxid);
            out.put_u8(u8::from(*fresh));
            out.put_i64(*log_base);
            out.put_u32(log_ends.len() as u32);
            for zxid in log_ends {
                out.put_i64(*zxid);
            }
        }
        Message::NewLeader { conn, epoch, sync, entries, commit } => {
            out.put_u8(tag::NEW_LEADER);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            match sync {
                SyncMode::Diff { after } => {
                    out.put_u8(0);
                    out.put_i64(*after);
                }
                SyncMode::Snap { zxid, data } => {
                    out.put_u8(1);
                    out.put_i64(*zxid);
                    put_bytes(out, data);
                }
            }
            put_entries(out, entries);
            out.put_i64(*commit);
        }
        Message::AckNewLeader { conn, epoch, zxid } => {
            out.put_u8(tag::ACK_NEW_LEADER);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*zxid);
        }
        Message::UpToDate { conn, epoch, commit } => {
            out.put_u8(tag::UP_TO_DATE);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*commit);
        }
        Message::Proposal { conn, epoch, prev, zxid, payload } => {
            out.put_u8(tag::PROPOSAL);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*prev);
            out.put_i64(*zxid);
            put_bytes(out, payload);
        }
        Message::Inform { conn, epoch, prev, zxid, payload } => {
            out.put_u8(tag::INFORM);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*prev);
            out.put_i64(*zxid);
            put_bytes(out, payload);
        }
        Message::Ack { conn, epoch, zxid } => {
            out.put_u8(tag::ACK);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*zxid);
        }
        Message::Commit { conn, epoch, zxid } => {
            out.put_u8(tag::COMMIT);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*zxid);
        }
        Message::Ping { conn, epoch, commit, up_to_date } => {
            out.put_u8(tag::PING);
            out.put_u64(*conn);
            out.put_i64(*epoch);
            out.put_i64(*commit);
            out.put_u8(u8::from(*up_to_date));
        }
        Message::PingReply { conn, epoch } => {
            out.put_u8(tag::PING_REPLY);
            out.put_u64(*conn);
            out.put_i64(*epoch);
        }
    }
}

fn decode_zab(tag: u8, r: &mut Cursor<'_>) -> Result<Message, WireError> {
    Ok(match tag {
        tag::NOTIFICATION => {
            let state = match r.u8()? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                _ => return Err(WireError("bad peer state")),
            };
            let vote = Vote { epoch: r.i64()?, zxid: r.i64()?, leader: r.u64()? };
            Message::Notification { state, vote, election_epoch: r.u64()? }
        }
        tag::FOLLOWER_INFO => Message::FollowerInfo { conn: r.u64()?, accepted_epoch: r.i64()? },
        tag::LEADER_INFO => Message::LeaderInfo { conn: r.u64()?, epoch: r.i64()? },
        tag::ACK_EPOCH => {
            let conn = r.u64()?;
            let epoch = r.i64()?;
            let current_epoch = r.i64()?;
            let last_zxid = r.i64()?;
            let fresh = r.bool()?;
            let log_base = r.i64()?;
            let count = r.count(8)?;
            let mut log_ends = Vec::with_capacity(count);
            for _ in 0..count {
                log_ends.push(r.i64()?);
            }
            Message::AckEpoch { conn, epoch, current_epoch, last_zxid, fresh, log_base, log_ends }
        }
        tag::NEW_LEADER => {
            let conn = r.u64()?;
            let epoch = r.i64()?;
            let sync = match r.u8()? {
                0 => SyncMode::Diff { after: r.i64()? },
                1 => SyncMode::Snap { zxid: r.i64()?, data: r.bytes()? },
                _ => return Err(WireError("bad sync mode")),
            };
            let count = r.count(12)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let zxid = r.i64()?;
                entries.push((zxid, r.bytes()?));
            }
            Message::NewLeader { conn, epoch, sync, entries, commit: r.i64()? }
        }
        tag::ACK_NEW_LEADER => Message::AckNewLeader { conn: r.u64()?, epoch: r.i64()?, zxid: r.i64()? },
        tag::UP_TO_DATE => Message::UpToDate { conn: r.u64()?, epoch: r.i64()?, commit: r.i64()? },
        tag::PROPOSAL => Message::Proposal {
            conn: r.u64()?,
            epoch: r.i64()?,
            prev: r.i64()?,
            zxid: r.i64()?,
            payload: r.bytes()?,
        },
        tag::INFORM => Message::Inform {
            conn: r.u64()?,
            epoch: r.i64()?,
            prev: r.i64()?,
            zxid: r.i64()?,
            payload: r.bytes()?,
        },
        tag::ACK => Message::Ack { conn: r.u64()?, epoch: r.i64()?, zxid: r.i64()? },
        tag::COMMIT => Message::Commit { conn: r.u64()?, epoch: r.i64()?, zxid: r.i64()? },
        tag::PING => {
            Message::Ping { conn: r.u64()?, epoch: r.i64()?, commit: r.i64()?, up_to_date: r.bool()? }
        }
        tag::PING_REPLY => Message::PingReply { conn: r.u64()?, epoch: r.i64()? },
        _ => return Err(WireError("unknown message tag")),
    })
}

struct Cursor<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError("length overflow"))?;
        let slice = self.bytes.get(self.at..end).ok_or(WireError("truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("bad bool")),
        }
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A vector count whose items take at least `item_min` bytes each.
    fn count(&mut self, item_min: usize) -> Result<usize, WireError> {
        let count = self.u32()? as usize;
        if count > ITEMS_MAX || count.saturating_mul(item_min) > self.bytes.len() - self.at {
            return Err(WireError("count larger than the frame"));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<Bytes, WireError> {
        let length = self.u32()? as usize;
        let start = self.at;
        self.take(length)?;
        Ok(self.bytes.slice(start..start + length))
    }

    fn string(&mut self) -> Result<String, WireError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn samples() -> Vec<PeerMessage> {
        let b = Bytes::from_static(b"payload");
        let zab = vec![
            Message::Notification {
                state: PeerState::Following,
                vote: Vote { epoch: 3, zxid: 0x3_0000_0007, leader: 2 },
                election_epoch: 9,
            },
            Message::FollowerInfo { conn: 7, accepted_epoch: 2 },
            Message::LeaderInfo { conn: 7, epoch: 3 },
            Message::AckEpoch {
                conn: 7,
                epoch: 3,
                current_epoch: 2,
                last_zxid: 5,
                fresh: true,
                log_base: 1,
                log_ends: vec![4, 5],
            },
            Message::NewLeader {
                conn: 7,
                epoch: 3,
                sync: SyncMode::Snap { zxid: 4, data: b.clone() },
                entries: vec![(5, b.clone()), (6, Bytes::new())],
                commit: 5,
            },
            Message::NewLeader {
                conn: 7,
                epoch: 3,
                sync: SyncMode::Diff { after: 2 },
                entries: vec![],
                commit: 2,
            },
            Message::AckNewLeader { conn: 7, epoch: 3, zxid: 6 },
            Message::UpToDate { conn: 7, epoch: 3, commit: 6 },
            Message::Proposal { conn: 7, epoch: 3, prev: 6, zxid: 7, payload: b.clone() },
            Message::Ack { conn: 7, epoch: 3, zxid: 7 },
            Message::Inform { conn: 7, epoch: 3, prev: 7, zxid: 8, payload: b.clone() },
            Message::Commit { conn: 7, epoch: 3, zxid: 7 },
            Message::Ping { conn: 7, epoch: 3, commit: 7, up_to_date: true },
            Message::PingReply { conn: 7, epoch: 3 },
        ];
        let mut all: Vec<PeerMessage> = zab.into_iter().map(PeerMessage::Zab).collect();
        all.push(PeerMessage::Forward {
            session: 0x100,
            cxid: 4,
            op: 1,
            auth: vec![Id { scheme: "ip".into(), id: "127.0.0.1".into() }],
            body: b.clone(),
            trace: None,
        });
        all.push(PeerMessage::Forward {
            session: 0x101,
            cxid: 6,
            op: 5,
            auth: Vec::new(),
            body: b,
            trace: Some(TraceParent { trace_id: u128::MAX - 7, span_id: 0x0102_0304_0506_0708 }),
        });
        all.push(PeerMessage::SyncRequest { session: 0x100, cxid: 5 });
        all.push(PeerMessage::SyncDone { session: 0x100, cxid: 5, zxid: 9 });
        all.push(PeerMessage::Touch { sessions: vec![1, 2, 3] });
        all.push(PeerMessage::Revalidate { session: 0x100 });
        all.push(PeerMessage::Revalidated { session: 0x100 });
        all
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let bytes = message.encode();
            assert_eq!(PeerMessage::decode(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for message in samples() {
            let bytes = message.encode();
            for cut in 0..bytes.len() {
                assert!(PeerMessage::decode(&bytes.slice(..cut)).is_err());
            }
            for at in 0..bytes.len() {
                let mut flipped = bytes.to_vec();
                flipped[at] ^= 0xff;
                let _ = PeerMessage::decode(&Bytes::from(flipped));
            }
        }
        let mut seed = 1u64;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = PeerMessage::decode(&Bytes::from(junk));
        }
    }
}
