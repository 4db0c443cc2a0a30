//! Samplers for the workload's distributions: op mix, keys, value sizes. All are precomputed
//! so a draw costs a few float operations and no allocation.

use rand::Rng;

use crate::workload::{KeyDist, MixOp, SizeDist, Workload};

/// Weighted op mix as a cumulative table.
#[derive(Debug, Clone)]
pub struct Mix {
    cumulative: Vec<(u64, MixOp)>,
    total: u64,
}

impl Mix {
    /// Builds the table from the workload's weights (zero weights are dropped).
    pub fn new(workload: &Workload) -> Mix {
        let mut total = 0u64;
        let mut cumulative = Vec::new();
        for (op, weight) in &workload.ops {
            if *weight > 0 {
                total += u64::from(*weight);
                cumulative.push((total, *op));
            }
        }
        Mix { cumulative, total }
    }

    /// Draws one op.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> MixOp {
        let x = rng.random_range(0..self.total.max(1));
        for (bound, op) in &self.cumulative {
            if x < *bound {
                return *op;
            }
        }
        self.cumulative.last().map_or(MixOp::Get, |(_, op)| *op)
    }
}

/// Key index sampler over `0..n`.
#[derive(Debug, Clone)]
pub enum Keys {
    Uniform { n: usize },
    Zipfian { n: usize, theta: f64, alpha: f64, zetan: f64, eta: f64 },
    Hotspot { n: usize, hot: usize, hot_ops: f64 },
}

fn zeta(n: usize, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Keys {
    /// A sampler over `n` keys.
    pub fn new(dist: &KeyDist, n: usize) -> Keys {
        let n = n.max(1);
        match *dist {
            KeyDist::Uniform => Keys::Uniform { n },
            KeyDist::Zipfian { theta } => {
                // Gray et al., "Quickly generating billion-record synthetic databases" (as YCSB).
                let theta = if (theta - 1.0).abs() < 1e-9 { 0.999_999 } else { theta.max(0.0) };
                let zetan = zeta(n, theta);
                let zeta2 = zeta(2, theta);
                let alpha = 1.0 / (1.0 - theta);
                let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
                Keys::Zipfian { n, theta, alpha, zetan, eta }
            }
            KeyDist::Hotspot { hot_fraction, hot_ops } => {
                let hot = ((n as f64 * hot_fraction).round() as usize).clamp(1, n);
                Keys::Hotspot { n, hot, hot_ops }
            }
        }
    }

    /// Draws one key index.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> usize {
        match *self {
            Keys::Uniform { n } => rng.random_range(0..n),
            Keys::Zipfian { n, theta, alpha, zetan, eta } => {
                let u: f64 = rng.random();
                let uz = u * zetan;
                if uz < 1.0 {
                    return 0;
                }
                if uz < 1.0 + 0.5f64.powf(theta) {
                    return 1.min(n - 1);
                }
                let k = (n as f64 * (eta * u - eta + 1.0).powf(alpha)) as usize;
                k.min(n - 1)
            }
            Keys::Hotspot { n, hot, hot_ops } => {
                if hot >= n || rng.random::<f64>() < hot_ops {
                    rng.random_range(0..hot)
                } else {
                    rng.random_range(hot..n)
                }
            }
        }
    }
}

/// Value size sampler.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    min: usize,
    max: usize,
}

impl Sizes {
    /// From the workload's size distribution.
    pub fn new(dist: &SizeDist) -> Sizes {
        match *dist {
            SizeDist::Fixed { size } => Sizes { min: size, max: size },
            SizeDist::Uniform { min, max } => Sizes { min, max },
        }
    }

    /// Draws one size in bytes.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> usize {
        if self.min >= self.max { self.min } else { rng.random_range(self.min..=self.max) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let keys = Keys::new(&KeyDist::Zipfian { theta: 0.99 }, 1000);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[keys.pick(&mut rng)] += 1;
        }
        // Key 0 takes ~1/zeta(1000) ≈ 13% of draws; the tail key almost none.
        assert!(counts[0] > 8_000, "head {}", counts[0]);
        assert!(counts[999] < 200);
    }

    #[test]
    fn hotspot_sends_hot_ops_to_hot_keys() {
        let keys = Keys::new(&KeyDist::Hotspot { hot_fraction: 0.1, hot_ops: 0.9 }, 1000);
        let mut rng = SmallRng::seed_from_u64(1);
        let hot = (0..10_000).filter(|_| keys.pick(&mut rng) < 100).count();
        assert!((8_700..9_300).contains(&hot), "hot {hot}");
    }
}
