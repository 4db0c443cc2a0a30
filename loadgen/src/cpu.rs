//! fkload's own CPU use, from `/proc/self/stat` (utime + stime, in USER_HZ = 100 ticks/s).

use serde::{Deserialize, Serialize};

/// Process CPU seconds `(user, system)`; zeros when `/proc` is unreadable.
pub fn process_cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return (0.0, 0.0);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

/// fkload's CPU over the measured phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientCpu {
    pub user_s: f64,
    pub sys_s: f64,
    /// CPU microseconds per completed op.
    pub cpu_us_per_op: f64,
    /// CPU seconds per wall second (1.0 = one core busy).
    pub cores_busy: f64,
}

impl ClientCpu {
    /// From two samples of [`process_cpu_seconds`], the op count and wall time between them.
    pub fn between(before: (f64, f64), after: (f64, f64), ops: u64, wall_s: f64) -> ClientCpu {
        let user_s = (after.0 - before.0).max(0.0);
        let sys_s = (after.1 - before.1).max(0.0);
        let total = user_s + sys_s;
        ClientCpu {
            user_s,
            sys_s,
            cpu_us_per_op: if ops > 0 { total * 1e6 / ops as f64 } else { 0.0 },
            cores_busy: if wall_s > 0.0 { total / wall_s } else { 0.0 },
        }
    }
}
