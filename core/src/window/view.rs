//! [`View`], [`WindowView`] and [`Buckets`]: what a read of a window covers, and its buckets.

use std::iter::FusedIterator;

use super::ring::{Bucket, StripedRing};
use super::stats::BucketStats;

/// Which buckets a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// The current, partial bucket and the `buckets − 1` before it: between
    /// `window − bucket_duration` and `window` of history. The breaker's view.
    IncludingCurrent,
    /// The `buckets − 1` completed buckets before the current one: whole buckets only, so
    /// per-bucket statistics (maximum throughput, minimum mean latency) are never taken from
    /// a bucket still filling. The limiter's view. Empty for a one-bucket window.
    Completed,
}

/// The buckets a read covers, fixed at the instant of the read.
///
/// Made by [`RollingWindow::view`](super::RollingWindow::view) and
/// [`view_at`](super::RollingWindow::view_at). Reduce it with [`sum`](Self::sum),
/// [`count`](Self::count), [`totals`](Self::totals), or walk its buckets oldest first with
/// [`iter`](Self::iter):
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{ManualClock, View, WindowConfig};
///
/// let clock = ManualClock::new();
/// let window = WindowConfig::new(4, Duration::from_millis(100)).build_with(clock.clone())?;
/// for (latency_us, passes) in [(900, 3), (400, 5), (700, 2)] {
///     for _ in 0..passes {
///         window.record(latency_us);
///     }
///     clock.advance(Duration::from_millis(100));
/// }
/// let completed = window.view(View::Completed);
/// let max_pass = completed.iter().map(|b| b.count).max();
/// let min_mean = completed.iter().filter_map(|b| b.mean()).fold(f64::INFINITY, f64::min);
/// assert_eq!((max_pass, min_mean), (Some(5), 400.0));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// Each bucket is read when it is visited; while other threads record, a view is a consistent
/// choice of buckets but not a frozen copy of their contents.
#[derive(Debug, Clone)]
pub struct WindowView<'a> {
    ring: &'a StripedRing,
    /// The oldest covered slot (negative before the window has existed for a whole span).
    first: i64,
    /// The number of covered slots.
    len: usize,
    /// The covered slots that hold data: `data_first..=data_last` (empty if first > last).
    data_first: i64,
    data_last: i64,
    /// The ring index of `data_first`.
    data_first_index: usize,
}

impl<'a> WindowView<'a> {
    pub(super) fn new(
        ring: &'a StripedRing,
        newest: u64,
        newest_index: usize,
        now_slot: u64,
        which: View,
    ) -> Self {
        let ring_len = ring.len() as i64;
        let (newest, now_slot) = (newest as i64, now_slot as i64);
        let (last, len) = match which {
            View::IncludingCurrent => (now_slot, ring_len),
            View::Completed => (now_slot - 1, ring_len - 1),
        };
        let first = last - len + 1;
        // The ring holds slots newest − ring + 1 ..= newest; slots before 0 never existed.
        let data_first = first.max(newest - ring_len + 1).max(0);
        let data_last = last.min(newest);
        let behind_newest = (newest - data_first).clamp(0, ring_len - 1);
        let data_first_index = (newest_index as i64 + ring_len - behind_newest) % ring_len;
        Self {
            ring,
            first,
            len: len as usize,
            data_first,
            data_last,
            data_first_index: data_first_index as usize,
        }
    }

    /// The number of covered buckets: the window's bucket count, one less for
    /// [`View::Completed`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view covers no bucket (only [`View::Completed`] of a one-bucket window).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The covered buckets that hold data, in every stripe, as contiguous runs.
    #[inline]
    fn data_runs(&self) -> impl Iterator<Item = &'a [Bucket]> {
        let held = (self.data_last - self.data_first + 1).max(0) as usize;
        self.ring.runs(self.data_first_index, held)
    }

    /// The sums and counts of all covered buckets, added together in one pass.
    #[inline]
    pub fn totals(&self) -> BucketStats {
        self.data_runs()
            .flatten()
            .fold(BucketStats::default(), |total, bucket| {
                total + bucket.load()
            })
    }

    /// The sum of the values recorded in the covered buckets.
    #[inline]
    pub fn sum(&self) -> u64 {
        self.data_runs()
            .flatten()
            .fold(0_u64, |sum, bucket| sum.wrapping_add(bucket.sum()))
    }

    /// The number of values recorded in the covered buckets.
    #[inline]
    pub fn count(&self) -> u64 {
        self.totals().count
    }

    /// The covered buckets, oldest first; buckets with nothing recorded (or not yet in
    /// existence) read as empty.
    pub fn iter(&self) -> Buckets<'a> {
        Buckets {
            ring: self.ring,
            next: self.first,
            end: self.first + self.len as i64,
            data_first: self.data_first,
            data_last: self.data_last,
            data_index: self.data_first_index,
        }
    }
}

impl<'a> IntoIterator for &WindowView<'a> {
    type Item = BucketStats;
    type IntoIter = Buckets<'a>;

    fn into_iter(self) -> Buckets<'a> {
        self.iter()
    }
}

/// The buckets of a [`WindowView`], oldest first.
#[derive(Debug, Clone)]
pub struct Buckets<'a> {
    ring: &'a StripedRing,
    next: i64,
    end: i64,
    data_first: i64,
    data_last: i64,
    data_index: usize,
}

impl Iterator for Buckets<'_> {
    type Item = BucketStats;

    fn next(&mut self) -> Option<BucketStats> {
        if self.next >= self.end {
            return None;
        }
        let slot = self.next;
        self.next += 1;
        if slot < self.data_first || slot > self.data_last {
            return Some(BucketStats::default());
        }
        let stats = self.ring.load(self.data_index);
        self.data_index += 1;
        if self.data_index == self.ring.len() {
            self.data_index = 0;
        }
        Some(stats)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Buckets<'_> {}
impl FusedIterator for Buckets<'_> {}
