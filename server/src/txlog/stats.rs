//! Counters the log writer keeps for `mntr` and the metrics endpoint: fsync latency, txns
//! and bytes per batch, queue depth. Lock-free: the writer thread updates, anyone reads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A histogram with power-of-two microsecond buckets (bucket i holds values < 2^i µs).
pub struct Histogram {
    buckets: [AtomicU64; 40],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
    min: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
        }
    }
}

impl Histogram {
    pub fn record(&self, value: u64) {
        let bucket = (64 - value.leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        self.max.fetch_max(value, Relaxed);
        self.min.fetch_min(value, Relaxed);
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count() == 0 { 0 } else { self.min.load(Relaxed) }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= rank {
                return (1u64 << i).min(self.max());
            }
        }
        self.max()
    }

    /// (upper bound, cumulative count) per bucket, for Prometheus exposition.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut seen = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                seen += b.load(Relaxed);
                (1u64 << i, seen)
            })
            .collect()
    }
}

#[derive(Default)]
pub struct LogStats {
    /// fdatasync (or write + fdatasync on io_uring) latency in µs.
    pub fsync_micros: Histogram,
    pub txns_per_batch: Histogram,
    pub bytes_per_batch: Histogram,
    pub appended_txns: AtomicU64,
    pub written_txns: AtomicU64,
    pub written_bytes: AtomicU64,
    pub batches: AtomicU64,
    pub segments_created: AtomicU64,
}

impl LogStats {
    /// Txns appended but not yet written.
    pub fn queue_depth(&self) -> u64 {
        self.appended_txns.load(Relaxed).saturating_sub(self.written_txns.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_buckets() {
        let h = Histogram::default();
        for v in [1, 2, 3, 100, 1000] {
            h.record(v);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 1106);
        assert_eq!(h.max(), 1000);
        assert_eq!(h.quantile(0.5), 4);
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
