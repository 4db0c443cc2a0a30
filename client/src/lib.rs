//! Async ZooKeeper client (issue 5). For now it only re-exports the protocol crate so the
//! workspace has its final shape; the tests drive servers through `server/tests/support`.

pub use ferrokeeper_proto as proto;
