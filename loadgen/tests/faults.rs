//! The fault schedule against a real 3-node ferrokeeper ensemble: under write-only load,
//! fkload kills the leader (found through `srvr`, the local pid through /proc) and restarts it,
//! then SIGSTOPs a follower for 1.5 s through `fault_commands` templates, then runs a user
//! `command` and its `undo`. Checks that every action ran on the right node with the templates
//! filled in, that the leader kill shows a write unavailability window with its latency peak
//! measured, that the restarted node rejoins, that every acknowledged write is still
//! readable, and that the HTML report marks the faults on the time series.
#![allow(clippy::unwrap_used)]

mod ensemble;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ensemble::{Ensemble, TempDir, fkload_bin, four_letter};
use fkload::run::RunResult;

/// The workload: `follower` is the 1-based node the stop hits (not the leader, whose pid the
/// restart changes), `dir` holds the pid files the stop/cont templates read.
fn workload(follower: usize, dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        "name: faults-test
ops: {{set: 1}}
znodes: 200
tree: {{fanout: 50}}
value_size: {{dist: fixed, size: 128}}
sessions: 6
inflight: 2
duration_secs: 13.5
faults:
  - {{at: 3, action: kill, target: leader, restart_at: 7}}
  - {{at: 10, action: stop, target: 'node:{follower}', duration: 1.5}}
  - {{at: 12.5, action: command, target: 'node:{follower}', duration: 0.3,
     run: 'echo run {{host}} {{port}} {{node}} {{index}} >> {dir}/cmd.log',
     undo: 'echo undo {{node}} >> {dir}/cmd.log'}}
fault_commands:
  stop: 'kill -STOP $(cat {dir}/node{{node}}.pid)'
  cont: 'kill -CONT $(cat {dir}/node{{node}}.pid)'
"
    )
}

/// Kills (SIGKILL, by pid) a process fkload restarted, which no test handle owns.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

#[test]
fn leader_kill_and_follower_stop_are_measured() {
    let t0 = Instant::now();
    let mut ensemble = Ensemble::start(3);
    let leader_before = ensemble.leader().expect("a leader");
    let tmp = TempDir::new("fkload-faults");
    let dir = tmp.0.clone();
    for i in 0..3 {
        std::fs::write(dir.join(format!("node{}.pid", i + 1)), ensemble.pid(i).to_string()).unwrap();
    }
    let follower = (0..3).find(|i| *i != leader_before).unwrap();
    std::fs::write(dir.join("workload.yaml"), workload(follower + 1, &dir)).unwrap();
    let out = dir.join("result.json");
    let html = dir.join("report.html");
    let log = std::fs::File::create(dir.join("fkload.log")).unwrap();
    let mut child = Command::new(fkload_bin())
        .args(["run", "-w"])
        .arg(dir.join("workload.yaml"))
        .args(["-t", &ensemble.connect(), "--no-progress", "--out"])
        .arg(&out)
        .arg("--html")
        .arg(&html)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fkload did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(dir.join("fkload.log")).unwrap();
    eprintln!("{text}");
    assert!(status.success(), "fkload failed:\n{text}\n{}", ensemble.logs());
    let r: RunResult = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let actions: Vec<&str> = r.faults.iter().map(|f| f.event.action.as_str()).collect();
    assert_eq!(actions, ["kill", "restart", "stop", "cont", "command", "undo"], "{:#?}", r.faults);
    for f in &r.faults {
        assert!(f.event.error.is_none(), "{} failed: {:?}", f.event.action, f.event.error);
    }
    let (kill, restart, stop) = (&r.faults[0], &r.faults[1], &r.faults[2]);
    // The restarted process is no child of this test: kill it by pid at the end.
    let _restarted = KillOnDrop(restart.event.new_pid);
    // The kill hit the leader, as srvr said before the run, and the restart the same node.
    assert_eq!(kill.event.role.as_deref(), Some("leader"));
    assert_eq!(kill.event.node, Some(leader_before + 1));
    assert_eq!(kill.event.pid, Some(ensemble.pid(leader_before)));
    assert_eq!(restart.event.node, kill.event.node);
    assert_eq!(stop.event.role.as_deref(), Some("follower"));
    // The stop and cont went through the templates, the command and undo through theirs.
    let pidfile = format!("{}/node{}.pid", dir.display(), follower + 1);
    assert!(
        stop.event.detail.starts_with(&format!("$ kill -STOP $(cat {pidfile})")),
        "{}",
        stop.event.detail
    );
    assert!(r.faults[3].event.detail.starts_with(&format!("$ kill -CONT $(cat {pidfile})")));
    let port = ensemble.nodes[follower].client_port;
    assert_eq!(
        std::fs::read_to_string(dir.join("cmd.log")).unwrap(),
        format!("run 127.0.0.1 {port} {} {follower}\nundo {}\n", follower + 1, follower + 1)
    );
    // The leader kill stopped writes for a while, and they came back.
    assert!(kill.recovered, "{kill:#?}");
    assert!(
        kill.write_unavailable_ms > 0.0 && kill.write_unavailable_ms < 4000.0,
        "unavailability {} ms",
        kill.write_unavailable_ms
    );
    // The peak is measured (a failover of a few ms may stay under the stall threshold).
    assert!(kill.latency_peak_ms > 0.0, "{kill:#?}");
    assert!(kill.ops > 0);
    assert_eq!(kill.sessions_expired, 0, "a 30 s session outlives a short election");
    // Every acknowledged write is still there.
    let d = r.durability.as_ref().expect("durability check");
    assert!(d.ok, "{d:#?}");
    assert!(d.acked_writes > 500, "{d:#?}");
    assert!(d.keys_checked > 100, "{d:#?}");
    // The killed node is back: restarted by fkload, it serves again.
    let port = ensemble.nodes[leader_before].client_port;
    let mode = four_letter(port, "srvr").unwrap_or_default();
    assert!(mode.contains("Mode: follower") || mode.contains("Mode: leader"), "restarted node: {mode}");
    // The report marks every action on the throughput and p99 charts.
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("class=\"fault-mark\"").count(), 12, "6 actions × 2 time-series charts");
    assert!(page.contains("<h2>Faults</h2>") && page.contains("every acknowledged write is still readable"));
    // The ensemble's own handle no longer owns the killed node.
    ensemble.nodes[leader_before].child.take().map(|mut c| c.wait());
    eprintln!(
        "leader kill: writes unavailable {:.0} ms, latency peak {:.0} ms, errors {:?}; follower stop: {:.0} ms, \
         peak {:.0} ms; {} acknowledged writes checked; test took {:.1?}",
        kill.write_unavailable_ms,
        kill.latency_peak_ms,
        kill.errors_by_code,
        stop.write_unavailable_ms,
        stop.latency_peak_ms,
        d.acked_writes,
        t0.elapsed()
    );
}
