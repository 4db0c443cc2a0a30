//! `fkload compare A.json B.json`: side by side, with deltas; B regresses when its throughput
//! falls or a percentile grows by more than the threshold.

use std::fmt::Write as _;

use crate::run::RunResult;

/// The comparison text and whether B regressed.
pub fn compare(a: &RunResult, b: &RunResult, threshold_pct: f64) -> (String, bool) {
    let mut s = String::new();
    let mut regressed = false;
    let pct = |x: f64, y: f64| if x.abs() < 1e-12 { 0.0 } else { (y - x) / x * 100.0 };
    let _ = writeln!(s, "A: {} ({}) on {}", a.workload.name, a.mode, a.target);
    let _ = writeln!(s, "B: {} ({}) on {}", b.workload.name, b.mode, b.target);
    let _ = writeln!(s, "{:<10} {:<10} {:>12} {:>12} {:>9}  {:>7}", "op", "metric", "A", "B", "delta", "B/A");
    let dt = pct(a.totals.throughput, b.totals.throughput);
    let flag = dt < -threshold_pct;
    regressed |= flag;
    let _ = writeln!(
        s,
        "{:<10} {:<10} {:>12.0} {:>12.0} {:>+8.1}%  {:>7.3}{}",
        "total",
        "ops/s",
        a.totals.throughput,
        b.totals.throughput,
        dt,
        b.totals.throughput / a.totals.throughput.max(1e-9),
        if flag { "  REGRESSION" } else { "" }
    );
    for (name, oa) in &a.ops {
        let Some(ob) = b.ops.get(name) else {
            let _ = writeln!(s, "{name:<10} missing in B");
            continue;
        };
        let d = pct(oa.throughput, ob.throughput);
        let flag = d < -threshold_pct;
        regressed |= flag;
        let _ = writeln!(
            s,
            "{:<10} {:<10} {:>12.0} {:>12.0} {:>+8.1}%  {:>7.3}{}",
            name,
            "ops/s",
            oa.throughput,
            ob.throughput,
            d,
            ob.throughput / oa.throughput.max(1e-9),
            if flag { "  REGRESSION" } else { "" }
        );
        let pa = oa.response.as_ref().unwrap_or(&oa.service);
        let pb = ob.response.as_ref().unwrap_or(&ob.service);
        for (label, x, y) in [
            ("p50 ms", pa.p50, pb.p50),
            ("p90 ms", pa.p90, pb.p90),
            ("p99 ms", pa.p99, pb.p99),
            ("p99.9 ms", pa.p999, pb.p999),
            ("max ms", pa.max, pb.max),
        ] {
            let d = pct(x, y);
            // Max is too noisy to gate on; the percentiles up to p99.9 are checked.
            let flag = label != "max ms" && d > threshold_pct && (y - x) > 0.05;
            regressed |= flag;
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>12.3} {:>12.3} {:>+8.1}%  {:>7.3}{}",
                "",
                label,
                x,
                y,
                d,
                y / x.max(1e-9),
                if flag { "  REGRESSION" } else { "" }
            );
        }
    }
    let _ = writeln!(
        s,
        "fkload CPU µs/op: A {:.2}  B {:.2}",
        a.client_cpu.cpu_us_per_op, b.client_cpu.cpu_us_per_op
    );
    let _ = writeln!(
        s,
        "{}",
        if regressed {
            format!("B regresses beyond {threshold_pct}%")
        } else {
            format!("no regression beyond {threshold_pct}%")
        }
    );
    (s, regressed)
}

/// Parses `10%`, `10` or `0.1` (fractions below 1 are read as fractions) into a percentage.
pub fn parse_threshold(s: &str) -> anyhow::Result<f64> {
    let t = s.trim().trim_end_matches('%');
    let v: f64 = t.parse().map_err(|_| anyhow::anyhow!("bad threshold {s:?}"))?;
    Ok(if !s.contains('%') && v < 1.0 { v * 100.0 } else { v })
}
