//! The instruction-count gate catches a deliberate slowdown and passes without it.
//!
//! Runs `scripts/bench-gate.sh` on the `benchgate` binary cargo built for this test (a debug
//! build, so against a scratch baseline recorded here, not the committed release baseline):
//! record, re-run (identical counts: the measurement is deterministic), then re-run with
//! `FK_BENCH_SLOWDOWN=decode_get_data` (one extra copy of each input frame) and expect the gate
//! to fail and name that case. Two cases keep it to a few seconds.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrokeeper_benches::gate;

const CASES: &str = "decode_get_data,tree_get_data";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench-gate.sh")
}

fn gate_run(baseline: &Path, extra: &[&str], slowdown: Option<&str>) -> (i32, String) {
    let mut command = Command::new("bash");
    command.arg(script()).args(["--bin", env!("CARGO_BIN_EXE_benchgate"), "--cases", CASES, "--baseline"]);
    command.arg(baseline).args(extra).env_remove("FK_BENCH_SLOWDOWN").env_remove("FK_BENCH_THRESHOLD");
    if let Some(case) = slowdown {
        command.env("FK_BENCH_SLOWDOWN", case);
    }
    let Output { status, stdout, stderr } = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    println!("{text}");
    (status.code().unwrap_or(-1), text)
}

fn row<'a>(report: &'a str, case: &str) -> &'a str {
    let prefix = format!("| {case} |");
    report
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {case}:\n{report}"))
}

#[test]
fn gate_fails_on_a_deliberate_slowdown_and_passes_without_it() {
    let dir = std::env::temp_dir().join(format!("fk-bench-gate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = dir.join("instructions.json");

    let (code, report) = gate_run(&baseline, &["--update"], None);
    assert_eq!(code, 0, "recording the scratch baseline failed:\n{report}");

    let (code, report) = gate_run(&baseline, &[], None);
    assert_eq!(code, 0, "the gate must pass against a baseline just recorded:\n{report}");
    for case in CASES.split(',') {
        assert!(row(&report, case).contains("| +0.00 % | ok |"), "counts must repeat exactly:\n{report}");
    }

    let (code, report) = gate_run(&baseline, &[], Some("decode_get_data"));
    assert_eq!(code, 1, "the gate must fail on the slowdown:\n{report}");
    assert!(row(&report, "decode_get_data").contains("FAIL"), "the slowed case must be flagged:\n{report}");
    assert!(row(&report, "tree_get_data").ends_with("| ok |"), "other cases stay ok:\n{report}");
    assert!(
        report.contains("FAILED")
            && report.lines().any(|l| l.contains("FAILED") && l.contains("decode_get_data"))
    );

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_case_runs_and_has_a_committed_baseline() {
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline/instructions.json"))
            .unwrap();
    for case in gate::cases() {
        case.run(false);
        assert!(
            committed.contains(&format!("\"{}\": ", case.name)),
            "case {} has no committed baseline: run scripts/bench-gate.sh --update",
            case.name
        );
    }
}
