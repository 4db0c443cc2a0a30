//! A 5-node ensemble tested as the 3-node ones are, under a write load spread over every
//! member for the whole run: the leader SIGKILLed (a new leader serves), two members cut off
//! in silence through the link proxies, the leader among them (the other three go on; the
//! two stop serving; healed, they rejoin), then a rolling restart of every member one after
//! the other. No acknowledged write is lost on any member and all five converge. The longest
//! gap between two acknowledged writes is printed (the unavailability window).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Acked, Ensemble, Layout, ServerKind};

const BUDGET: Duration = Duration::from_secs(30);
const N: usize = 5;

/// Waits until a write sent after `since` is acknowledged.
fn wait_served(acked: &Acked, since: Instant, what: &str, ensemble: &Ensemble) {
    let deadline = since + BUDGET;
    while !acked.lock().unwrap().iter().any(|(_, sent, _)| *sent > since) {
        assert!(Instant::now() < deadline, "no write served after {what}\n{}", ensemble.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("{what}: writes served again after {:?}", since.elapsed());
}

#[test]
fn five_node_ensemble_survives_kills_partitions_and_a_rolling_restart() {
    let layout = Layout { voters: N, ..Layout::default() };
    let mut ensemble = Ensemble::build_layout(ServerKind::Ferrokeeper, &[], true, &layout);
    for i in 0..N {
        ensemble.start(i);
    }
    let leader = ensemble.wait_stable(BUDGET);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let ports: Vec<u16> = (0..N).map(|i| ensemble.port(i)).collect();
    let load = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || support::write_load(ports, "/five".into(), stop, acked))
    };
    std::thread::sleep(Duration::from_millis(300));

    // Leader SIGKILL.
    let killed_at = Instant::now();
    ensemble.kill(leader);
    wait_served(&acked, killed_at, "leader kill", &ensemble);
    ensemble.wait_stable(BUDGET);
    ensemble.start(leader);
    let leader = ensemble.wait_stable(BUDGET);

    // Two members cut off in silence, the leader one of them.
    let other = (leader + 1) % N;
    let cut_at = Instant::now();
    ensemble.partition(leader, true);
    ensemble.partition(other, true);
    wait_served(&acked, cut_at, "partition of two (the leader among them)", &ensemble);
    let deadline = Instant::now() + BUDGET;
    while [leader, other].iter().any(|i| matches!(ensemble.mode(*i).as_str(), "leader" | "follower")) {
        assert!(Instant::now() < deadline, "a cut-off member still serves\n{}", ensemble.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    ensemble.partition(leader, false);
    ensemble.partition(other, false);
    ensemble.wait_stable(BUDGET);

    // Rolling restart: every member in turn, each back before the next goes.
    for i in 0..N {
        let restarted_at = Instant::now();
        ensemble.kill(i);
        ensemble.start(i);
        ensemble.wait_stable(BUDGET);
        wait_served(&acked, restarted_at, &format!("restart of node {}", i + 1), &ensemble);
    }

    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    ensemble.wait_converged(BUDGET);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "too few writes acknowledged: {}", acked.len());
    let longest_gap = acked.windows(2).map(|w| w[1].2.duration_since(w[0].2)).max().unwrap_or_default();
    println!("{} writes acknowledged; longest gap between two acknowledgements {longest_gap:?}", acked.len());
    for i in 0..N {
        support::assert_all_present(ensemble.port(i), &acked, &format!("node {}", i + 1));
    }
}
