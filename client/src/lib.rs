//! Async ZooKeeper client for ferrokeeper (and Apache ZooKeeper 3.8/3.9).
//!
//! One [`ZooKeeper`] handle owns a session over a single TCP connection on which requests
//! are pipelined (replies are matched by xid, in order). Connection loss is handled by
//! reconnecting to the next host of the connect string with the same session, re-sending
//! auth and re-registering watches; requests in flight when the connection dropped fail with
//! `ConnectionLoss`. Session expiry is reported on the [`Events`] stream and every later
//! call fails with `SessionExpired`.
//!
//! ```no_run
//! use std::time::Duration;
//! use ferrokeeper_client::{Acl, CreateMode, ZooKeeper};
//!
//! # async fn demo() -> ferrokeeper_client::Result<()> {
//! let (zk, mut events) = ZooKeeper::connect("127.0.0.1:2181,127.0.0.1:2182/app", Duration::from_secs(10)).await?;
//! zk.create("/java", b"spring", &Acl::open_unsafe(), CreateMode::Persistent, None).await?;
//! let (data, stat, watch) = zk.get_data_w("/java").await?;
//! assert_eq!(&data[..], b"spring");
//! zk.set_data("/java", b"springmvc", stat.version).await?;
//! println!("{}", watch.changed().await?); // WatchedEvent state:SyncConnected type:NodeDataChanged path:/java
//! while let Some(event) = events.try_recv() {
//!     println!("{event}");
//! }
//! zk.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! TLS to a `secureClientPort`: [`Builder::tls`] with [`TlsOptions`], which
//! [`TlsOptions::from_properties`] reads from the Java client's `zookeeper.client.secure` and
//! `zookeeper.ssl.*` properties. SASL DIGEST-MD5: [`Builder::sasl`] with [`SaslOptions`], which
//! [`SaslOptions::from_properties`] reads from a JAAS `Client` section as the Java client does.
//!
//! Modules: [`recipes`] has a distributed lock, leader election, service registry and config
//! watcher; `fkcli` (the binary) is a zkCli-compatible shell built on this crate.

pub mod cli;
mod client;
mod error;
pub mod recipes;
mod sasl;
mod session;
mod tls;
mod types;
mod watch;

pub use client::{AddWatchMode, Builder, Created, Multi, WatcherType, ZooKeeper};
pub use error::{Error, Result};
pub use ferrokeeper_proto as proto;
pub use ferrokeeper_proto::multi::OpResult;
pub use ferrokeeper_proto::op::CreateMode;
pub use ferrokeeper_proto::{Acl, ClientInfo, Code, Id, Stat};
pub use sasl::SaslOptions;
pub use tls::{LoadedTls, Store, TlsOptions};
pub use types::{ConnectString, EventType, KeeperState, SessionState, WatchedEvent};
pub use watch::{Events, Watch};
