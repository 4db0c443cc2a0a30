//! Handler-level tests: feed one input, assert the exact outputs (openraft style).

#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::log::common_point;
use super::*;

fn z(epoch: Epoch, counter: u32) -> Zxid {
    make_zxid(epoch, counter)
}

fn config(sid: Sid) -> Config {
    let mut config = Config::new(sid, vec![1, 2, 3]);
    config.tick_ms = 100;
    config.finalize_wait_ms = 50;
    config
}

fn peer(sid: Sid, durable: DurableState) -> Peer {
    Peer::new(config(sid), durable, 7, 0)
}

fn step(peer: &mut Peer, input: Input) -> Vec<Output> {
    let mut out = Vec::new();
    peer.step(input, &mut out);
    peer.validate();
    out
}

fn recv(peer: &mut Peer, from: Sid, msg: Message) -> Vec<Output> {
    step(peer, Input::Recv { from, msg })
}

fn looking(vote: Vote, election_epoch: u64) -> Message {
    Message::Notification { state: PeerState::Looking, vote, election_epoch }
}

fn log_of(entries: &[Zxid]) -> Vec<(Zxid, Bytes)> {
    entries.iter().map(|z| (*z, Bytes::from(format!("{z:x}")))).collect()
}

/// Peer 1 elects 3 (everyone agrees) and returns the FOLLOWERINFO conn.
fn follow_three(peer: &mut Peer) -> u64 {
    let vote = Vote { epoch: 5, zxid: z(5, 9), leader: 3 };
    recv(peer, 2, looking(vote, 1));
    let out = recv(peer, 3, looking(vote, 1));
    let Some(Output::Send { to: 3, msg: Message::FollowerInfo { conn, .. } }) = out.last() else {
        panic!("expected FOLLOWERINFO, got {out:?}");
    };
    *conn
}

#[test]
fn election_adopts_the_highest_epoch_then_zxid_then_sid() {
    let mut peer = peer(1, DurableState { current_epoch: 2, accepted_epoch: 2, ..Default::default() });
    // A higher zxid in a lower epoch does not beat us.
    let lower_epoch = Vote { epoch: 1, zxid: z(1, 99), leader: 2 };
    let out = recv(&mut peer, 2, looking(lower_epoch, 1));
    assert!(out.is_empty(), "{out:?}");
    // Same epoch, higher sid: adopted and re-broadcast.
    let better = Vote { epoch: 2, zxid: 0, leader: 3 };
    let out = recv(&mut peer, 3, looking(better, 1));
    assert_eq!(
        out,
        vec![
            Output::Send { to: 2, msg: looking(better, 1) },
            Output::Send { to: 3, msg: looking(better, 1) },
        ]
    );
    // 1 and 3 agree on 3 (a quorum): decide after the finalize wait.
    let out = step(&mut peer, Input::Tick { now_ms: 10 });
    assert!(!out.iter().any(|o| matches!(o, Output::Send { msg: Message::FollowerInfo { .. }, .. })));
    let out = step(&mut peer, Input::Tick { now_ms: 60 });
    assert!(matches!(out.last(), Some(Output::Send { to: 3, msg: Message::FollowerInfo { .. } })), "{out:?}");
}

#[test]
fn follower_acks_only_after_persisted() {
    let durable = DurableState { current_epoch: 1, accepted_epoch: 1, ..Default::default() };
    let mut peer = peer(1, durable);
    let conn = follow_three(&mut peer);
    let out = recv(&mut peer, 3, Message::LeaderInfo { conn, epoch: 2 });
    let ack_epoch = Message::AckEpoch {
        conn,
        epoch: 2,
        current_epoch: 1,
        last_zxid: 0,
        fresh: true,
        log_base: 0,
        log_ends: vec![],
    };
    assert_eq!(
        out,
        vec![Output::SaveEpochs { current: 1, accepted: 2 }, Output::Send { to: 3, msg: ack_epoch }]
    );
    // NEWLEADER with one entry: persist it, but no ack and no currentEpoch yet.
    let entries = log_of(&[z(1, 1)]);
    let sync = SyncMode::Diff { after: 0 };
    let msg = Message::NewLeader { conn, epoch: 2, sync, entries: entries.clone(), commit: z(1, 1) };
    assert_eq!(recv(&mut peer, 3, msg), vec![Output::Persist { entries }]);
    // Durable: currentEpoch first, then the NEWLEADER ack, then apply.
    assert_eq!(
        step(&mut peer, Input::Persisted { upto: z(1, 1) }),
        vec![
            Output::SaveEpochs { current: 2, accepted: 2 },
            Output::Send { to: 3, msg: Message::AckNewLeader { conn, epoch: 2, zxid: z(1, 1) } },
            Output::Commit { upto: z(1, 1) },
        ]
    );
    let out = recv(&mut peer, 3, Message::UpToDate { conn, epoch: 2, commit: z(1, 1) });
    assert_eq!(out, vec![Output::RoleChanged { role: Role::Following, leader: Some(3), epoch: 2 }]);
    // A proposal is logged, not acked.
    let payload = Bytes::from_static(b"w");
    let msg = Message::Proposal { conn, epoch: 2, prev: z(1, 1), zxid: z(2, 1), payload: payload.clone() };
    assert_eq!(recv(&mut peer, 3, msg), vec![Output::Persist { entries: vec![(z(2, 1), payload)] }]);
    // A commit for it cannot be applied before it is durable.
    assert_eq!(recv(&mut peer, 3, Message::Commit { conn, epoch: 2, zxid: z(2, 1) }), vec![]);
    assert_eq!(
        step(&mut peer, Input::Persisted { upto: z(2, 1) }),
        vec![
            Output::Send { to: 3, msg: Message::Ack { conn, epoch: 2, zxid: z(2, 1) } },
            Output::Commit { upto: z(2, 1) },
        ]
    );
}

#[test]
fn follower_with_a_gap_goes_back_to_election() {
    let mut peer = peer(1, DurableState::default());
    let conn = follow_three(&mut peer);
    recv(&mut peer, 3, Message::LeaderInfo { conn, epoch: 1 });
    let sync = SyncMode::Diff { after: 0 };
    recv(&mut peer, 3, Message::NewLeader { conn, epoch: 1, sync, entries: vec![], commit: 0 });
    let msg = Message::Proposal { conn, epoch: 1, prev: z(1, 1), zxid: z(1, 2), payload: Bytes::new() };
    let out = recv(&mut peer, 3, msg);
    assert!(matches!(out.first(), Some(Output::RoleChanged { role: Role::Looking, .. })), "{out:?}");
}

/// Peer 3 leads 1 (peer 2 silent): returns the leader in broadcast and the learner's conn.
fn lead_with_one_follower() -> (Peer, u64) {
    let mut leader = peer(3, DurableState::default());
    let vote = Vote { epoch: 0, zxid: 0, leader: 3 };
    recv(&mut leader, 1, looking(vote, 1));
    recv(&mut leader, 2, looking(vote, 1));
    let conn = 11;
    let out = recv(&mut leader, 1, Message::FollowerInfo { conn, accepted_epoch: 0 });
    assert_eq!(
        out,
        vec![
            Output::SaveEpochs { current: 0, accepted: 1 },
            Output::Send { to: 1, msg: Message::LeaderInfo { conn, epoch: 1 } },
        ]
    );
    let ack = Message::AckEpoch {
        conn,
        epoch: 1,
        current_epoch: 0,
        last_zxid: 0,
        fresh: true,
        log_base: 0,
        log_ends: vec![],
    };
    let sync = SyncMode::Diff { after: 0 };
    assert_eq!(
        recv(&mut leader, 1, ack),
        vec![
            Output::Send {
                to: 1,
                msg: Message::NewLeader { conn, epoch: 1, sync, entries: vec![], commit: 0 }
            },
            Output::SaveEpochs { current: 1, accepted: 1 },
        ]
    );
    assert_eq!(leader.role(), Role::Looking);
    let out = recv(&mut leader, 1, Message::AckNewLeader { conn, epoch: 1, zxid: 0 });
    assert_eq!(
        out,
        vec![
            Output::RoleChanged { role: Role::Leading, leader: Some(3), epoch: 1 },
            Output::Send { to: 1, msg: Message::UpToDate { conn, epoch: 1, commit: 0 } },
        ]
    );
    (leader, conn)
}

#[test]
fn leader_commits_only_on_a_quorum_of_durable_acks() {
    let (mut leader, conn) = lead_with_one_follower();
    let zxid = leader.next_zxid().unwrap();
    assert_eq!(zxid, z(1, 1));
    let payload = Bytes::from_static(b"w");
    let out = step(&mut leader, Input::Propose { zxid, payload: payload.clone() });
    assert_eq!(
        out,
        vec![
            Output::Persist { entries: vec![(zxid, payload.clone())] },
            Output::Send { to: 1, msg: Message::Proposal { conn, epoch: 1, prev: 0, zxid, payload } },
        ]
    );
    // The leader's own fsync is one vote of the two needed.
    assert_eq!(step(&mut leader, Input::Persisted { upto: zxid }), vec![]);
    // A stale zxid is refused.
    let out = step(&mut leader, Input::Propose { zxid, payload: Bytes::new() });
    assert_eq!(out, vec![Output::ProposalDropped { zxid }]);
    assert_eq!(
        recv(&mut leader, 1, Message::Ack { conn, epoch: 1, zxid }),
        vec![
            Output::Send { to: 1, msg: Message::Commit { conn, epoch: 1, zxid } },
            Output::Commit { upto: zxid }
        ]
    );
}

#[test]
fn leader_steps_down_when_a_learner_is_ahead() {
    let mut leader = peer(3, DurableState::default());
    let vote = Vote { epoch: 0, zxid: 0, leader: 3 };
    recv(&mut leader, 1, looking(vote, 1));
    recv(&mut leader, 2, looking(vote, 1));
    recv(&mut leader, 1, Message::FollowerInfo { conn: 5, accepted_epoch: 0 });
    let ack = Message::AckEpoch {
        conn: 5,
        epoch: 1,
        current_epoch: 0,
        last_zxid: z(0, 3),
        fresh: true,
        log_base: 0,
        log_ends: vec![z(0, 3)],
    };
    let out = recv(&mut leader, 1, ack);
    assert!(matches!(out.first(), Some(Output::RoleChanged { role: Role::Looking, .. })), "{out:?}");
}

#[test]
fn leader_loses_quorum_and_steps_down() {
    let (mut leader, _) = lead_with_one_follower();
    // The follower falls silent for longer than syncLimit (5 ticks of 100 ms).
    let out = step(&mut leader, Input::Tick { now_ms: 601 });
    assert!(out.iter().any(|o| matches!(o, Output::RoleChanged { role: Role::Looking, .. })), "{out:?}");
}

#[test]
fn deposed_leader_tail_is_truncated() {
    // Peer 1 led epoch 1 and logged (1,1)..(1,3); only (1,1) was committed.
    let durable = DurableState {
        current_epoch: 1,
        accepted_epoch: 1,
        applied_zxid: z(1, 1),
        log_base: 0,
        log_tail: log_of(&[z(1, 1), z(1, 2), z(1, 3)]),
    };
    let mut peer = peer(1, durable);
    let conn = follow_three(&mut peer);
    let out = recv(&mut peer, 3, Message::LeaderInfo { conn, epoch: 2 });
    let Some(Output::Send { msg: Message::AckEpoch { log_ends, last_zxid, .. }, .. }) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!((log_ends.clone(), *last_zxid), (vec![z(1, 3)], z(1, 3)));
    // The new leader has (1,1) then its own (2,1): common point (1,1).
    let leader_ends = [z(1, 1), z(2, 1)];
    assert_eq!(common_point(0, &leader_ends, 0, log_ends), Some(z(1, 1)));
    let entries = log_of(&[z(2, 1)]);
    let sync = SyncMode::Diff { after: z(1, 1) };
    let msg = Message::NewLeader { conn, epoch: 2, sync, entries: entries.clone(), commit: z(1, 1) };
    assert_eq!(
        recv(&mut peer, 3, msg),
        vec![Output::Truncate { after: z(1, 1) }, Output::Persist { entries }]
    );
    assert_eq!(peer.last_zxid(), z(2, 1));
}

#[test]
fn common_point_finds_the_divergence_or_asks_for_a_snapshot() {
    // Leader: a1 a2 a3 (epoch 1), c1 c2 (epoch 3). Learner: a1, b1 (epoch 2).
    let leader = [z(1, 3), z(3, 2)];
    assert_eq!(common_point(0, &leader, 0, &[z(1, 1), z(2, 1)]), Some(z(1, 1)));
    // Equal logs.
    assert_eq!(common_point(0, &leader, 0, &leader), Some(z(3, 2)));
    // Empty learner, leader window from the start: DIFF everything.
    assert_eq!(common_point(0, &leader, 0, &[]), Some(0));
    // Empty learner, leader window trimmed: SNAP.
    assert_eq!(common_point(z(1, 2), &leader, 0, &[]), None);
    // Learner behind the leader's window: SNAP.
    assert_eq!(common_point(z(3, 1), &[z(3, 2)], 0, &[z(1, 3)]), None);
}

/// A one-voter ensemble (a standalone server): it leads at its first tick, its own durable
/// log is the quorum, and a proposal commits as soon as it is persisted.
#[test]
fn one_voter_leads_at_once_and_commits_on_persisted() {
    let mut config = Config::new(1, vec![1]);
    config.tick_ms = 2000;
    let tail = log_of(&[z(3, 1), z(3, 2)]);
    let durable = DurableState {
        current_epoch: 3,
        accepted_epoch: 3,
        applied_zxid: z(3, 0),
        log_base: z(3, 0),
        log_tail: tail,
    };
    let mut peer = Peer::new(config, durable, 7, 0);
    let mut all = Vec::new();
    for input in [Input::Tick { now_ms: 0 }, Input::Persisted { upto: z(3, 2) }] {
        let out = step(&mut peer, input);
        all.extend(out);
    }
    eprintln!("{all:?}");
    assert_eq!(peer.role(), Role::Leading, "{all:?}");
    assert!(all.contains(&Output::Commit { upto: z(3, 2) }), "{all:?}");
    let zxid = peer.next_zxid().unwrap();
    assert_eq!(zxid, z(4, 1));
    let out = step(&mut peer, Input::Propose { zxid, payload: Bytes::from_static(b"x") });
    assert_eq!(out, vec![Output::Persist { entries: vec![(zxid, Bytes::from_static(b"x"))] }]);
    let out = step(&mut peer, Input::Persisted { upto: zxid });
    assert_eq!(out, vec![Output::Commit { upto: zxid }]);
}
