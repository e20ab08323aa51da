//! The bucket storage of a window: one ring per stripe, so that threads recording at the
//! same time mostly write to different cache lines.

use std::sync::OnceLock;

use super::stats::BucketStats;
use crate::sync::{AtomicU64, Ordering, thread_stripe_hint};

/// Most stripes [`Stripes::Auto`](super::Stripes::Auto) chooses.
const MAX_AUTO_STRIPES: usize = 8;
/// Buckets per 128 bytes (two cache lines, the unit adjacent-line prefetchers pull in).
const BUCKETS_PER_LINE_PAIR: usize = 128 / size_of::<Bucket>();

/// One bucket of one stripe.
#[derive(Debug, Default)]
pub(super) struct Bucket {
    sum: AtomicU64,
    count: AtomicU64,
}

impl Bucket {
    /// The sum alone, for reads that need no count.
    #[inline]
    pub(super) fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    #[inline]
    fn reset(&self) {
        self.sum.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn load(&self) -> BucketStats {
        BucketStats {
            sum: self.sum.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// `stripes` rings of `len` buckets, stripe-major, each ring padded to a multiple of 128
/// bytes so that bucket `i` of two stripes never shares a cache line.
#[derive(Debug)]
pub(super) struct StripedRing {
    buckets: Box<[Bucket]>,
    len: usize,
    stride: usize,
    stripe_mask: usize,
}

impl StripedRing {
    /// `stripes` must be a power of two.
    pub(super) fn new(len: usize, stripes: usize) -> Self {
        debug_assert!(stripes.is_power_of_two());
        let stride = if stripes == 1 {
            len
        } else {
            len.next_multiple_of(BUCKETS_PER_LINE_PAIR)
        };
        Self {
            buckets: (0..stride * stripes).map(|_| Bucket::default()).collect(),
            len,
            stride,
            stripe_mask: stripes - 1,
        }
    }

    /// The number of buckets in each ring.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The number of stripes.
    pub(super) fn stripes(&self) -> usize {
        self.stripe_mask + 1
    }

    /// Adds `sum` and `count` to bucket `index` of the calling thread's stripe.
    #[inline]
    pub(super) fn add(&self, index: usize, sum: u64, count: u64) {
        let stripe = if self.stripe_mask == 0 {
            0
        } else {
            thread_stripe_hint()
        };
        self.add_to_stripe(stripe, index, sum, count);
    }

    /// Adds `sum` and `count` to bucket `index` of stripe `stripe` (modulo the stripe count):
    /// a zero part writes nothing, so that an event that only counts, or only sums, pays one
    /// atomic write.
    #[inline]
    fn add_to_stripe(&self, stripe: usize, index: usize, sum: u64, count: u64) {
        let stripe = stripe & self.stripe_mask;
        if let Some(bucket) = self.buckets.get(stripe * self.stride + index) {
            if sum != 0 {
                bucket.sum.fetch_add(sum, Ordering::Relaxed);
            }
            if count != 0 {
                bucket.count.fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    /// Empties bucket `index` of every stripe.
    pub(super) fn reset(&self, index: usize) {
        for stripe in self.buckets.chunks(self.stride) {
            if let Some(bucket) = stripe.get(index) {
                bucket.reset();
            }
        }
    }

    /// Bucket `index`, all stripes added together.
    #[inline]
    pub(super) fn load(&self, index: usize) -> BucketStats {
        self.buckets
            .chunks(self.stride)
            .filter_map(|stripe| stripe.get(index))
            .fold(BucketStats::default(), |total, bucket| {
                total + bucket.load()
            })
    }

    /// The `held` buckets from ring index `start` on (wrapping), in every stripe, as
    /// contiguous runs: the fast way to add them all up.
    #[inline]
    pub(super) fn runs(&self, start: usize, held: usize) -> impl Iterator<Item = &[Bucket]> {
        let first_run = held.min(self.len.saturating_sub(start));
        let wrapped = held - first_run;
        self.buckets.chunks(self.stride).flat_map(move |stripe| {
            [
                stripe.get(start..start + first_run).unwrap_or_default(),
                stripe.get(..wrapped).unwrap_or_default(),
            ]
        })
    }
}

/// The number of stripes `Stripes::Auto` picks: one per available CPU, rounded up to a power
/// of two, at most 8 (reads add up every stripe, so more would slow them for little gain).
pub(super) fn auto_stripes() -> usize {
    static AUTO: OnceLock<usize> = OnceLock::new();
    *AUTO.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .next_power_of_two()
            .min(MAX_AUTO_STRIPES)
    })
}

#[cfg(all(test, not(rampart_loom)))]
mod tests {
    use super::*;

    /// A ring of 3 buckets in 4 stripes where bucket `i` of stripe `s` holds `10·s + i` once.
    fn filled() -> StripedRing {
        let ring = StripedRing::new(3, 4);
        for stripe in 0..4 {
            for index in 0..3 {
                ring.add_to_stripe(stripe, index, 10 * stripe as u64 + index as u64, 1);
            }
        }
        ring
    }

    #[test]
    fn a_load_adds_up_every_stripe() {
        let ring = filled();
        assert_eq!(
            ring.load(1),
            BucketStats {
                sum: 1 + 11 + 21 + 31,
                count: 4
            }
        );
    }

    #[test]
    fn a_reset_empties_the_bucket_in_every_stripe_and_nothing_else() {
        let ring = filled();
        ring.reset(2);
        assert_eq!(ring.load(2), BucketStats::default());
        assert_eq!(ring.load(0), BucketStats { sum: 60, count: 4 });
        assert_eq!(ring.load(1), BucketStats { sum: 64, count: 4 });
    }

    #[test]
    fn runs_cover_the_wrapped_range_in_every_stripe() {
        let ring = filled();
        let total = |start, held| {
            ring.runs(start, held)
                .flatten()
                .fold(BucketStats::default(), |total, bucket| {
                    total + bucket.load()
                })
        };
        // Buckets 2 and 0 (wrapping), in all four stripes: (2 + 0) · 4 + 10·(0+1+2+3) · 2.
        assert_eq!(
            total(2, 2),
            BucketStats {
                sum: 8 + 120,
                count: 8
            }
        );
        assert_eq!(total(0, 3).count, 12);
        assert_eq!(total(1, 0).count, 0);
    }

    #[test]
    fn stripes_of_one_bucket_sit_at_least_128_bytes_apart() {
        let ring = StripedRing::new(3, 4);
        assert_eq!(ring.stride, 8);
        assert_eq!(ring.stripes(), 4);
        let single = StripedRing::new(3, 1);
        assert_eq!(single.stride, 3, "one stripe needs no padding");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_hint_is_the_cpu_it_runs_on() {
        use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

        let allowed = sched_getaffinity(None).expect("this thread's CPUs");
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|cpu| allowed.is_set(*cpu))
            .collect();
        for cpu in cpus {
            let hint = std::thread::spawn(move || {
                let mut only = CpuSet::new();
                only.set(cpu);
                sched_setaffinity(None, &only).expect("pinned to one CPU it may use");
                thread_stripe_hint()
            })
            .join()
            .expect("no panic");
            assert_eq!(hint, cpu);
        }
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn threads_get_distinct_hints_in_the_order_they_first_ask() {
        let here = thread_stripe_hint();
        assert_eq!(thread_stripe_hint(), here, "a thread keeps its hint");
        let other = std::thread::spawn(thread_stripe_hint)
            .join()
            .expect("no panic");
        assert_ne!(other, here);
    }
}
