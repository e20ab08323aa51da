//! [`LatencyWindow`]: the latencies of the last `window`, at microsecond resolution, from
//! which the hedge delay and the predicted latency are read.
//!
//! A ring of log-linear histograms ([`AtomicHistogram`]), one per bucket of time, rotated as
//! `rampart_core`'s rolling window is: each histogram is tagged with the bucket it counts, and
//! the first record whose bucket is newer than the tagged one empties it. Recording takes no
//! lock: a record is one load of the tag and one relaxed `fetch_add`; once per bucket, the
//! recorder that wins a compare-and-swap of the tag to a "resetting" mark empties the
//! histogram and tags it with the new bucket, and a record that finds the mark drops its one
//! latency rather than wait (a sample lost at a bucket's start, never a thread blocked).
//! Reading adds up the completed buckets (the current one is partial), once per bucket: the
//! quantiles are cached with the bucket they were computed for. The ring holds one slot more
//! than the buckets the window counts, for the current one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::saturating_nanos;

use super::histogram::{AtomicHistogram, Counts};

/// The cached quantiles of one bucket: hedge delay and median in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quantiles {
    /// The configured quantile of the completed buckets, in microseconds.
    pub(super) delay_micros: u32,
    /// Their median, in microseconds.
    pub(super) median_micros: u32,
}

/// `Quantiles` packed in a `u64`; `COLD` when the window holds too few samples.
const COLD: u64 = u64::MAX;

/// The tag of a histogram being emptied for a new bucket: above every bucket's tag.
const RESETTING: u64 = u64::MAX;

/// Latencies over a rolling window, and their quantiles as of each bucket.
#[derive(Debug)]
pub(super) struct LatencyWindow {
    /// One histogram per bucket of time.
    ring: Box<[Tagged]>,
    bucket_nanos: u64,
    /// Serialises refreshing the cached quantiles (once per bucket; a reader that finds it
    /// taken does not wait). Records never take it.
    refreshing: Mutex<()>,
    /// The bucket the cached quantiles were computed for, plus one (0: never).
    cached_for: AtomicU64,
    /// The cached `Quantiles`, packed, or `COLD`.
    cached: AtomicU64,
    quantile: f64,
    min_samples: u64,
}

/// A histogram and the bucket it counts, plus one (0: never used; `RESETTING`: being emptied).
#[derive(Debug)]
struct Tagged {
    tag: AtomicU64,
    histogram: AtomicHistogram,
}

impl LatencyWindow {
    /// A window of `slots` histograms of `bucket` each (both checked by the configuration):
    /// the current bucket and `slots - 1` completed ones, from which it reads `quantile` and
    /// the median once they hold `min_samples` latencies.
    pub(super) fn new(slots: usize, bucket: Duration, quantile: f64, min_samples: u64) -> Self {
        Self {
            ring: (0..slots)
                .map(|_| Tagged {
                    tag: AtomicU64::new(0),
                    histogram: AtomicHistogram::new(),
                })
                .collect(),
            bucket_nanos: saturating_nanos(bucket).max(1),
            refreshing: Mutex::new(()),
            cached_for: AtomicU64::new(0),
            cached: AtomicU64::new(COLD),
            quantile,
            min_samples,
        }
    }

    /// The bucket of instant `now`.
    #[inline]
    fn bucket_of(&self, now: Duration) -> u64 {
        saturating_nanos(now) / self.bucket_nanos
    }

    #[inline]
    fn slot(&self, bucket: u64) -> Option<&Tagged> {
        // The ring is never empty (at least two buckets).
        self.ring.get((bucket % self.ring.len() as u64) as usize)
    }

    /// Counts a latency observed at `now`, unless its histogram is being emptied for a new
    /// bucket by another thread at this instant (the latency is dropped, never waited for).
    /// Whether it was counted.
    #[inline]
    pub(super) fn record_at(&self, now: Duration, latency: Duration) -> bool {
        let bucket = self.bucket_of(now);
        let Some(slot) = self.slot(bucket) else {
            return false;
        };
        // Acquire: a recorder that sees the new tag also sees the emptied bins, so its add
        // lands after the reset.
        let tag = slot.tag.load(Ordering::Acquire);
        if tag != bucket + 1 && !Self::rotate(slot, tag, bucket) {
            return false;
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.histogram.record(micros);
        true
    }

    /// Makes `slot`, found tagged `tag`, count `bucket`, unless it already counts it or a later
    /// bucket (a record delayed past a whole window then counts in the later bucket): the
    /// thread that swaps the tag for `RESETTING` empties the histogram and tags it. Whether
    /// the record may go ahead: not while another thread empties the histogram.
    #[cold]
    #[inline(never)]
    fn rotate(slot: &Tagged, mut tag: u64, bucket: u64) -> bool {
        loop {
            if tag == RESETTING {
                return false;
            }
            if tag > bucket {
                return true;
            }
            // Acquire: this thread's reset comes after the adds of the bucket it replaces
            // that were made visible with the old tag.
            match slot.tag.compare_exchange_weak(
                tag,
                RESETTING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    slot.histogram.reset();
                    // Release: a recorder or reader that sees the new tag sees the reset.
                    slot.tag.store(bucket + 1, Ordering::Release);
                    return true;
                }
                Err(current) => tag = current,
            }
        }
    }

    /// The quantiles as of `now`: of the completed buckets of the window that ends with
    /// `now`'s bucket; `None` while they hold fewer than `min_samples` latencies. Computed once
    /// per bucket; while another thread computes them, the previous bucket's are returned.
    #[inline]
    pub(super) fn quantiles_at(&self, now: Duration) -> Option<Quantiles> {
        self.read_at(now).0
    }

    /// [`quantiles_at`](Self::quantiles_at), and whether this call computed them (the first
    /// read in a new bucket), for reporting a change once.
    #[inline]
    pub(super) fn read_at(&self, now: Duration) -> (Option<Quantiles>, bool) {
        let bucket = self.bucket_of(now);
        let refreshed =
            self.cached_for.load(Ordering::Acquire) != bucket + 1 && self.refresh(bucket);
        (unpack(self.cached.load(Ordering::Relaxed)), refreshed)
    }

    #[cold]
    #[inline(never)]
    fn refresh(&self, bucket: u64) -> bool {
        // Another thread refreshing: the previous bucket's values serve meanwhile.
        let Some(_refreshing) = self.refreshing.try_lock() else {
            return false;
        };
        if self.cached_for.load(Ordering::Relaxed) == bucket + 1 {
            return false;
        }
        let oldest = (bucket + 1).saturating_sub(self.ring.len() as u64);
        let mut counts = Counts::new();
        for slot in &*self.ring {
            // Tags are buckets plus one: the completed buckets are `oldest..bucket`.
            let tag = slot.tag.load(Ordering::Acquire);
            if tag > oldest && tag <= bucket {
                slot.histogram.add_into(&mut counts);
            }
        }
        let quantiles = if counts.total() >= self.min_samples {
            counts
                .quantile(self.quantile)
                .zip(counts.quantile(0.5))
                .map(|(delay, median)| Quantiles {
                    delay_micros: clamp_u32(delay),
                    median_micros: clamp_u32(median),
                })
        } else {
            None
        };
        self.cached.store(pack(quantiles), Ordering::Relaxed);
        // Release: a reader that sees the bucket sees its quantiles.
        self.cached_for.store(bucket + 1, Ordering::Release);
        true
    }
}

fn clamp_u32(micros: u64) -> u32 {
    u32::try_from(micros).unwrap_or(u32::MAX)
}

fn pack(quantiles: Option<Quantiles>) -> u64 {
    quantiles.map_or(COLD, |q| {
        (u64::from(q.delay_micros) << 32) | u64::from(q.median_micros)
    })
}

#[allow(clippy::cast_possible_truncation)]
fn unpack(packed: u64) -> Option<Quantiles> {
    (packed != COLD).then_some(Quantiles {
        delay_micros: (packed >> 32) as u32,
        median_micros: packed as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn window(min_samples: u64) -> LatencyWindow {
        LatencyWindow::new(4, Duration::from_secs(1), 0.9, min_samples)
    }

    #[test]
    fn a_cold_window_gives_nothing_and_the_current_bucket_does_not_count() {
        let window = window(10);
        let now = Duration::from_millis(500);
        for _ in 0..20 {
            window.record_at(now, 5 * MS);
        }
        assert_eq!(
            window.quantiles_at(now),
            None,
            "only the current bucket holds samples"
        );
        let next = now + Duration::from_secs(1);
        assert_eq!(
            window.quantiles_at(next),
            Some(Quantiles {
                delay_micros: 5_119,
                median_micros: 5_119
            })
        );
    }

    #[test]
    fn the_floor_of_samples_holds_back_the_first_quantiles() {
        let window = window(10);
        for _ in 0..9 {
            window.record_at(Duration::ZERO, MS);
        }
        assert_eq!(window.quantiles_at(Duration::from_secs(1)), None);
        window.record_at(Duration::from_millis(1_500), MS);
        assert!(window.quantiles_at(Duration::from_secs(2)).is_some());
    }

    #[test]
    fn quantiles_are_computed_once_per_bucket_and_old_buckets_expire() {
        let window = window(1);
        // Second 0: 9 fast, 1 slow; the 90th percentile is the 9th value.
        for _ in 0..9 {
            window.record_at(Duration::ZERO, MS);
        }
        window.record_at(Duration::ZERO, 100 * MS);
        let at_one = Duration::from_secs(1);
        let (first, computed) = window.read_at(at_one);
        assert!(computed);
        let first = first.expect("warm");
        assert_eq!(first.delay_micros, 1_000 + 23, "1 ms in [992, 1 023]");
        // More slow samples in second 1 do not change second 1's cached value...
        for _ in 0..10 {
            window.record_at(at_one, 100 * MS);
        }
        assert_eq!(window.quantiles_at(at_one + 999 * MS), Some(first));
        assert!(!window.read_at(at_one).1, "computed once in the bucket");
        // ...and count from second 2.
        let second = window.quantiles_at(2 * at_one).expect("warm");
        assert!(second.delay_micros >= 100_000);
        // At second 4 second 0 has left the window (completed: 1, 2, 3); at 5, everything.
        let fourth = window.quantiles_at(4 * at_one).expect("warm");
        assert_eq!(fourth.median_micros, second.delay_micros, "all slow now");
        assert_eq!(window.quantiles_at(5 * at_one), None);
    }

    #[test]
    fn a_bucket_reused_a_window_later_starts_empty() {
        let window = window(1);
        window.record_at(Duration::ZERO, 100 * MS);
        // Bucket 4 shares bucket 0's histogram.
        window.record_at(Duration::from_secs(4), MS);
        let quantiles = window.quantiles_at(Duration::from_secs(5)).expect("warm");
        assert_eq!(quantiles.delay_micros, 1_023, "the 100 ms latency is gone");
    }

    fn counts_of(slot: &Tagged) -> Counts {
        let mut counts = Counts::new();
        slot.histogram.add_into(&mut counts);
        counts
    }

    #[test]
    fn a_record_that_finds_its_histogram_being_emptied_drops_its_latency_without_waiting() {
        let window = window(1);
        let slot = window.slot(0).expect("slot");
        slot.tag.store(RESETTING, Ordering::Relaxed);
        assert!(!window.record_at(Duration::ZERO, MS), "dropped");
        assert!(!window.record_at(Duration::from_secs(4), MS), "dropped");
        assert_eq!(counts_of(slot).total(), 0);
        // The emptying thread tags it: records count again.
        slot.tag.store(1, Ordering::Release);
        assert!(window.record_at(Duration::ZERO, MS));
        assert_eq!(counts_of(slot).total(), 1);
    }

    #[test]
    fn threads_recording_across_a_bucket_boundary_count_what_they_say_and_nothing_older() {
        const THREADS: usize = 4;
        const RECORDS: usize = 20_000;
        for _ in 0..20 {
            let window = std::sync::Arc::new(window(1));
            // Bucket 0 holds 100 ms latencies; bucket 4 reuses its histogram.
            for _ in 0..1_000 {
                window.record_at(Duration::ZERO, 100 * MS);
            }
            let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let window = std::sync::Arc::clone(&window);
                    let start = std::sync::Arc::clone(&start);
                    std::thread::spawn(move || {
                        start.wait();
                        (0..RECORDS)
                            .filter(|_| window.record_at(Duration::from_secs(4), MS))
                            .count() as u64
                    })
                })
                .collect();
            let counted: u64 = threads
                .into_iter()
                .map(|thread| thread.join().expect("no panic"))
                .sum();
            let slot = window.slot(4).expect("slot");
            assert_eq!(slot.tag.load(Ordering::Acquire), 5, "tagged with bucket 4");
            let counts = counts_of(slot);
            assert_eq!(counts.total(), counted, "every record said counted is");
            assert_eq!(
                counts.quantile(1.0),
                Some(1_023),
                "no 100 ms latency of bucket 0 left"
            );
            // The thread that emptied it counts all of its own.
            assert!(counted >= RECORDS as u64, "{counted}");
        }
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let window = std::sync::Arc::new(window(1));
        // Within a bucket already begun (a record racing the emptying of its histogram for a
        // new bucket drops its latency: see the test across a bucket boundary).
        window
            .slot(0)
            .expect("slot")
            .tag
            .store(1, Ordering::Release);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let window = std::sync::Arc::clone(&window);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        window.record_at(Duration::from_millis(10), MS);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        let mut counts = Counts::new();
        for slot in &*window.ring {
            slot.histogram.add_into(&mut counts);
        }
        assert_eq!(counts.total(), 40_000);
    }
}
