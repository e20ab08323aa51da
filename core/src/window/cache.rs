//! [`PerBucketCache`]: statistics of a window's completed buckets, computed once per bucket
//! and read without a lock.

use std::array;
use std::fmt;

use crate::sync::{AtomicU64, Ordering, SlowPathLock, fence};

/// `N` numbers derived from a window's completed buckets, recomputed at most once per bucket
/// and read without a lock.
///
/// The completed buckets of a window only change when the window moves to a new bucket, so
/// statistics over them (totals for a breaker's decision, the best throughput and latency for a
/// limiter) need computing once per bucket, not once per request. Key the cache on
/// [`RollingWindow::bucket_at`](super::RollingWindow::bucket_at):
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{Clock, ManualClock, PerBucketCache, View, WindowConfig};
///
/// let clock = ManualClock::new();
/// let window = WindowConfig::new(10, Duration::from_millis(100)).build_with(clock.clone())?;
/// let completed = PerBucketCache::<2>::new();
///
/// window.record(5);
/// clock.advance(Duration::from_millis(100));
/// window.record(7);
///
/// let now = clock.now();
/// let [sum, count] = completed.get_or_refresh(window.bucket_at(now), || {
///     let totals = window.view_at(now, View::Completed).totals();
///     [totals.sum, totals.count]
/// });
/// let (_, current) = window.current_at(now);
/// assert_eq!((sum + current.sum, count + current.count), (12, 2));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Concurrency
///
/// Readers never wait. The values sit behind a sequence lock: a reader that finds them being
/// replaced, or belonging to another bucket, computes them itself; the first thread to get the
/// refresh lock publishes its result, and a result for an older bucket never replaces one for
/// a newer bucket.
pub struct PerBucketCache<const N: usize> {
    /// Even while the values are stable; odd while a refresh is replacing them.
    sequence: AtomicU64,
    /// The bucket the values belong to, plus one; zero before the first refresh.
    bucket: AtomicU64,
    values: [AtomicU64; N],
    refresh: SlowPathLock,
}

impl<const N: usize> PerBucketCache<N> {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            sequence: AtomicU64::new(0),
            bucket: AtomicU64::new(0),
            values: array::from_fn(|_| AtomicU64::new(0)),
            refresh: SlowPathLock::default(),
        }
    }

    /// The values for `bucket`: the cached ones if they belong to it, otherwise `compute()`'s,
    /// which are then cached.
    #[inline]
    pub fn get_or_refresh(&self, bucket: u64, compute: impl FnOnce() -> [u64; N]) -> [u64; N] {
        if let Some(values) = self.read(bucket) {
            return values;
        }
        self.refresh(bucket, compute)
    }

    /// Forgets the cached values: the next [`get_or_refresh`](Self::get_or_refresh)
    /// computes them afresh, whatever its bucket. For a caller that has just changed what
    /// they are computed from, and must see the change at once.
    pub fn invalidate(&self) {
        let _refreshing = self.refresh.lock();
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.bucket.store(0, Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(2), Ordering::Release);
    }

    /// The cached values if they belong to `bucket` and no refresh is under way.
    #[inline]
    fn read(&self, bucket: u64) -> Option<[u64; N]> {
        let before = self.sequence.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let tag = self.bucket.load(Ordering::Relaxed);
        let values = array::from_fn(|i| self.values[i].load(Ordering::Relaxed));
        // Orders the loads above before the second sequence load (the seqlock read protocol).
        fence(Ordering::Acquire);
        let after = self.sequence.load(Ordering::Relaxed);
        (before == after && tag == bucket.wrapping_add(1)).then_some(values)
    }

    #[cold]
    fn refresh(&self, bucket: u64, compute: impl FnOnce() -> [u64; N]) -> [u64; N] {
        let values = compute();
        // Another thread refreshing? Its result is as good as ours: do not wait for it.
        if let Some(_refreshing) = self.refresh.try_lock() {
            let tag = bucket.wrapping_add(1);
            if tag > self.bucket.load(Ordering::Relaxed) {
                let sequence = self.sequence.load(Ordering::Relaxed);
                self.sequence
                    .store(sequence.wrapping_add(1), Ordering::Relaxed);
                // Orders the odd sequence before the stores below (the seqlock write protocol).
                fence(Ordering::Release);
                self.bucket.store(tag, Ordering::Relaxed);
                for (slot, value) in self.values.iter().zip(values) {
                    slot.store(value, Ordering::Relaxed);
                }
                self.sequence
                    .store(sequence.wrapping_add(2), Ordering::Release);
            }
        }
        values
    }
}

impl<const N: usize> Default for PerBucketCache<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for PerBucketCache<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = self.bucket.load(Ordering::Relaxed);
        f.debug_struct("PerBucketCache")
            .field("bucket", &tag.checked_sub(1))
            .field(
                "values",
                &array::from_fn::<u64, N, _>(|i| self.values[i].load(Ordering::Relaxed)),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(rampart_loom)))]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn computes_once_per_bucket() {
        let cache = PerBucketCache::<2>::new();
        let computed = Cell::new(0);
        let compute = |value: u64| {
            computed.set(computed.get() + 1);
            [value, value * 2]
        };
        assert_eq!(cache.get_or_refresh(0, || compute(1)), [1, 2]);
        assert_eq!(
            cache.get_or_refresh(0, || compute(9)),
            [1, 2],
            "cached for bucket 0"
        );
        assert_eq!(cache.get_or_refresh(3, || compute(4)), [4, 8]);
        assert_eq!(cache.get_or_refresh(3, || compute(9)), [4, 8]);
        assert_eq!(computed.get(), 2);
    }

    #[test]
    fn an_older_bucket_never_replaces_a_newer_one() {
        let cache = PerBucketCache::<1>::new();
        cache.get_or_refresh(5, || [50]);
        // A late thread still on bucket 4 gets its own answer but does not publish it.
        assert_eq!(cache.get_or_refresh(4, || [40]), [40]);
        assert_eq!(cache.get_or_refresh(5, || [0]), [50]);
    }

    #[test]
    fn an_invalidated_cache_computes_afresh_for_its_bucket() {
        let cache = PerBucketCache::<1>::new();
        cache.get_or_refresh(5, || [50]);
        cache.invalidate();
        assert_eq!(cache.get_or_refresh(5, || [51]), [51], "computed afresh");
        assert_eq!(cache.get_or_refresh(5, || [0]), [51], "and cached again");
    }

    #[test]
    fn readers_on_many_threads_always_get_a_consistent_pair() {
        // Writers publish [b, 2b] for bucket b; a reader must never see a mix of two buckets.
        let cache = std::sync::Arc::new(PerBucketCache::<2>::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = std::sync::Arc::clone(&cache);
                std::thread::spawn(move || {
                    for bucket in 0..20_000 {
                        let [a, b] = cache.get_or_refresh(bucket, || [bucket, 2 * bucket]);
                        assert_eq!((a, b), (bucket, 2 * bucket));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no torn read");
        }
    }
}
