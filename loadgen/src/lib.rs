//! fkload: a load generator for ZooKeeper-protocol servers (ferrokeeper, Apache ZooKeeper).
//!
//! Modules: [`workload`] (YAML definitions), [`dist`] (key / size / mix samplers), [`run`]
//! (closed / open / stepped / sweep executor), [`stats`] (HDR histograms, series),
//! [`hdrlog`] (interval logs), [`mntr`] (server-side view), [`report`] (table, HTML),
//! [`compare`], [`metrics`] (Prometheus), [`trace`] (record / replay), [`cpu`], [`worker`]
//! (one of N processes: shares, start time, clock offset), [`merge`] (adding workers' results).
//! [`zktrace`] (Apache ZooKeeper transaction and audit logs as traces), [`snaptree`] (runs from a
//! snapshot's tree).

pub mod compare;
pub mod cpu;
pub mod dist;
pub mod fault;
pub mod hdrlog;
pub mod merge;
pub mod metrics;
pub mod mntr;
pub mod report;
pub mod run;
pub mod snaptree;
pub mod stats;
pub mod trace;
pub mod worker;
pub mod workload;
pub mod zktrace;
