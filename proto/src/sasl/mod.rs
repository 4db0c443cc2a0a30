//! SASL as ZooKeeper speaks it, as pure data (no I/O, no randomness: nonces are arguments).
//!
//! - [`digest_md5`] — the DIGEST-MD5 mechanism (RFC 2831, `qop=auth`), server and client
//!   side, as Java's `DigestMD5Server` / `DigestMD5Client` run it for ZooKeeper (protocol
//!   `zookeeper`, server name and realm `zk-sasl-md5`).
//! - [`jaas`] — the JAAS login configuration file (`java.security.auth.login.config`): the
//!   server's `Server` section (`user_<name>="password"`) and the client's `Client` section
//!   (`username`, `password`).
//!
//! The tokens travel in `GetSASLRequest` / `SetSASLResponse` records (opcode `sasl`, 102) after
//! the session is established.

pub mod digest_md5;
pub mod jaas;
