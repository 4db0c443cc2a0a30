//! Deterministic simulation of a Zab ensemble: N peers in one thread on simulated time, one
//! seeded PRNG driving message drop / delay / reorder / duplication, swizzle-clogging and
//! partitions, crashes that lose unsynced log entries, restarts from the durable state, and
//! clients proposing at whichever peer leads. Invariants are checked after every step; each
//! run ends with a liveness phase (faults off: a leader must emerge, everyone converges).
//!
//! Connection ends are events, as TCP gives them: a crashed peer's links end with EOF at
//! most peers (`Input::LinkDown`, delivered after everything it sent), but with silence at
//! some (a partition or a paused process gives no FIN/RST); links also reset between live
//! peers. After every step the leader-loss detection bound is checked: no peer still
//! follows a crashed leader once it got the EOF, and none does past the syncLimit /
//! initLimit timeouts when it got silence.
//!
//! Observers (the last peers of a run with `observers`) go through the same faults. Checked
//! for them: they never lead and never ack, every commit of a leader is durable at a quorum
//! of *voters* (an observer's log never makes a quorum), they apply the same history as
//! everyone, and they converge in the liveness phase.
//!
//! Replay one seed: `FK_SIM_SEED=1234 FK_SIM_PEERS=3 FK_SIM_OBSERVERS=0 cargo test -p
//! ferrokeeper-server --lib zab::sim -- --nocapture` (`FK_SIM_TRACE=1` prints every event).
//! `FK_SIM_SEEDS` sets the number of seeds per test.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{Config, DurableState, Epoch, Input, Message, Output, Peer, Role, Sid, Zxid};

use crate::replica::sim::Rng;

const STEP_MS: u64 = 5;

struct SimPeer {
    peer: Option<Peer>,
    durable: Vec<(Zxid, Bytes)>,
    pending: Vec<(Zxid, Bytes)>,
    applied: Vec<(Zxid, Bytes)>,
    digest: u64,
    current_epoch: Epoch,
    accepted_epoch: Epoch,
}

#[derive(Clone, Copy)]
struct Faults {
    drop: f64,
    duplicate: f64,
    delay_max_ms: u64,
    crash: f64,
    restart: f64,
    clog: f64,
    propose: f64,
}

struct Sim {
    rng: Rng,
    seed: u64,
    now: u64,
    config: Config,
    peers: Vec<SimPeer>,
    queue: BTreeMap<(u64, u64), (Sid, Sid, Delivery)>,
    sequence: u64,
    clogged: BTreeSet<(Sid, Sid)>,
    swizzle: Vec<(Sid, Sid)>,
    faults: Faults,
    history: Vec<(Zxid, Bytes)>,
    history_digest: Vec<u64>,
    leaders: BTreeMap<Epoch, Sid>,
    client_seq: Vec<u64>,
    client_epoch: Vec<Epoch>,
    history_client_seq: BTreeMap<u32, u64>,
    outstanding: BTreeMap<(usize, Zxid), Bytes>,
    acked: Vec<(Zxid, Bytes)>,
    trace: bool,
    /// Coverage of rare paths: [crashes, truncates, snapshots installed, established leaders,
    /// link EOFs delivered, link resets between live peers, crashes of a leader, informs
    /// delivered to observers].
    counts: [u64; 8],
    /// When each peer last crashed (while it is down).
    crashed_at: BTreeMap<Sid, u64>,
    /// (peer index, crashed sid): the peer got the EOF of the crashed peer's link.
    eof_seen: BTreeSet<(usize, Sid)>,
    /// (peer index, crashed sid): the peer followed the crashed peer when it crashed, and has
    /// not stopped since.
    orphans: BTreeSet<(usize, Sid)>,
    /// Boots of each peer so far (tells one life's connections from the next's).
    lives: Vec<u64>,
    /// Snapshots for learners cut now and handed over later, as a shell serializing in
    /// chunks does: (due time, peer index, its life, learner, zxid, data).
    snapshots_due: Vec<(u64, usize, u64, Sid, Zxid, Bytes)>,
    /// The largest message delay of the run (bounds silence detection).
    delay_max_ms: u64,
}

/// What travels on a simulated link: a message, or the end of the connection.
#[derive(Debug)]
enum Delivery {
    Msg(Message),
    /// The connection ended; `crash`: because the sender died (not a reset between live
    /// peers); `life`: which boot of the sender the connection belonged to.
    LinkDown {
        crash: bool,
        life: u64,
    },
}

fn digest_step(previous: u64, entry: &(Zxid, Bytes)) -> u64 {
    let mut hash = previous ^ 0xcbf2_9ce4_8422_2325;
    for byte in entry.0.to_le_bytes().iter().chain(entry.1.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

fn encode_list(list: &[(Zxid, Bytes)]) -> Bytes {
    let mut out = Vec::new();
    for (zxid, payload) in list {
        out.extend_from_slice(&zxid.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }
    Bytes::from(out)
}

fn decode_list(data: &[u8]) -> Vec<(Zxid, Bytes)> {
    let mut list = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let zxid = i64::from_le_bytes(data[at..at + 8].try_into().unwrap());
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        list.push((zxid, Bytes::copy_from_slice(&data[at + 12..at + 12 + len])));
        at += 12 + len;
    }
    list
}

fn client_of(payload: &Bytes) -> (u32, u64) {
    let client = u32::from_le_bytes(payload[0..4].try_into().unwrap());
    let seq = u64::from_le_bytes(payload[4..12].try_into().unwrap());
    (client, seq)
}

impl Sim {
    fn new(seed: u64, voters: usize, observers: usize) -> Sim {
        let mut rng = Rng(seed);
        let peers = voters + observers;
        let voters: Vec<Sid> = (1..=voters as u64).collect();
        let mut config = Config::new(1, voters);
        config.observers = (config.voters.len() as u64 + 1..=peers as u64).collect();
        config.tick_ms = 100;
        config.init_limit = 10;
        config.sync_limit = 5;
        config.election_timeout_ms = 50 + rng.below(100);
        config.election_timeout_max_ms = 800;
        config.finalize_wait_ms = 20 + rng.below(60);
        config.commit_log_count = [5, 20, 500][rng.below(3) as usize];
        config.proposals_outstanding_max = 1 + rng.below(30) as usize;
        let intensity = rng.below(4);
        let faults = Faults {
            drop: [0.0, 0.01, 0.05, 0.2][intensity as usize],
            duplicate: [0.0, 0.02, 0.05, 0.05][rng.below(4) as usize],
            delay_max_ms: [5, 30, 150, 400][rng.below(4) as usize],
            crash: [0.0, 0.0005, 0.002, 0.005][rng.below(4) as usize],
            restart: 0.01,
            clog: [0.0, 0.002, 0.01, 0.03][rng.below(4) as usize],
            propose: [0.05, 0.2, 0.5][rng.below(3) as usize],
        };
        let mut sim = Sim {
            rng,
            seed,
            now: 0,
            config,
            peers: Vec::new(),
            queue: BTreeMap::new(),
            sequence: 0,
            clogged: BTreeSet::new(),
            swizzle: Vec::new(),
            faults,
            history: Vec::new(),
            history_digest: Vec::new(),
            leaders: BTreeMap::new(),
            client_seq: vec![0; 3],
            client_epoch: vec![0; 3],
            history_client_seq: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            acked: Vec::new(),
            trace: std::env::var("FK_SIM_TRACE").is_ok(),
            counts: [0; 8],
            crashed_at: BTreeMap::new(),
            eof_seen: BTreeSet::new(),
            orphans: BTreeSet::new(),
            lives: vec![0; peers],
            snapshots_due: Vec::new(),
            delay_max_ms: faults.delay_max_ms,
        };
        for _ in 0..peers {
            sim.peers.push(SimPeer {
                peer: None,
                durable: Vec::new(),
                pending: Vec::new(),
                applied: Vec::new(),
                digest: 0,
                current_epoch: 0,
                accepted_epoch: 0,
            });
        }
        for index in 0..peers {
            sim.boot(index);
        }
        sim
    }

    fn sid(index: usize) -> Sid {
        index as Sid + 1
    }

    fn fail(&self, what: &str) -> ! {
        panic!("zab sim invariant violated at t={}ms (seed {}): {what}", self.now, self.seed);
    }

    fn boot(&mut self, index: usize) {
        let seed = self.rng.next();
        let keep = if self.rng.chance(0.5) {
            self.peers[index].applied.len()
        } else {
            self.rng.below(self.peers[index].applied.len() as u64 + 1) as usize
        };
        let sim_peer = &mut self.peers[index];
        sim_peer.pending.clear();
        sim_peer.applied.truncate(keep);
        sim_peer.digest = sim_peer.applied.iter().fold(0, digest_step);
        let base_index = keep.saturating_sub(self.rng.below(30) as usize);
        let sim_peer = &mut self.peers[index];
        let durable = DurableState {
            current_epoch: sim_peer.current_epoch,
            accepted_epoch: sim_peer.accepted_epoch,
            applied_zxid: sim_peer.applied.last().map_or(0, |e| e.0),
            log_base: if base_index == 0 { 0 } else { sim_peer.durable[base_index - 1].0 },
            log_tail: sim_peer.durable[base_index..].to_vec(),
        };
        let mut config = self.config.clone();
        config.sid = Sim::sid(index);
        let peer = Peer::new(config, durable, seed, self.now);
        peer.validate();
        self.peers[index].peer = Some(peer);
        let sid = Sim::sid(index);
        self.lives[index] += 1;
        self.crashed_at.remove(&sid);
        // A restarted process knows nothing of the links its previous life saw end.
        self.eof_seen.retain(|(peer, crashed)| *crashed != sid && *peer != index);
        self.orphans.retain(|(peer, crashed)| *crashed != sid && *peer != index);
        if self.trace {
            println!("{:>7} boot {}", self.now, Sim::sid(index));
        }
    }

    fn crash(&mut self, index: usize) {
        if self.trace {
            println!("{:>7} crash {}", self.now, Sim::sid(index));
        }
        self.counts[0] += 1;
        if self.peers[index].peer.as_ref().is_some_and(|p| p.role() == Role::Leading) {
            self.counts[6] += 1;
        }
        self.peers[index].peer = None;
        self.peers[index].pending.clear();
        self.outstanding.retain(|(peer, _), _| *peer != index);
        let sid = Sim::sid(index);
        self.crashed_at.insert(sid, self.now);
        self.orphans.retain(|(peer, _)| *peer != index);
        for (other, sim_peer) in self.peers.iter().enumerate() {
            if sim_peer.peer.as_ref().and_then(|p| p.following()) == Some(sid) {
                self.orphans.insert((other, sid));
            }
        }
        // The kernel closes the dead process's sockets: most peers see EOF, after whatever it
        // had sent; some see nothing (the FIN lost in a partition).
        for other in 1..=self.peers.len() as Sid {
            if other != sid && self.rng.chance(0.8) {
                self.link_down(sid, other, true);
            }
        }
    }

    /// Ends the connection `from` → `to`: `to` gets `LinkDown { from }` after every message
    /// already on its way (TCP order).
    fn link_down(&mut self, from: Sid, to: Sid, crash: bool) {
        let last = self
            .queue
            .iter()
            .filter(|(_, (f, t, _))| *f == from && *t == to)
            .map(|(key, _)| key.0)
            .max()
            .unwrap_or(self.now);
        let at = last.max(self.now) + 1 + self.rng.below(5);
        self.sequence += 1;
        let life = self.lives[from as usize - 1];
        self.queue.insert((at, self.sequence), (from, to, Delivery::LinkDown { crash, life }));
    }

    fn step_peer(&mut self, index: usize, input: Input) {
        if self.trace {
            println!("{:>7} {} <- {:?}", self.now, Sim::sid(index), input);
        }
        let Some(peer) = self.peers[index].peer.as_mut() else { return };
        let mut out = Vec::new();
        peer.step(input, &mut out);
        peer.validate();
        let mut follow_ups = Vec::new();
        for output in out {
            if self.trace {
                println!("{:>7} {} -> {:?}", self.now, Sim::sid(index), output);
            }
            self.execute(index, output, &mut follow_ups);
        }
        for input in follow_ups {
            self.step_peer(index, input);
        }
    }

    fn is_observer(&self, sid: Sid) -> bool {
        self.config.observers.contains(&sid)
    }

    /// A leader commits only what a quorum of voters made durable: observers never count.
    fn check_commit_quorum(&self, index: usize, upto: Zxid) {
        let leading = self.peers[index].peer.as_ref().is_some_and(|p| p.role() == Role::Leading);
        if !leading || upto == 0 {
            return;
        }
        let holders = self
            .config
            .voters
            .iter()
            .filter(|sid| self.peers[**sid as usize - 1].durable.iter().any(|e| e.0 == upto))
            .count();
        if holders < self.config.voters.len() / 2 + 1 {
            self.fail(&format!(
                "leader {} commits {upto:#x}, durable at only {holders} voters",
                Sim::sid(index)
            ));
        }
    }

    fn execute(&mut self, index: usize, output: Output, follow_ups: &mut Vec<Input>) {
        let from = Sim::sid(index);
        match output {
            Output::Send { to, msg } => {
                if self.is_observer(from)
                    && matches!(
                        msg,
                        Message::Ack { .. }
                            | Message::Proposal { .. }
                            | Message::Commit { .. }
                            | Message::Inform { .. }
                            | Message::LeaderInfo { .. }
                            | Message::Notification { state: super::PeerState::Following, .. }
                            | Message::Notification { state: super::PeerState::Leading, .. }
                    )
                {
                    self.fail(&format!("observer {from} sent {msg:?}"));
                }
                self.send(from, to, msg)
            }
            Output::Persist { entries } => {
                let sim_peer = &mut self.peers[index];
                let mut last = sim_peer.pending.last().or(sim_peer.durable.last()).map_or(0, |e| e.0);
                for entry in entries {
                    if entry.0 <= last {
                        self.fail(&format!("peer {from}: log zxids not increasing"));
                    }
                    last = entry.0;
                    self.peers[index].pending.push(entry);
                }
            }
            Output::Truncate { after } => {
                self.counts[1] += 1;
                let sim_peer = &mut self.peers[index];
                if sim_peer.applied.last().is_some_and(|e| e.0 > after) {
                    self.fail(&format!("peer {from}: truncating applied entries"));
                }
                sim_peer.durable.retain(|e| e.0 <= after);
                sim_peer.pending.retain(|e| e.0 <= after);
            }
            Output::InstallSnapshot { zxid, data } => {
                self.counts[2] += 1;
                let list = decode_list(&data);
                if list.last().map_or(0, |e| e.0) != zxid {
                    self.fail("snapshot zxid mismatch");
                }
                let sim_peer = &mut self.peers[index];
                sim_peer.durable = list.clone();
                sim_peer.pending.clear();
                sim_peer.applied.clear();
                sim_peer.digest = 0;
                for entry in list {
                    self.apply(index, entry);
                }
            }
            Output::Commit { upto } => loop {
                self.check_commit_quorum(index, upto);
                let sim_peer = &self.peers[index];
                let next = sim_peer.applied.len();
                if sim_peer.applied.last().is_some_and(|e| e.0 >= upto) {
                    break;
                }
                let Some(entry) = sim_peer.durable.get(next).cloned() else {
                    self.fail(&format!("peer {from}: commit of an entry that is not durable"))
                };
                if entry.0 > upto {
                    self.fail(&format!("peer {from}: commit upto {upto:#x} is not a logged zxid"));
                }
                self.apply(index, entry);
            },
            Output::SaveEpochs { current, accepted } => {
                let sim_peer = &mut self.peers[index];
                if accepted < sim_peer.accepted_epoch || current < sim_peer.current_epoch {
                    self.fail(&format!("peer {from}: epochs went backwards"));
                }
                sim_peer.current_epoch = current;
                sim_peer.accepted_epoch = accepted;
            }
            Output::NeedSnapshot { to } => {
                let applied = &self.peers[index].applied;
                let zxid = applied.last().map_or(0, |e| e.0);
                let data = encode_list(applied);
                if self.rng.chance(0.5) {
                    follow_ups.push(Input::SnapshotReady { to, zxid, data });
                } else {
                    let due = self.now + 1 + self.rng.below(300);
                    self.snapshots_due.push((due, index, self.lives[index], to, zxid, data));
                }
            }
            Output::RoleChanged { role, epoch, .. } => {
                if role == Role::Leading {
                    self.counts[3] += 1;
                    if self.is_observer(from) {
                        self.fail(&format!("observer {from} leads"));
                    }
                }
                if role == Role::Leading
                    && let Some(other) = self.leaders.insert(epoch, from)
                    && other != from
                {
                    self.fail(&format!("two leaders in epoch {epoch}: {other} and {from}"));
                }
                if role != Role::Leading {
                    self.outstanding.retain(|(peer, _), _| *peer != index);
                }
            }
            Output::ProposalDropped { zxid } => {
                self.outstanding.remove(&(index, zxid));
            }
        }
    }

    fn apply(&mut self, index: usize, entry: (Zxid, Bytes)) {
        let position = self.peers[index].applied.len();
        if self.peers[index].durable.get(position) != Some(&entry) {
            self.fail(&format!("peer {}: applied entry not in its durable log", Sim::sid(index)));
        }
        let digest = digest_step(self.peers[index].digest, &entry);
        if position < self.history.len() {
            if self.history[position] != entry {
                self.fail(&format!(
                    "peer {} applied {:#x} at position {position}, history has {:#x}",
                    Sim::sid(index),
                    entry.0,
                    self.history[position].0
                ));
            }
            if self.history_digest[position] != digest {
                self.fail("state digest differs at equal applied zxid");
            }
        } else {
            if self.history.last().is_some_and(|e| e.0 >= entry.0) {
                self.fail("history zxids not increasing");
            }
            let (client, seq) = client_of(&entry.1);
            if self.history_client_seq.get(&client).is_some_and(|last| *last >= seq) {
                self.fail(&format!("client {client} FIFO order violated at seq {seq}"));
            }
            self.history_client_seq.insert(client, seq);
            self.history.push(entry.clone());
            self.history_digest.push(digest);
        }
        if let Some(payload) = self.outstanding.remove(&(index, entry.0)) {
            if payload != entry.1 {
                self.fail("the leader applied a different payload than it proposed");
            }
            self.acked.push(entry.clone());
        }
        self.peers[index].digest = digest;
        self.peers[index].applied.push(entry);
    }

    fn send(&mut self, from: Sid, to: Sid, msg: Message) {
        let copies = if self.rng.chance(self.faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(self.faults.drop) {
                continue;
            }
            let delay = 1 + self.rng.below(self.faults.delay_max_ms);
            self.sequence += 1;
            self.queue.insert((self.now + delay, self.sequence), (from, to, Delivery::Msg(msg.clone())));
        }
    }

    fn deliver(&mut self) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (from, to, delivery) = entry.remove();
            if self.clogged.contains(&(from, to)) {
                continue;
            }
            match delivery {
                Delivery::Msg(msg) => {
                    if matches!(msg, Message::Inform { .. }) {
                        self.counts[7] += 1;
                    }
                    self.step_peer(to as usize - 1, Input::Recv { from, msg })
                }
                Delivery::LinkDown { crash, life } => {
                    self.counts[4] += 1;
                    if crash && life == self.lives[from as usize - 1] && self.crashed_at.contains_key(&from) {
                        self.eof_seen.insert((to as usize - 1, from));
                    }
                    self.step_peer(to as usize - 1, Input::LinkDown { peer: from });
                }
            }
        }
    }

    fn chaos(&mut self) {
        let n = self.peers.len();
        for index in 0..n {
            if self.peers[index].peer.is_some() {
                if self.rng.chance(self.faults.crash) {
                    self.crash(index);
                }
            } else if self.rng.chance(self.faults.restart) {
                self.boot(index);
            }
        }
        if self.rng.chance(self.faults.clog / 4.0) {
            // A connection between two live peers resets (both ends see it end).
            let a = self.rng.below(n as u64) as usize;
            let b = self.rng.below(n as u64) as usize;
            if a != b && self.peers[a].peer.is_some() && self.peers[b].peer.is_some() {
                self.counts[5] += 1;
                self.link_down(Sim::sid(a), Sim::sid(b), false);
                self.link_down(Sim::sid(b), Sim::sid(a), false);
            }
        }
        if self.rng.chance(self.faults.clog) {
            if self.swizzle.is_empty() && self.clogged.is_empty() {
                // Swizzle: clog the links of a random subset one by one...
                let mut links = Vec::new();
                for index in 0..n {
                    if self.rng.chance(0.5) {
                        for other in 0..n {
                            if other != index {
                                links.push((Sim::sid(index), Sim::sid(other)));
                                links.push((Sim::sid(other), Sim::sid(index)));
                            }
                        }
                    }
                }
                self.swizzle = links;
            } else if let Some(link) = self.swizzle.pop() {
                self.clogged.insert(link);
            } else if !self.clogged.is_empty() {
                // ... then unclog in random order.
                let at = self.rng.below(self.clogged.len() as u64) as usize;
                let link = *self.clogged.iter().nth(at).unwrap();
                self.clogged.remove(&link);
            }
        }
    }

    fn leader_index(&self) -> Option<usize> {
        (0..self.peers.len())
            .filter(|i| {
                self.peers[*i]
                    .peer
                    .as_ref()
                    .is_some_and(|p| p.role() == Role::Leading && p.next_zxid().is_some())
            })
            .max_by_key(|i| self.peers[*i].peer.as_ref().map_or(0, |p| p.current_epoch()))
    }

    fn propose(&mut self) {
        let Some(index) = self.leader_index() else { return };
        let client = self.rng.below(self.client_seq.len() as u64) as usize;
        let peer = self.peers[index].peer.as_ref().unwrap();
        let epoch = peer.current_epoch();
        if epoch < self.client_epoch[client] {
            return;
        }
        let Some(zxid) = peer.next_zxid() else { return };
        self.client_epoch[client] = epoch;
        self.client_seq[client] += 1;
        let mut payload = Vec::new();
        payload.extend_from_slice(&(client as u32).to_le_bytes());
        payload.extend_from_slice(&self.client_seq[client].to_le_bytes());
        let payload = Bytes::from(payload);
        self.outstanding.insert((index, zxid), payload.clone());
        self.step_peer(index, Input::Propose { zxid, payload });
    }

    fn tick(&mut self, live: bool) {
        self.now += STEP_MS;
        self.deliver();
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.snapshots_due).into_iter().partition(|s| s.0 <= now);
        self.snapshots_due = later;
        for (_, index, life, to, zxid, data) in due {
            if self.lives[index] == life && self.peers[index].peer.is_some() {
                self.step_peer(index, Input::SnapshotReady { to, zxid, data });
            }
        }
        for index in 0..self.peers.len() {
            if self.peers[index].peer.is_none() {
                continue;
            }
            if self.rng.chance(0.3) && !self.peers[index].pending.is_empty() {
                let sim_peer = &mut self.peers[index];
                let pending = std::mem::take(&mut sim_peer.pending);
                sim_peer.durable.extend(pending);
                let upto = sim_peer.durable.last().map_or(0, |e| e.0);
                self.step_peer(index, Input::Persisted { upto });
            }
            if self.now.is_multiple_of(10) {
                self.step_peer(index, Input::Tick { now_ms: self.now });
            }
        }
        if !live {
            self.chaos();
        }
        self.check_leader_loss_detection();
        if self.rng.chance(self.faults.propose) {
            self.propose();
        }
    }

    /// A peer following a crashed leader notices at once when its connection ended with EOF,
    /// and within the timeouts when it ended in silence.
    fn check_leader_loss_detection(&mut self) {
        let tick = self.config.tick_ms;
        let limit = self.config.sync_limit.max(self.config.init_limit) * tick;
        let following: Vec<Option<Sid>> =
            self.peers.iter().map(|p| p.peer.as_ref().and_then(|p| p.following())).collect();
        self.orphans.retain(|(index, leader)| following[*index] == Some(*leader));
        for (index, leader) in following.iter().enumerate() {
            let Some(leader) = *leader else { continue };
            let Some(&crashed) = self.crashed_at.get(&leader) else { continue };
            if self.eof_seen.contains(&(index, leader)) {
                self.fail(&format!(
                    "peer {} follows {leader}, crashed at {crashed}ms, after its link ended",
                    Sim::sid(index)
                ));
            }
            if self.orphans.contains(&(index, leader))
                && self.now > crashed + self.delay_max_ms + limit + tick + 2 * STEP_MS
            {
                self.fail(&format!(
                    "peer {} still follows {leader}, silent since its crash at {crashed}ms",
                    Sim::sid(index)
                ));
            }
        }
    }

    fn converged(&self, final_zxid: Option<Zxid>) -> bool {
        let Some(leader) = self.leader_index() else { return false };
        let Some(final_zxid) = final_zxid else { return false };
        let leader_sid = Sim::sid(leader);
        let reference = &self.peers[leader].applied;
        if !reference.iter().any(|e| e.0 == final_zxid) {
            return false;
        }
        self.peers.iter().all(|p| {
            p.peer.as_ref().is_some_and(|peer| peer.leader() == Some(leader_sid))
                && p.applied.len() == reference.len()
        })
    }

    fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.tick(false);
        }
        // Liveness: heal everything and expect convergence.
        self.faults.drop = 0.0;
        self.faults.duplicate = 0.0;
        self.faults.delay_max_ms = 10;
        self.faults.propose = 0.0;
        self.clogged.clear();
        self.swizzle.clear();
        for index in 0..self.peers.len() {
            if self.peers[index].peer.is_none() {
                self.boot(index);
            }
        }
        let deadline = self.now + 60_000;
        let mut final_write: Option<(usize, Zxid)> = None;
        let mut final_acked: Option<Zxid> = None;
        while self.now < deadline {
            self.tick(true);
            if final_acked.is_none() {
                if let Some((index, zxid)) = final_write
                    && !self.outstanding.contains_key(&(index, zxid))
                {
                    final_write = None;
                    if self.acked.last().is_some_and(|e| e.0 == zxid) {
                        final_acked = Some(zxid);
                    }
                }
                if final_write.is_none() && final_acked.is_none() {
                    let before = self.sequence;
                    if let Some(index) = self.leader_index() {
                        let zxid = self.peers[index].peer.as_ref().unwrap().next_zxid().unwrap();
                        self.propose();
                        if self.outstanding.contains_key(&(index, zxid)) {
                            final_write = Some((index, zxid));
                        }
                    }
                    let _ = before;
                }
            }
            if self.converged(final_acked) {
                break;
            }
        }
        if !self.converged(final_acked) {
            let roles: Vec<String> = self
                .peers
                .iter()
                .map(|p| {
                    p.peer.as_ref().map_or("down".to_string(), |peer| {
                        format!("{:?}/{:?} applied {}", peer.role(), peer.leader(), p.applied.len())
                    })
                })
                .collect();
            self.fail(&format!("no convergence in the liveness phase: {roles:?}"));
        }
        for entry in &self.acked {
            for (index, p) in self.peers.iter().enumerate() {
                if !p.applied.contains(entry) {
                    self.fail(&format!("acknowledged write {:#x} lost on peer {}", entry.0, Sim::sid(index)));
                }
            }
        }
    }
}

fn run_seeds(peers: usize, observers: usize, default_seeds: u64) {
    let steps = 3000;
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    if let Ok(seed) = std::env::var("FK_SIM_SEED") {
        let seed: u64 = seed.parse().unwrap();
        if env("FK_SIM_PEERS").unwrap_or(peers) == peers
            && env("FK_SIM_OBSERVERS").unwrap_or(observers) == observers
        {
            Sim::new(seed, peers, observers).run(steps);
        }
        return;
    }
    let seeds: u64 = std::env::var("FK_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_seeds);
    let start = std::time::Instant::now();
    let mut acked = 0;
    let mut counts = [0u64; 8];
    for seed in 0..seeds {
        let seed = seed * 1_000_003 + (peers + 10 * observers) as u64;
        let result = std::panic::catch_unwind(|| {
            let mut sim = Sim::new(seed, peers, observers);
            sim.run(steps);
            (sim.acked.len(), sim.counts)
        });
        match result {
            Ok((count, run_counts)) => {
                acked += count;
                for (total, count) in counts.iter_mut().zip(run_counts) {
                    *total += count;
                }
            }
            Err(panic) => {
                eprintln!(
                    "replay: FK_SIM_SEED={seed} FK_SIM_PEERS={peers} FK_SIM_OBSERVERS={observers} cargo test -p ferrokeeper-server --lib zab::sim -- --nocapture"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    let [crashes, truncates, snapshots, leaders, eofs, resets, leader_crashes, informs] = counts;
    eprintln!(
        "zab sim: {seeds} seeds x {peers} voters + {observers} observers in {:?}: {acked} acknowledged writes, {crashes} crashes \
         ({leader_crashes} of a leader), {eofs} link EOFs, {resets} link resets, {truncates} truncations, \
         {snapshots} snapshot syncs, {leaders} established leaders, {informs} informs",
        start.elapsed()
    );
}

#[test]
fn sim_three_peers() {
    run_seeds(3, 0, 1000);
}

#[test]
fn sim_five_peers() {
    run_seeds(5, 0, 1000);
}

#[test]
fn sim_three_voters_two_observers() {
    run_seeds(3, 2, 300);
}
