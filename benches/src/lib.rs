//! Benchmark harness crate (issue 8): criterion and instruction-count benches live here.

pub mod gate;
pub mod workloads;
