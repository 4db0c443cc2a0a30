//! The core's view of the local transaction log: the durable watermark, the applied
//! watermark and an in-memory window of recent entries (every entry above the applied zxid
//! plus up to `commit_log_count` applied ones), used for DIFF sync.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Zxid, zxid_epoch};

#[derive(Debug, Clone)]
pub(super) struct Log {
    /// The zxid of the entry just before `entries` (0: the window starts the log).
    pub(super) base: Zxid,
    /// Recent entries, strictly increasing, all > `base`.
    pub(super) entries: VecDeque<(Zxid, Bytes)>,
    /// Everything ≤ this is durable.
    pub(super) persisted: Zxid,
    /// Everything ≤ this has been handed to the shell as `Commit` (or restored applied).
    pub(super) applied: Zxid,
}

impl Log {
    pub(super) fn restore(base: Zxid, tail: Vec<(Zxid, Bytes)>, applied: Zxid) -> Log {
        let log = Log { base, entries: tail.into(), persisted: 0, applied };
        let last = log.last();
        let mut log = log;
        log.persisted = last;
        assert!(base <= applied, "the log tail must cover every entry above the applied zxid");
        assert!(applied <= last, "applied zxid beyond the log");
        log.validate();
        log
    }

    pub(super) fn last(&self) -> Zxid {
        self.entries.back().map_or(self.base, |entry| entry.0)
    }

    pub(super) fn append(&mut self, zxid: Zxid, payload: Bytes) {
        assert!(zxid > self.last(), "log zxids must increase");
        self.entries.push_back((zxid, payload));
    }

    /// Drops every entry > `after`.
    pub(super) fn truncate(&mut self, after: Zxid) {
        assert!(after >= self.applied, "truncating applied entries");
        assert!(after >= self.base, "truncating below the window");
        while self.entries.back().is_some_and(|entry| entry.0 > after) {
            self.entries.pop_back();
        }
        self.persisted = self.persisted.min(self.last());
    }

    /// Replaces the whole log by a snapshot at `zxid` (durable, applied).
    pub(super) fn install_snapshot(&mut self, zxid: Zxid) {
        self.entries.clear();
        self.base = zxid;
        self.persisted = zxid;
        self.applied = zxid;
    }

    pub(super) fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || self.entries.binary_search_by_key(&zxid, |entry| entry.0).is_ok()
    }

    /// Entries with zxid > `after` (`after` must be `base` or in the window).
    pub(super) fn entries_after(&self, after: Zxid) -> Vec<(Zxid, Bytes)> {
        debug_assert!(self.contains(after));
        self.entries.iter().filter(|entry| entry.0 > after).cloned().collect()
    }

    /// The last zxid of each epoch present in `base` + window, ascending.
    pub(super) fn epoch_ends(&self) -> Vec<Zxid> {
        let mut ends: Vec<Zxid> = Vec::new();
        let all = std::iter::once(self.base).filter(|z| *z > 0).chain(self.entries.iter().map(|e| e.0));
        for zxid in all {
            match ends.last_mut() {
                Some(last) if zxid_epoch(*last) == zxid_epoch(zxid) => *last = zxid,
                _ => ends.push(zxid),
            }
        }
        ends
    }

    /// Forgets applied entries beyond the newest `keep` applied ones.
    /// Drops applied entries beyond the newest `keep`, but never an entry after `pin` (a
    /// snapshot under way for a learner needs every entry after the point it was asked at).
    pub(super) fn trim(&mut self, keep: usize, pin: Option<Zxid>) {
        let upto = pin.map_or(self.applied, |pin| pin.min(self.applied));
        // Entries are in zxid order: a binary search, not a walk of the window at every step.
        let applied_count = self.entries.partition_point(|entry| entry.0 <= upto);
        let drop = applied_count.saturating_sub(keep);
        if drop > 0
            && let Some((zxid, _)) = self.entries.drain(..drop).last()
        {
            self.base = zxid;
        }
    }

    pub(super) fn validate(&self) {
        let mut previous = self.base;
        for (zxid, _) in &self.entries {
            assert!(*zxid > previous, "log window not strictly increasing");
            previous = *zxid;
        }
        assert!(self.base <= self.applied, "window lost unapplied entries");
        assert!(self.applied <= self.persisted, "applied beyond durable");
        assert!(self.persisted <= self.last(), "durable beyond the log");
    }
}

/// The greatest zxid both logs certainly contain, from the epoch summaries of the leader's
/// window and the learner's. Logs that share a zxid agree up to it (one leader per epoch,
/// contiguous counters per epoch), so the common prefix ends in the highest shared epoch at
/// the smaller of the two counters. `None` when the windows cannot tell: SNAP.
pub(super) fn common_point(
    leader_base: Zxid,
    leader_ends: &[Zxid],
    learner_base: Zxid,
    learner_ends: &[Zxid],
) -> Option<Zxid> {
    let mut best: Option<Zxid> = if leader_base == 0 && learner_base == 0 { Some(0) } else { None };
    for learner_end in learner_ends {
        let epoch = zxid_epoch(*learner_end);
        if let Some(leader_end) = leader_ends.iter().find(|z| zxid_epoch(**z) == epoch) {
            let candidate = (*leader_end).min(*learner_end);
            best = Some(best.map_or(candidate, |b| b.max(candidate)));
        }
    }
    best.filter(|point| *point >= leader_base.max(learner_base))
}
