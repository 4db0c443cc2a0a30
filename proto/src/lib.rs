//! ZooKeeper's client wire protocol as pure data: the jute binary codec, every record the
//! client port and the transaction log speak, opcodes, error codes, path validation and
//! length-prefixed framing.
//!
//! This crate owns no I/O, no clock and no runtime: it turns bytes into records and back.
//! The facts it encodes come from `zookeeper.jute` and `ZooDefs` of Apache ZooKeeper 3.8/3.9
//! (see `shared/docs/zookeeper-reference.md` §1).
//!
//! Module map:
//! - [`jute`] — primitive encoding (`Jute` trait, [`jute::Reader`]) and the `record!` macro.
//! - [`records`] — handshake, headers, data records, requests, responses, watcher events.
//! - [`request`] — a decoded client request ([`request::Request`]) chosen by opcode.
//! - [`response`] — a typed success reply body.
//! - [`multi`] — multi / multiRead requests and responses.
//! - [`txn`] — transaction records (what is logged and replicated).
//! - [`code`] — `KeeperException.Code`.
//! - [`op`] — opcodes, special xids, flags and watch types.
//! - [`fksnap`] — ferrokeeper's own snapshot file as records.
//! - [`frame`] — `int32 length | payload` framing with a size limit.
//! - [`path`] — `PathUtils.validatePath`.
//! - [`zkfile`] — Apache ZooKeeper's snapshot and log files (offline import, fkload replay).
//! - [`sasl`] — SASL DIGEST-MD5 (RFC 2831) and the JAAS login configuration file, shared by
//!   the server and the client.

pub mod code;
pub mod fksnap;
pub mod frame;
pub mod jute;
pub mod multi;
pub mod op;
pub mod path;
pub mod records;
pub mod request;
pub mod response;
pub mod sasl;
pub mod txn;
pub mod zkfile;

pub use code::Code;
pub use jute::{DecodeError, Jute, Reader};
pub use records::*;
