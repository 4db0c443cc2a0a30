//! benchgate: the instruction-count gate's workload runner (see `scripts/bench-gate.sh`).
//!
//! `benchgate list` prints the case names; `benchgate run <case>` builds that case's fixture
//! and runs its fixed workload once inside `benchgate_measured`, the only function the gate's
//! callgrind run counts. `FK_BENCH_SLOWDOWN=<case>` turns on that case's deliberate extra
//! copy (used to show the gate catches a rise).

use std::process::ExitCode;

use ferrokeeper_benches::gate;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["list"] => {
            for case in gate::cases() {
                println!("{}\t{}\t{}", case.name, case.operations, case.about);
            }
            ExitCode::SUCCESS
        }
        ["run", name] => {
            let Some(case) = gate::find(name) else {
                eprintln!("benchgate: no case {name:?}; `benchgate list` names them");
                return ExitCode::from(2);
            };
            let slowdown =
                std::env::var("FK_BENCH_SLOWDOWN").is_ok_and(|v| v.split(',').any(|c| c == case.name));
            case.run(slowdown);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: benchgate list | benchgate run <case>");
            ExitCode::from(2)
        }
    }
}
