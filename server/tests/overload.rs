//! Overload through the followers never loses a reply: a 3-node ensemble, every session on a
//! follower, far more writes in flight than `globalOutstandingLimit` (default 1000): 64
//! sessions x 32 pipelined setData of 1 KiB (2,048 in flight). Every request is answered, in
//! order, without error; the followers stop reading their clients while the leader is full
//! (backpressure), and the leader queues forwarded writes instead of dropping them.
//! `FK_OVERLOAD_ROUNDS` (default 8) rounds of 32 per session.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::*;
use support::{Ensemble, TestClient};

const SESSIONS: usize = 64;
const IN_FLIGHT: usize = 32;

#[test]
fn writes_through_followers_far_above_the_limit_are_all_answered() {
    let rounds: usize = std::env::var("FK_OVERLOAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut cluster = Ensemble::new();
    for i in 0..support::ENSEMBLE_SIZE {
        cluster.start(i);
    }
    let leader = cluster.wait_stable(Duration::from_secs(30));
    let followers: Vec<u16> =
        (0..support::ENSEMBLE_SIZE).filter(|&i| i != leader).map(|i| cluster.port(i)).collect();
    let mut setup = TestClient::connect(followers[0]).unwrap();
    for s in 0..SESSIONS {
        let request = Request::Create(CreateRequest {
            path: format!("/ov-{s}"),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        assert_eq!(setup.call(&request).unwrap().0.err, 0);
    }
    let started = Instant::now();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let port = followers[s % followers.len()];
            std::thread::spawn(move || {
                let mut client = TestClient::connect(port).unwrap();
                client.set_read_timeout(Duration::from_secs(60)).unwrap();
                let data = Bytes::from(vec![b'x'; 1024]);
                for round in 0..rounds {
                    let mut xids = Vec::with_capacity(IN_FLIGHT);
                    for _ in 0..IN_FLIGHT {
                        let request = Request::SetData(SetDataRequest {
                            path: format!("/ov-{s}"),
                            data: Some(data.clone()),
                            version: -1,
                        });
                        xids.push(client.send(&request).unwrap());
                    }
                    for xid in xids {
                        let (header, _) = client.read_reply(xid, op::SET_DATA).unwrap_or_else(|error| {
                            panic!("session {s} round {round}: no reply to xid {xid}: {error}")
                        });
                        assert_eq!(header.err, 0, "session {s} round {round} xid {xid}");
                    }
                }
                client.close_session().unwrap();
            })
        })
        .collect();
    let failed = threads.into_iter().map(|t| t.join()).filter(Result::is_err).count();
    assert_eq!(failed, 0, "{failed} sessions failed\n{}", cluster.logs());
    let writes = SESSIONS * IN_FLIGHT * rounds;
    let elapsed = started.elapsed();
    println!(
        "{writes} setData through the followers ({} in flight) answered in {elapsed:?} ({:.0}/s)",
        SESSIONS * IN_FLIGHT,
        writes as f64 / elapsed.as_secs_f64()
    );
    // Every write landed: each node's version is the number of writes to it.
    let mut reader = TestClient::connect(cluster.port(leader)).unwrap();
    for s in 0..SESSIONS {
        let request = Request::Exists(ExistsRequest { path: format!("/ov-{s}"), watch: false });
        match reader.call(&request).unwrap().1 {
            Ok(ferrokeeper_proto::response::Response::Exists(stat)) => {
                assert_eq!(stat.stat.version as usize, IN_FLIGHT * rounds, "/ov-{s}")
            }
            other => panic!("exists /ov-{s}: {other:?}"),
        }
    }
    assert!(!cluster.logs().contains("dropping"), "{}", cluster.logs());
}
