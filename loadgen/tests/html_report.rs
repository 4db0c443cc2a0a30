//! The HTML report rendered by headless Chromium: the charts must actually draw (colored
//! pixels in each chart band of the screenshot).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fkload::cpu::ClientCpu;
use fkload::mntr::Snapshot;
use fkload::run::{RunResult, Totals};
use fkload::stats::{Recorder, SeriesPoint};
use fkload::workload::{KeyDist, MixOp, OpKind, SizeDist, TreeShape, Workload};

fn chromium() -> PathBuf {
    let find = || ["chromium", "chromium-browser"].iter().find_map(|c| which(c));
    if let Some(p) = find() {
        return p;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fkload-test-deps.sh");
    let ok = Command::new("bash").arg(&script).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "installing chromium with {} failed", script.display());
    find().expect("chromium after scripts/fkload-test-deps.sh")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

fn sample_result() -> RunResult {
    let rec = Recorder::new(None);
    for i in 0..5000u64 {
        rec.record(
            OpKind::Get,
            Duration::from_micros(200 + i % 700),
            Some(Duration::from_micros(250 + i % 900)),
            None,
        );
        if i % 5 == 0 {
            rec.record(
                OpKind::Set,
                Duration::from_micros(1500 + i % 3000),
                Some(Duration::from_micros(1600 + i % 5000)),
                None,
            );
        }
    }
    let ops = rec.summarize(10.0);
    let series = (1..=12)
        .map(|t| SeriesPoint {
            t: t as f64,
            phase: if t <= 2 { "warmup".into() } else { "measure".into() },
            ops: 20_000.0 + 3_000.0 * ((t as f64) * 0.7).sin(),
            errors: 0.0,
            p99_ms: 2.0 + t as f64 * 0.1,
            per_op: BTreeMap::from([
                ("get".to_owned(), [19_000.0, 0.5, 1.2 + t as f64 * 0.05, 3.0]),
                ("set".to_owned(), [1_000.0, 2.0, 4.0 + t as f64 * 0.1, 9.0]),
            ]),
            hdr: BTreeMap::new(),
            errors_by_op: BTreeMap::new(),
            secs: 1.0,
        })
        .collect();
    // The server side as fkload sees it: two mntr readings of a ferrokeeper node (the keys
    // fourlw.rs prints), diffed as after a real run.
    let mntr = |cnt: u64, sum: u64, histogram: &str| {
        let mut text = "zk_version\t3.9.3-ferrokeeper\nzk_server_state\tleader\n".to_owned();
        for name in
            ["write_queue_wait_time", "quorum_ack_latency", "write_apply_time", "write_end_to_end_latency"]
        {
            text.push_str(&format!(
                "zk_avg_{name}\t1.0\nzk_min_{name}\t0\nzk_max_{name}\t40\nzk_cnt_{name}\t{cnt}\n\
                 zk_sum_{name}\t{sum}\nzk_p99_{name}\t33.0\nzk_histogram_{name}\t{histogram}\n"
            ));
        }
        text.push_str(&format!(
            "zk_cnt_sync_processor_batch_size\t{cnt}\nzk_sum_sync_processor_batch_size\t{sum}\n"
        ));
        text
    };
    let before = Snapshot::from_texts(vec![("127.0.0.1:2181".into(), mntr(100, 100, "1024=100"))]);
    let after =
        Snapshot::from_texts(vec![("127.0.0.1:2181".into(), mntr(1100, 2600, "1024=600 2048=480 16384=20"))]);
    let servers = Snapshot::diff(&before, &after);
    RunResult {
        fkload_version: "test".into(),
        workload: Workload {
            name: "render-check".into(),
            description: String::new(),
            ops: BTreeMap::from([(MixOp::Get, 95), (MixOp::Set, 5)]),
            znodes: 100,
            tree: TreeShape::default(),
            value_size: SizeDist::Fixed { size: 1024 },
            keys: KeyDist::Uniform,
            sessions: 4,
            inflight: 4,
            duration_secs: 10.0,
            warmup_secs: 2.0,
            rate: Some(20_000.0),
            steps: Vec::new(),
            step_secs: 5.0,
            slo: None,
            watchers: 0,
            faults: Vec::new(),
            fault_commands: None,
        },
        target: "127.0.0.1:2181".into(),
        mode: "open".into(),
        rate: Some(20_000.0),
        started_unix: 0.0,
        measured_secs: 10.0,
        totals: Totals { ops: 6000, errors: 0, throughput: 600.0 },
        ops,
        series,
        client_cpu: ClientCpu { user_s: 0.1, sys_s: 0.1, cpu_us_per_op: 3.3, cores_busy: 0.02 },
        servers,
        steps: Vec::new(),
        hdr_log: None,
        send_lag: None,
        completed: BTreeMap::new(),
        setup_requests: BTreeMap::new(),
        worker: None,
        workers: Vec::new(),
        merge_flags: Vec::new(),
        faults: Vec::new(),
        durability: None,
        fault_log_dropped: 0,
    }
}

/// Runs headless Chromium on `url` with `args`, bounded to 90 s; returns its stdout.
fn run_chromium(chrome: &Path, profile: &Path, args: &[String], url: &str) -> String {
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg("--window-size=1200,1600")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// Checks, in the rendered page, that every text of every chart lies inside its chart (a label
/// outside is clipped: the `99.9999%` axis label was), by script in a copy of the report.
const CLIP_CHECK: &str = "<script>window.addEventListener('load', () => {\
  const out = [];\
  for (const svg of document.querySelectorAll('svg.chart')) {\
    const box = svg.getBoundingClientRect();\
    for (const t of svg.querySelectorAll('text')) {\
      const r = t.getBoundingClientRect();\
      if (r.width === 0 || r.left < box.left - 0.5 || r.right > box.right + 0.5 ||\
          r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {\
        out.push(svg.dataset.chart + ': ' + t.textContent);\
      }\
    }\
  }\
  document.getElementById('fkload-rendered').textContent =\
    'texts=' + document.querySelectorAll('svg.chart text').length + ' clipped=[' + out.join(' | ') + ']';\
});</script>";

/// Pixels that are clearly colored (chart lines and bars; text and grid are gray).
fn colored(px: &[u8]) -> bool {
    let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
    r.max(g).max(b) - r.min(g).min(b) > 60
}

#[test]
fn html_report_renders_charts_in_headless_chromium() {
    let chrome = chromium();
    let dir = std::env::temp_dir().join(format!("fkload-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let text = fkload::report::html(&sample_result());
    let external = text.replace("http://www.w3.org/2000/svg", "");
    assert!(!external.contains("http://") && !external.contains("https://"), "report must not load anything");
    assert!(!text.contains("<script src") && !text.contains("<link"), "report must be self-contained");
    // Server stage table: every row has its p99 (over the run, from zk_histogram_X).
    let table = text.split("summary</th>").nth(1).unwrap().split("</table>").next().unwrap();
    let rows: Vec<&str> = table.split("<tr>").skip(1).collect();
    assert!(rows.len() >= 5, "stage rows: {table}");
    for row in rows.iter().filter(|r| r.contains("time") || r.contains("latency")) {
        let cells: Vec<&str> = row.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect();
        assert_eq!(cells.len(), 5, "{row}");
        // 1000 events in the run: 500 ≤ 1 ms, 480 ≤ 2 ms, 20 ≤ 16 ms, so p99 is the 16 ms
        // bucket (16.384), within the max of 40; not the since-start zk_p99 (33).
        assert_eq!(cells[4], "16.384", "p99 cell of {row}");
    }
    std::fs::write(&html, &text).unwrap();
    let checked = dir.join("checked.html");
    std::fs::write(&checked, text.replace("</body>", &format!("{CLIP_CHECK}</body>"))).unwrap();
    let dom = run_chromium(
        &chrome,
        &dir.join("profile"),
        &["--dump-dom".to_owned(), "--virtual-time-budget=5000".to_owned()],
        &format!("file://{}", checked.display()),
    );
    let verdict = dom.split("<div id=\"fkload-rendered\">").nth(1).and_then(|r| r.split("</div>").next());
    let verdict = verdict.unwrap_or_else(|| panic!("no verdict in the dumped DOM:\n{dom}"));
    let texts: usize = verdict.strip_prefix("texts=").unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(texts > 40, "{verdict}");
    assert!(verdict.ends_with("clipped=[]"), "chart texts outside their chart: {verdict}");
    let png_path = dir.join("shot.png");
    run_chromium(
        &chrome,
        &dir.join("profile"),
        &[format!("--screenshot={}", png_path.display())],
        &format!("file://{}", html.display()),
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "unexpected color type {:?}", info.color_type);
    let (w, h) = (info.width as usize, info.height as usize);
    assert!(w >= 1000 && h >= 1500, "screenshot {w}x{h}");
    let band = |y0: usize, y1: usize| {
        let mut n = 0;
        for y in y0..y1.min(h) {
            for x in 0..w {
                let i = (y * w + x) * channels;
                if colored(&buf[i..i + 3]) {
                    n += 1;
                }
            }
        }
        n
    };
    // Header ~100 px, then three 300 px line charts, then tables and the stage bars.
    let bands =
        [(100, 420, "throughput"), (420, 740, "p99 over time"), (740, 1080, "spectrum"), (1080, h, "stages")];
    for (y0, y1, name) in bands {
        let n = band(y0, y1);
        assert!(n > 400, "chart band {name} ({y0}..{y1}) has only {n} colored pixels");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
