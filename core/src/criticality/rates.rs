//! [`ArrivalRates`]: how much work of each criticality band arrives, smoothed over buckets.

use std::array;

use crate::Criticality;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::{PerStripe, Stripes};

const BANDS: usize = Criticality::BANDS;

/// The band of requests that say no criticality (`Criticality::default()`, critical).
const DEFAULT_BAND: usize = Criticality::CRITICAL.band();

/// The arrival rate of each criticality [band](Criticality::band), per bucket of a layer's
/// window, smoothed: what a layer that sheds by criticality reads to know what each band asks
/// for, with no per-class numbers in its configuration.
///
/// Arrivals are counted as they come ([`record`](Self::record): one relaxed increment, on the
/// calling thread's [stripe](crate::Stripes::thread_stripe) of the counts, so that two cores
/// counting at once write different cache lines). Once per bucket, [`fold`](Self::fold) takes
/// the counts of every stripe and moves each band's rate towards them by
/// [`SMOOTHING`](Self::SMOOTHING) per bucket elapsed, so a step in demand shows within a few
/// buckets and one noisy bucket moves the rate by less than a third of its noise. Every arrival
/// counted is taken by exactly one fold, whatever the concurrency.
///
/// # The default band, counted only while another arrives
///
/// What a layer needs to know of the default band (requests that say no criticality, or the
/// default one) is its share of the traffic beside the other bands', so its arrivals are
/// counted only while another band arrives too ([`mixed`](Self::mixed)): a service whose
/// requests carry no criticality pays no counter for them. When another band first arrives,
/// the next fold starts the default band's rate from an estimate its caller gives (the newest
/// bucket's requests: until then all were of the default band), then follows its counts;
/// once the other bands have gone quiet, the caller [ends](Self::unmix) the counting again.
///
/// ```
/// use rampart_core::{ArrivalRates, Criticality};
///
/// let rates = ArrivalRates::new();
/// rates.record(Criticality::CRITICAL); // the default band, alone: not counted
/// for _ in 0..30 {
///     rates.record(Criticality::SHEDDABLE);
/// }
/// rates.record(Criticality::CRITICAL); // counted now that another band arrives
/// rates.fold(1, || 12); // the first bucket sets the rates; 12 default arrivals before
/// let now = rates.rates();
/// assert_eq!(now[Criticality::SHEDDABLE.band()], 30.0);
/// assert_eq!(now[Criticality::CRITICAL.band()], 12.0);
///
/// rates.fold(2, || 0); // an empty bucket
/// assert_eq!(rates.rates()[Criticality::SHEDDABLE.band()], 30.0 * 0.7);
/// ```
#[derive(Debug)]
pub struct ArrivalRates {
    /// Arrivals since the last fold, per band, per stripe (one per CPU, up to 8).
    counts: PerStripe<[AtomicU64; BANDS]>,
    /// Smoothed arrivals per bucket, per band (`f64` bits); written by folds only.
    rates: [AtomicU64; BANDS],
    /// One more than the bucket of the last fold; 0 before any.
    folded: AtomicU64,
    /// Whether a band other than the default one arrives: only then is the default band's
    /// counted.
    mixed: AtomicBool,
    /// Whether arrivals of the default band ever went uncounted.
    skipped: AtomicBool,
    /// Set when `mixed` is, if arrivals of the default band went uncounted: the next fold
    /// starts the band's rate from its caller's estimate.
    uncounted: AtomicBool,
}

impl Default for ArrivalRates {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrivalRates {
    /// How far a bucket's count moves a band's rate: 0.3, so that 10 buckets after a step the
    /// old rate weighs 3 %.
    pub const SMOOTHING: f64 = 0.3;

    /// No arrivals yet.
    pub fn new() -> Self {
        Self {
            counts: PerStripe::new(Stripes::Auto, || array::from_fn(|_| AtomicU64::new(0))),
            rates: array::from_fn(|_| AtomicU64::new(0.0_f64.to_bits())),
            folded: AtomicU64::new(0),
            mixed: AtomicBool::new(false),
            skipped: AtomicBool::new(false),
            uncounted: AtomicBool::new(false),
        }
    }

    /// Counts an arrival of `criticality` (of the default band, only while another band
    /// arrives: see the type's docs).
    #[inline]
    pub fn record(&self, criticality: Criticality) {
        let band = criticality.band();
        if band != DEFAULT_BAND {
            if !self.mixed.load(Ordering::Relaxed)
                && !self.mixed.swap(true, Ordering::Relaxed)
                && self.skipped.load(Ordering::Relaxed)
            {
                self.uncounted.store(true, Ordering::Relaxed);
            }
        } else if !self.mixed.load(Ordering::Relaxed) {
            if !self.skipped.load(Ordering::Relaxed) {
                self.skipped.store(true, Ordering::Relaxed);
            }
            return;
        }
        if let Some(count) = self.counts.here().get(band) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a band other than the default one arrives, so that the default band is
    /// counted; while not, the rates say nothing of the default band, and a layer treats its
    /// traffic as of one band.
    #[inline]
    pub fn mixed(&self) -> bool {
        self.mixed.load(Ordering::Relaxed)
    }

    /// Stops counting the default band, once the caller finds the other bands quiet (their
    /// rates a negligible part of what it serves): the next arrival of another band starts
    /// it again.
    pub fn unmix(&self) {
        self.mixed.store(false, Ordering::Relaxed);
    }

    /// Folds the arrivals counted since the last fold into the rates, once per `bucket` (the
    /// window's bucket number, increasing): the first call for a bucket folds and returns the
    /// counts it took; later calls for it, or for an older bucket, return `None`.
    ///
    /// The counts folded at bucket `b` arrived since the fold before, at bucket `f`: they are
    /// spread over the `b - f` buckets between, each a smoothing step. The first fold sets the
    /// rates to its counts. When another band has just begun to arrive after uncounted
    /// arrivals of the default band, that band's rate starts from `default_arrivals()` (read
    /// only then: the requests of the newest bucket, all of the default band until the
    /// change), or its count if larger.
    pub fn fold(
        &self,
        bucket: u64,
        default_arrivals: impl FnOnce() -> u64,
    ) -> Option<[u64; BANDS]> {
        let next = bucket.saturating_add(1);
        let last = self.folded.load(Ordering::Relaxed);
        if next <= last
            || self
                .folded
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let counts: [u64; BANDS] = array::from_fn(|band| {
            self.counts
                .iter()
                .map(|stripe| stripe[band].swap(0, Ordering::Relaxed))
                .sum()
        });
        let steps = if last == 0 { None } else { Some(next - last) };
        for (band, &count) in counts.iter().enumerate() {
            let rate = match steps {
                None => count as f64,
                Some(steps) => {
                    let kept = (1.0 - Self::SMOOTHING).powf(steps as f64);
                    let old = f64::from_bits(self.rates[band].load(Ordering::Relaxed));
                    old * kept + (count as f64 / steps as f64) * (1.0 - kept)
                }
            };
            self.rates[band].store(rate.to_bits(), Ordering::Relaxed);
        }
        if self.uncounted.load(Ordering::Relaxed) && self.uncounted.swap(false, Ordering::Relaxed) {
            let estimate = default_arrivals().max(counts[DEFAULT_BAND]);
            self.seed(DEFAULT_BAND, estimate as f64);
        }
        Some(counts)
    }

    /// Sets `band`'s rate to `rate` arrivals per bucket (a band past the last is ignored): for
    /// a caller that begins counting a band late and knows its rate until then otherwise.
    /// Later folds smooth from it.
    ///
    /// ```
    /// use rampart_core::{ArrivalRates, Criticality};
    ///
    /// let rates = ArrivalRates::new();
    /// rates.fold(1, || 0);
    /// let band = Criticality::CRITICAL.band();
    /// rates.seed(band, 40.0);
    /// rates.fold(2, || 0); // an empty bucket
    /// assert_eq!(rates.rates()[band], 40.0 * 0.7);
    /// ```
    pub fn seed(&self, band: usize, rate: f64) {
        if let Some(slot) = self.rates.get(band) {
            slot.store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    /// The smoothed arrivals per bucket of each band, as of the last fold.
    pub fn rates(&self) -> [f64; BANDS] {
        array::from_fn(|band| f64::from_bits(self.rates[band].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::CriticalityClass;

    #[test]
    fn a_step_in_demand_shows_within_ten_buckets() {
        let rates = ArrivalRates::new();
        let band = Criticality::SHEDDABLE_PLUS.band();
        for bucket in 1..=20 {
            let arrivals = if bucket <= 10 { 10 } else { 100 };
            for _ in 0..arrivals {
                rates.record(Criticality::SHEDDABLE_PLUS);
            }
            rates.fold(bucket, || 0);
        }
        let rate = rates.rates()[band];
        assert!((97.0..=100.0).contains(&rate), "{rate}");
    }

    #[test]
    fn a_fold_after_a_gap_spreads_its_counts_over_the_gap() {
        let rates = ArrivalRates::new();
        for _ in 0..10 {
            rates.record(Criticality::SHEDDABLE);
        }
        rates.fold(0, || 0);
        for _ in 0..40 {
            rates.record(Criticality::SHEDDABLE);
        }
        rates.fold(4, || 0); // 40 arrivals over 4 buckets: 10 per bucket, the rate unchanged
        assert!((rates.rates()[Criticality::SHEDDABLE.band()] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn each_bucket_folds_once_and_an_older_bucket_never() {
        let rates = ArrivalRates::new();
        rates.record(Criticality::SHEDDABLE);
        assert_eq!(
            rates.fold(5, || 0).map(|counts| counts.iter().sum::<u64>()),
            Some(1)
        );
        rates.record(Criticality::SHEDDABLE);
        assert_eq!(rates.fold(5, || 0), None);
        assert_eq!(rates.fold(4, || 0), None);
        assert_eq!(
            rates.fold(6, || 0).map(|counts| counts.iter().sum::<u64>()),
            Some(1)
        );
    }

    #[test]
    fn the_default_band_alone_is_not_counted() {
        let rates = ArrivalRates::new();
        for _ in 0..100 {
            rates.record(Criticality::default());
        }
        assert!(!rates.mixed());
        assert_eq!(
            rates.fold(1, || unreachable!("no other band arrived")),
            Some([0; BANDS])
        );
        assert_eq!(rates.rates(), [0.0; BANDS]);
    }

    #[test]
    fn another_band_starts_the_default_band_from_the_estimate_then_from_its_counts() {
        let rates = ArrivalRates::new();
        let band = DEFAULT_BAND;
        for _ in 0..50 {
            rates.record(Criticality::default());
        }
        rates.fold(1, || unreachable!("no other band arrived"));
        rates.record(Criticality::SHEDDABLE);
        assert!(rates.mixed());
        for _ in 0..10 {
            rates.record(Criticality::default());
        }
        // The 50 uncounted arrivals of the bucket before are estimated as 40 (the caller's
        // figure); the 10 counted since are fewer, so the estimate stands.
        rates.fold(2, || 40);
        assert_eq!(rates.rates()[band], 40.0);
        for _ in 0..20 {
            rates.record(Criticality::default());
        }
        rates.fold(3, || unreachable!("estimated once"));
        assert!((rates.rates()[band] - (40.0 * 0.7 + 20.0 * 0.3)).abs() < 1e-9);

        // Unmixed, the default band goes uncounted again until another band arrives.
        rates.unmix();
        rates.record(Criticality::default());
        assert_eq!(rates.fold(4, || 0).map(|counts| counts[band]), Some(0));
    }

    #[test]
    fn a_default_arrival_counted_while_mixed_wins_over_a_smaller_estimate() {
        let rates = ArrivalRates::new();
        rates.record(Criticality::default());
        rates.record(Criticality::SHEDDABLE);
        for _ in 0..30 {
            rates.record(Criticality::default());
        }
        rates.fold(1, || 5);
        assert_eq!(rates.rates()[DEFAULT_BAND], 30.0);
    }

    #[test]
    fn every_arrival_is_folded_exactly_once_under_concurrency() {
        const THREADS: usize = 4;
        const EACH: u64 = 50_000;
        let rates = Arc::new(ArrivalRates::new());
        // Another band first, so that every arrival of the default band is counted too.
        rates.record(Criticality::SHEDDABLE);
        let folded = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (rates, folded) = (Arc::clone(&rates), Arc::clone(&folded));
                std::thread::spawn(move || {
                    let class = CriticalityClass::ALL[thread % 4];
                    for i in 0..EACH {
                        rates.record(Criticality::with_level(class, (i % 128) as u8));
                        if i % 1_000 == 0 {
                            // Every thread races to fold the same buckets.
                            if let Some(counts) = rates.fold(i / 1_000, || 0) {
                                folded.fetch_add(counts.iter().sum(), Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("no panic");
        }
        let last = rates
            .fold(u64::MAX - 1, || 0)
            .expect("a newer bucket folds");
        let total = folded.load(Ordering::Relaxed) + last.iter().sum::<u64>();
        assert_eq!(total, THREADS as u64 * EACH + 1);
    }
}
