//! A log-linear histogram of latencies in microseconds: exact below 16 µs, then 16 bins per
//! power of two (a value's bin is at most 1/16 = 6.25 % wide), up to 2³² µs (71 minutes; longer
//! latencies count in the last bin). Recording is one relaxed `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-bins per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Largest value kept apart: 2³² − 1 µs.
const MAX_MICROS: u64 = u32::MAX as u64;
/// Bins: the exact ones below `SUB`, then `SUB` per power of two up to 2³².
pub(super) const BINS: usize = (SUB + (32 - SUB_BITS as u64) * SUB) as usize;

/// The bin of `micros`.
#[inline]
pub(super) const fn bin_of(micros: u64) -> usize {
    let micros = if micros > MAX_MICROS {
        MAX_MICROS
    } else {
        micros
    };
    if micros < SUB {
        return micros as usize;
    }
    let power = micros.ilog2();
    let shift = power - SUB_BITS;
    let sub = (micros >> shift) & (SUB - 1);
    (SUB + shift as u64 * SUB + sub) as usize
}

/// The largest value in `bin`, in microseconds.
pub(super) const fn upper_edge(bin: usize) -> u64 {
    let bin = bin as u64;
    if bin < SUB {
        return bin;
    }
    let shift = (bin - SUB) / SUB;
    let sub = (bin - SUB) % SUB;
    ((SUB + sub + 1) << shift) - 1
}

/// One histogram's counts, shared between recording threads.
#[derive(Debug)]
pub(super) struct AtomicHistogram {
    bins: Box<[AtomicU64]>,
}

impl AtomicHistogram {
    pub(super) fn new() -> Self {
        Self {
            bins: (0..BINS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one latency of `micros`.
    #[inline]
    pub(super) fn record(&self, micros: u64) {
        if let Some(bin) = self.bins.get(bin_of(micros)) {
            bin.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Empties every bin.
    pub(super) fn reset(&self) {
        for bin in &*self.bins {
            bin.store(0, Ordering::Relaxed);
        }
    }

    /// Adds this histogram's counts into `counts`.
    pub(super) fn add_into(&self, counts: &mut Counts) {
        for (total, bin) in counts.bins.iter_mut().zip(&*self.bins) {
            *total += bin.load(Ordering::Relaxed);
        }
    }
}

/// Counts added up from histograms, for reading quantiles.
#[derive(Debug, Clone)]
pub(super) struct Counts {
    bins: Box<[u64]>,
}

impl Counts {
    pub(super) fn new() -> Self {
        Self {
            bins: vec![0; BINS].into_boxed_slice(),
        }
    }

    /// The number of values counted.
    pub(super) fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// The `quantile` (in [0, 1]) of the values counted, in microseconds: the upper edge of
    /// the bin holding the value of rank ⌈quantile × total⌉ (at least 1), so never below the
    /// true quantile and at most 6.25 % above it. `None` when nothing is counted.
    pub(super) fn quantile(&self, quantile: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // Ranks are below 2⁶⁴, exact in an f64 up to 2⁵³ and close beyond.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        self.bins.iter().enumerate().find_map(|(bin, &count)| {
            seen += count;
            (seen >= rank).then(|| upper_edge(bin))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact_and_larger_ones_within_a_sixteenth() {
        for micros in 0..16 {
            assert_eq!(upper_edge(bin_of(micros)), micros);
        }
        for micros in [16, 17, 31, 32, 33, 1_000, 4_999, 5_000, 200_000, 1 << 31] {
            let edge = upper_edge(bin_of(micros));
            assert!(edge >= micros, "{micros} µs in a bin ending at {edge}");
            assert!(
                (edge - micros) * 16 < micros,
                "{micros} µs: bin edge {edge} more than 1/16 above"
            );
        }
    }

    #[test]
    fn bins_are_ordered_and_the_largest_values_share_the_last() {
        let mut previous = 0;
        for micros in (0..40).map(|power| 1u64 << power).chain([u64::MAX]) {
            let bin = bin_of(micros);
            assert!(bin >= previous && bin < BINS);
            previous = bin;
        }
        assert_eq!(bin_of(u64::MAX), BINS - 1);
        assert_eq!(upper_edge(BINS - 1), MAX_MICROS);
    }

    #[test]
    fn quantiles_read_the_ranked_value() {
        let histogram = AtomicHistogram::new();
        for micros in 1..=100 {
            histogram.record(micros * 100);
        }
        let mut counts = Counts::new();
        histogram.add_into(&mut counts);
        assert_eq!(counts.total(), 100);
        // The 95th of 100 values is 9 500 µs, in the bin [9 216, 9 727].
        assert_eq!(counts.quantile(0.95), Some(9_727));
        assert_eq!(
            counts.quantile(0.5),
            Some(5_119),
            "5 000 µs, bin [4 864, 5 119]"
        );
        assert_eq!(
            counts.quantile(0.0),
            Some(100 + 3),
            "the smallest: 100 in [96, 103]"
        );
        assert_eq!(Counts::new().quantile(0.5), None);
        histogram.reset();
        let mut counts = Counts::new();
        histogram.add_into(&mut counts);
        assert_eq!(counts.total(), 0);
    }
}
