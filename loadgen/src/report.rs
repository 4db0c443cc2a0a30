//! Human outputs: the summary table and the self-contained HTML report (inline SVG, no
//! scripts, no network).

use std::fmt::Write as _;

use crate::run::RunResult;

/// Colors for ops, in order of appearance.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f",
];

/// The text summary printed at the end of a run.
pub fn summary_table(r: &RunResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fkload {} — workload {} against {} (mode {}{}), {:.1} s measured",
        r.fkload_version,
        r.workload.name,
        r.target,
        r.mode,
        r.rate.map(|x| format!(", rate {x:.0} ops/s")).unwrap_or_default(),
        r.measured_secs
    );
    let open = r.ops.values().any(|o| o.response.is_some());
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
        "op",
        "count",
        "ops/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "p99.99",
        "max ms",
        if open { "(response time from intended start; service p99 in [])" } else { "(service time)" }
    );
    for (name, o) in &r.ops {
        let p = o.response.as_ref().unwrap_or(&o.service);
        let _ = write!(
            s,
            "{:<10} {:>10} {:>10.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            name, o.count, o.throughput, o.errors, p.p50, p.p90, p.p99, p.p999, p.p9999, p.max
        );
        if o.response.is_some() {
            let _ = write!(s, "  [{:.2}]", o.service.p99);
        }
        if !o.error_codes.is_empty() {
            let _ = write!(s, "  {:?}", o.error_codes);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "total      {:>10} {:>10.0} {:>7}   fkload CPU {:.2} µs/op ({:.2} cores busy; user {:.2} s, sys {:.2} s)",
        r.totals.ops,
        r.totals.throughput,
        r.totals.errors,
        r.client_cpu.cpu_us_per_op,
        r.client_cpu.cores_busy,
        r.client_cpu.user_s,
        r.client_cpu.sys_s
    );
    if !r.workers.is_empty() {
        let _ = writeln!(s, "merged from {} workers", r.workers.len());
    }
    for f in &r.merge_flags {
        let _ = writeln!(s, "FLAG: {f}");
    }
    if let Some(l) = &r.send_lag {
        let _ = writeln!(
            s,
            "open-loop send lag (actual - intended send): p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
            l.p50, l.p99, l.p999, l.max
        );
    }
    for f in &r.faults {
        let e = &f.event;
        let _ = writeln!(
            s,
            "fault at {:>6.1} s: {} {} (node {} {}{}): writes unavailable {:.0} ms{} (longest session gap {:.0} ms), latency peak {:.1} ms, \
             {} sessions expired, errors {:?}{}",
            e.t,
            e.action,
            e.target,
            e.node.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            e.addr.as_deref().unwrap_or(""),
            e.role.as_deref().map(|r| format!(", was {r}")).unwrap_or_default(),
            f.write_unavailable_ms,
            if f.recovered { "" } else { " (not recovered before the next action)" },
            f.session_write_gap_max_ms,
            f.latency_peak_ms,
            f.sessions_expired,
            f.errors_by_code,
            e.error.as_deref().map(|x| format!("  ACTION FAILED: {x}")).unwrap_or_default()
        );
    }
    if let Some(d) = &r.durability {
        let _ = writeln!(
            s,
            "acknowledged writes: {} setData acknowledged, {} keys read back: {}",
            d.acked_writes,
            d.keys_checked,
            if d.ok {
                "all still readable".to_owned()
            } else {
                format!(
                    "{} LOST, {} unreadable: {:?} {:?}",
                    d.lost.len(),
                    d.unreadable.len(),
                    d.lost,
                    d.unreadable
                )
            }
        );
    }
    for st in &r.steps {
        let _ = writeln!(
            s,
            "step rate {:>9.0} achieved {:>9.0} p99 {:>8.2} ms slo-value {:>8} {}",
            st.rate,
            st.achieved,
            st.p99_ms,
            st.slo_value_ms.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            if st.ok { "OK" } else { "MISS" }
        );
    }
    for sv in &r.servers {
        if let Some(e) = &sv.error {
            let _ = writeln!(s, "server {}: {e}", sv.addr);
            continue;
        }
        let d = |k: &str| sv.delta.get(k).copied().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "server {} ({}, {}): packets_received +{:.0}, avg_latency {:.2} ms, znodes {:.0}",
            sv.addr,
            sv.state,
            sv.version.split(',').next().unwrap_or(""),
            d("zk_packets_received"),
            sv.after.get("zk_avg_latency").copied().unwrap_or(0.0),
            sv.after.get("zk_znode_count").copied().unwrap_or(0.0)
        );
        for (name, st) in &sv.stages {
            let _ = writeln!(
                s,
                "    {:<42} n={:<9.0} avg {:>9.3}{}",
                name,
                st.count,
                st.avg,
                st.p99.map(|p| format!("  p99 {p:.3}")).unwrap_or_default()
            );
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Line<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

const W: f64 = 1100.0;
const H: f64 = 300.0;
const L: f64 = 70.0;
const R: f64 = 20.0;
const T: f64 = 30.0;
const B: f64 = 40.0;

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(mag * 10.0);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + 1e-9 && out.len() < 12 {
        out.push(v);
        v += step;
    }
    out
}

/// A line chart; `log_y` plots log10 of y; `x_fmt` labels x ticks.
fn line_chart(
    id: &str,
    title: &str,
    lines: &[Line],
    y_label: &str,
    log_y: bool,
    x_fmt: &dyn Fn(f64) -> String,
    marks: &[(f64, String)],
) -> String {
    let tf = |y: f64| if log_y { y.max(1e-3).log10() } else { y };
    let pts = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(tf(*y));
        y1 = y1.max(tf(*y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if !log_y {
        y0 = y0.min(0.0);
    } else {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (tf(y) - y0) / (y1 - y0) * (H - T - B);
    let mut s = format!(
        "<svg class=\"chart\" data-chart=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>\
         <text x=\"{L}\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let y_ticks: Vec<f64> =
        if log_y { (y0 as i64..=y1 as i64).map(|e| e as f64).collect() } else { nice_ticks(y0, y1) };
    for yt in y_ticks {
        let yy = H - B - (yt - y0) / (y1 - y0) * (H - T - B);
        let label = if log_y { format!("{}", 10f64.powf(yt)) } else { format!("{yt}") };
        let _ = write!(
            s,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" font-family=\"sans-serif\">{}</text>",
            W - R,
            L - 5.0,
            yy + 4.0,
            esc(&label)
        );
    }
    for xt in nice_ticks(x0, x1) {
        let xx = px(xt);
        // A label centred on the last tick would run past the right edge (`99.9999%`): the
        // labels near an edge are aligned to it instead.
        let anchor = if xx > W - R - 40.0 {
            "end"
        } else if xx < L + 40.0 {
            "start"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{xx:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" font-family=\"sans-serif\">{}</text>",
            H - B,
            H - B + 16.0,
            esc(&x_fmt(xt))
        );
    }
    let _ = write!(
        s,
        "<text x=\"14\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\
         <rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        H / 2.0,
        H / 2.0,
        esc(y_label),
        W - L - R,
        H - T - B
    );
    // Fault marks: a dashed vertical line and its label at each action's time.
    for (k, (x, label)) in marks.iter().enumerate() {
        if *x < x0 || *x > x1 {
            continue;
        }
        let xx = px(*x);
        let _ = write!(
            s,
            "<line class=\"fault-mark\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#e00000\" \
             stroke-width=\"2\" stroke-dasharray=\"6,3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" \
             fill=\"#e00000\" font-family=\"sans-serif\">{}</text>",
            H - B,
            xx + 3.0,
            T + 12.0 + (k % 4) as f64 * 12.0,
            esc(label)
        );
    }
    for (i, l) in lines.iter().enumerate() {
        let d: Vec<String> = l.points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\" points=\"{}\"/>\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" font-family=\"sans-serif\">{}</text>",
            l.color,
            d.join(" "),
            W - R - 160.0,
            T + 8.0 + i as f64 * 16.0,
            l.color,
            W - R - 144.0,
            T + 18.0 + i as f64 * 16.0,
            esc(l.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn bar_chart(id: &str, title: &str, bars: &[(String, f64, String)]) -> String {
    let height = T + 20.0 + bars.len() as f64 * 22.0;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut s = format!(
        "<svg class=\"chart\" data-chart=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\">\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{height}\" fill=\"#fff\"/>\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    for (i, (label, v, unit)) in bars.iter().enumerate() {
        let y = T + i as f64 * 22.0;
        let w = (v / max * 560.0).max(1.0);
        let _ = write!(
            s,
            "<text x=\"420\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" font-family=\"sans-serif\">{}</text>\
             <rect x=\"430\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" font-family=\"sans-serif\">{v:.3} {}</text>",
            y + 12.0,
            esc(label),
            PALETTE[i % PALETTE.len()],
            435.0 + w,
            y + 12.0,
            esc(unit)
        );
    }
    s.push_str("</svg>");
    s
}

/// A long text cut to its first 60 characters, the whole of it in a tooltip.
fn short(text: &str) -> String {
    let first: String = text.chars().take(60).collect();
    let more = if first.len() < text.len() { "…" } else { "" };
    format!("<span title=\"{}\">{}{more}</span>", esc(text), esc(&first))
}

/// The faults injected and what each did; whether acknowledged writes survived.
fn faults_section(body: &mut String, r: &crate::run::RunResult) {
    body.push_str(
        "<h2>Faults</h2><table class=\"faults\"><tr><th>t (s)</th><th>action</th><th>node</th><th>was</th>\
         <th>write unavailability ms</th><th>from → until (s)</th><th>longest session gap ms</th><th>latency peak ms</th><th>errors by code</th>\
         <th>sessions expired</th><th>detail</th></tr>",
    );
    for f in &r.faults {
        let e = &f.event;
        let window = match (f.unavailable_from_t, f.unavailable_until_t) {
            (Some(a), Some(b)) => format!("{a:.3} → {b:.3}"),
            (Some(a), None) => format!("{a:.3} → not recovered by {:.1}", f.span_end_t),
            _ => "no failed or stalled write".to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td>{:.2}</td><td>{} {}</td><td>{} {}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>{:.1}</td>\
             <td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            e.t,
            esc(&e.action),
            esc(&e.target),
            e.node.map(|n| n.to_string()).unwrap_or_default(),
            esc(e.addr.as_deref().unwrap_or("")),
            esc(e.role.as_deref().unwrap_or("")),
            f.write_unavailable_ms,
            esc(&window),
            f.session_write_gap_max_ms,
            f.latency_peak_ms,
            esc(&format!("{:?}", f.errors_by_code)),
            f.sessions_expired,
            short(e.error.as_deref().unwrap_or(&e.detail))
        );
    }
    body.push_str("</table>");
    if let Some(d) = &r.durability {
        let _ = write!(
            body,
            "<p>Acknowledged writes: {} setData acknowledged; {} keys read back after the run: <b>{}</b>.</p>",
            d.acked_writes,
            d.keys_checked,
            if d.ok {
                "every acknowledged write is still readable".to_owned()
            } else {
                format!("{} lost, {} unreadable", d.lost.len(), d.unreadable.len())
            }
        );
    }
}

/// A merged result's workers: who ran what, their clocks and starts, and the merge's flags.
fn workers_section(body: &mut String, r: &crate::run::RunResult) {
    let _ = write!(
        body,
        "<h2>Workers</h2><p>Merged from {} worker results; histograms added exactly.</p><table><tr><th>worker</th>\
         <th>host</th><th>sessions</th><th>clock vs leader ms (±)</th><th>started after --start-at ms</th></tr>",
        r.workers.len()
    );
    for w in &r.workers {
        let _ = write!(
            body,
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            w.index,
            w.count,
            esc(&w.host),
            w.sessions.len(),
            w.clock().map(|c| format!("{:+.1} ({:.1})", c.offset_ms, c.uncertainty_ms)).unwrap_or_default(),
            w.start_late_ms().map(|l| format!("{l:.1}")).unwrap_or_default()
        );
    }
    body.push_str("</table>");
    if r.merge_flags.is_empty() {
        body.push_str(
            "<p>No flags: every worker kept its schedule, started on time and agreed on the clock.</p>",
        );
    } else {
        body.push_str("<ul class=\"flags\">");
        for f in &r.merge_flags {
            let _ = write!(body, "<li><b>FLAG</b> {}</li>", esc(f));
        }
        body.push_str("</ul>");
    }
}

/// The self-contained HTML report.
pub fn html(r: &RunResult) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>fkload: {}</h1><p>target <code>{}</code>, mode {}{}, {} sessions × {} in flight, {:.1} s measured, \
         {:.0} ops/s, {} errors. fkload CPU {:.2} µs/op ({:.2} cores).</p>",
        esc(&r.workload.name),
        esc(&r.target),
        esc(&r.mode),
        r.rate.map(|x| format!(", rate {x:.0} ops/s")).unwrap_or_default(),
        r.workload.sessions,
        r.workload.inflight,
        r.measured_secs,
        r.totals.throughput,
        r.totals.errors,
        r.client_cpu.cpu_us_per_op,
        r.client_cpu.cores_busy
    );
    if let Some(l) = &r.send_lag {
        let _ = write!(
            body,
            "<p>Open-loop send lag (actual − intended send): p50 {:.2}, p99 {:.2}, max {:.2} ms.</p>",
            l.p50, l.p99, l.max
        );
    }
    if !r.workers.is_empty() {
        workers_section(&mut body, r);
    }
    let marks: Vec<(f64, String)> =
        r.faults.iter().map(|f| (f.event.t, format!("{} {}", f.event.action, f.event.target))).collect();
    // Throughput over time.
    let thr =
        Line { name: "ops/s", color: PALETTE[0], points: r.series.iter().map(|p| (p.t, p.ops)).collect() };
    let err = Line {
        name: "errors/s",
        color: PALETTE[1],
        points: r.series.iter().map(|p| (p.t, p.errors)).collect(),
    };
    body.push_str(&line_chart(
        "throughput",
        "Throughput over time (ops/s)",
        &[thr, err],
        "ops/s",
        false,
        &|x| format!("{x:.0}s"),
        &marks,
    ));
    // p99 over time per op.
    let names: Vec<&String> = r.ops.keys().collect();
    let p99_lines: Vec<Line> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Line {
            name: n,
            color: PALETTE[i % PALETTE.len()],
            points: r
                .series
                .iter()
                .filter_map(|p| p.per_op.get(*n).map(|v| (p.t, v[2].max(0.001))))
                .collect(),
        })
        .collect();
    body.push_str(&line_chart(
        "p99",
        "p99 latency over time, per op (ms, log)",
        &p99_lines,
        "ms",
        true,
        &|x| format!("{x:.0}s"),
        &marks,
    ));
    // The faults right under the charts that mark them.
    if !r.faults.is_empty() || r.durability.is_some() {
        faults_section(&mut body, r);
    }
    // Percentile spectrum.
    let spec_lines: Vec<Line> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Line {
            name: n,
            color: PALETTE[i % PALETTE.len()],
            points: r.ops[*n]
                .spectrum
                .iter()
                .map(|(p, v)| ((1.0 / (1.0 - (p / 100.0).min(0.999_999))).log10(), v.max(0.001)))
                .collect(),
        })
        .collect();
    body.push_str(&line_chart(
        "spectrum",
        "Latency by percentile, per op (ms, log; x = percentile)",
        &spec_lines,
        "ms",
        true,
        &|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            format!("{}%", (p * 10000.0).round() / 10000.0)
        },
        &[],
    ));
    // Summary table.
    body.push_str("<h2>Per op</h2><table><tr><th>op</th><th>count</th><th>ops/s</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>service p99</th><th>error codes</th></tr>");
    for (n, o) in &r.ops {
        let p = o.response.as_ref().unwrap_or(&o.service);
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            esc(n),
            o.count,
            o.throughput,
            o.errors,
            p.p50,
            p.p90,
            p.p99,
            p.p999,
            p.p9999,
            p.max,
            o.service.p99,
            esc(&format!("{:?}", o.error_codes))
        );
    }
    body.push_str("</table><p>Latencies in ms; in open loop the percentiles are response times from the intended send time (coordinated-omission corrected).</p>");
    // Server stages.
    body.push_str("<h2>Server stages</h2>");
    let mut any = false;
    for sv in &r.servers {
        if let Some(e) = &sv.error {
            let _ = write!(body, "<p>{}: {}</p>", esc(&sv.addr), esc(e));
            continue;
        }
        // Time stages (ms) go in the chart; sizes and byte counts in the table below it.
        let is_time = |k: &str| k.ends_with("time") || k.ends_with("_ms") || k.ends_with("latency");
        let bars: Vec<(String, f64, String)> = sv
            .stages
            .iter()
            .filter(|(k, _)| is_time(k))
            .map(|(k, st)| (k.clone(), st.avg, "ms".to_owned()))
            .collect();
        if !bars.is_empty() {
            any = true;
            body.push_str(&bar_chart(
                "stages",
                &format!(
                    "{} ({}) — average time per event over the run (Δsum/Δcnt from mntr)",
                    sv.addr, sv.state
                ),
                &bars,
            ));
        }
        let _ = write!(
            body,
            "<table><tr><th>{} summary</th><th>count</th><th>avg</th><th>max (since start)</th><th>p99</th></tr>",
            esc(&sv.addr)
        );
        for (k, st) in &sv.stages {
            let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{:.0}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                esc(k),
                st.count,
                st.avg,
                opt(st.max),
                opt(st.p99)
            );
        }
        body.push_str(
            "</table><p>count and avg over the run (Δcnt, Δsum/Δcnt); p99 over the run where the \
             server reports its histogram (ferrokeeper's <code>zk_histogram_X</code>: the upper \
             bound of a power-of-two bucket), else the server's own <code>zk_p99_X</code>.</p>",
        );
        let _ = write!(body, "<details><summary>{} mntr deltas</summary><table>", esc(&sv.addr));
        for (k, v) in &sv.delta {
            let _ = write!(body, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
        }
        body.push_str("</table></details>");
    }
    if !any {
        body.push_str("<p>No stage summaries reported by the server(s).</p>");
    }
    if !r.steps.is_empty() {
        body.push_str("<h2>Steps</h2><table><tr><th>rate</th><th>achieved</th><th>p99 ms</th><th>SLO value</th><th>ok</th></tr>");
        for st in &r.steps {
            let _ = write!(
                body,
                "<tr><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                st.rate,
                st.achieved,
                st.p99_ms,
                st.slo_value_ms.map(|v| format!("{v:.2}")).unwrap_or_default(),
                st.ok
            );
        }
        body.push_str("</table>");
    }
    let config = serde_yaml::to_string(&r.workload).unwrap_or_default();
    let _ = write!(body, "<h2>Workload</h2><pre>{}</pre><div id=\"fkload-rendered\"></div>", esc(&config));
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fkload — {}</title><style>\
         body{{font-family:sans-serif;margin:20px;background:#fff}} table{{border-collapse:collapse}} \
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} svg{{display:block;margin:12px 0}}\
         </style></head><body>{body}</body></html>",
        esc(&r.workload.name)
    )
}
