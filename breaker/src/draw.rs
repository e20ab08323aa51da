//! The breaker's source of rejection draws: lock-free, seedable.

use std::sync::atomic::{AtomicU64, Ordering};

/// The `SplitMix64` increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A `SplitMix64` generator whose state is one atomic counter: each draw is one `fetch_add`, so
/// threads never wait for each other, and a seeded breaker used from one thread draws the
/// same sequence every run.
#[derive(Debug)]
pub(crate) struct Draws {
    state: AtomicU64,
}

impl Draws {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self {
            state: AtomicU64::new(seed.unwrap_or_else(|| fastrand::u64(..))),
        }
    }

    /// A uniform draw in [0, 1).
    #[inline]
    pub(crate) fn next_unit(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as a fraction of 2^53.
        (z >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_in_the_unit_interval() {
        let draws = Draws::new(Some(7));
        let mut below_tenth = 0;
        let mut sum = 0.0;
        for _ in 0..100_000 {
            let u = draws.next_unit();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            below_tenth += u32::from(u < 0.1);
        }
        assert!(
            (sum / 100_000.0 - 0.5).abs() < 0.005,
            "mean {}",
            sum / 100_000.0
        );
        assert!((9_700..10_300).contains(&below_tenth), "{below_tenth}");
    }

    #[test]
    fn a_seed_fixes_the_sequence() {
        let (a, b, c) = (
            Draws::new(Some(1)),
            Draws::new(Some(1)),
            Draws::new(Some(2)),
        );
        let first: Vec<f64> = (0..10).map(|_| a.next_unit()).collect();
        assert_eq!(first, (0..10).map(|_| b.next_unit()).collect::<Vec<_>>());
        assert_ne!(first, (0..10).map(|_| c.next_unit()).collect::<Vec<_>>());
    }
}
