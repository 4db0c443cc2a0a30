//! The durable transaction log: segment files of checksummed records written by a thread of
//! its own through io_uring (or pwrite + fdatasync) with group commit, and read back on start.
//!
//! - [`format`] — the byte layout, pure (no I/O).
//! - [`device`] — the disk seam (io_uring / sync backends).
//! - [`writer`] — the writer thread, batching and segment management.
//! - [`reader`] — recovery and dumps.
//! - [`stats`] — counters for metrics.

pub mod device;
pub mod dump;
pub mod format;
pub mod purge;
pub mod reader;
pub mod snapshot;
pub mod stats;
pub mod truncate;
pub mod writer;

pub use device::Backend;
pub use writer::{LogSettings, LogStatus, LogWriter};

#[cfg(test)]
mod tests;
