//! fkload: a load generator for ZooKeeper-protocol servers (ferrokeeper, Apache ZooKeeper).
//!
//! Modules: [`workload`] (YAML definitions), [`dist`] (key / size / mix samplers), [`run`]
//! (closed / open / stepped / sweep executor), [`stats`] (HDR histograms, series),
//! [`hdrlog`] (interval logs), [`mntr`] (server-side view), [`report`] (table, HTML),
//! [`compare`], [`metrics`] (Prometheus), [`trace`] (record / replay), [`cpu`].

pub mod compare;
pub mod cpu;
pub mod dist;
pub mod hdrlog;
pub mod metrics;
pub mod mntr;
pub mod report;
pub mod run;
pub mod stats;
pub mod trace;
pub mod workload;
