//! [`RollingWindow`]: counters over the last `buckets × bucket_duration` of time, with its
//! shape ([`WindowConfig`]), its read views ([`WindowView`]) and the per-bucket helpers
//! ([`PerBucketCache`], [`OncePerBucket`]). The type's documentation states the semantics.

mod cache;
mod config;
mod once;
mod ring;
mod stats;
mod view;

use std::fmt;
use std::time::Duration;

pub use self::cache::PerBucketCache;
pub use self::config::{Stripes, ValidWindowConfig, WindowConfig};
pub use self::once::OncePerBucket;
use self::ring::StripedRing;
pub use self::stats::BucketStats;
pub use self::view::{Buckets, View, WindowView};
use crate::clock::saturating_nanos;
use crate::sync::{AtomicU64, Ordering, SlowPathLock};
use crate::{Clock, ConfigError, SystemClock};

/// Bits of the cursor that hold the ring index of the newest bucket.
const INDEX_BITS: u32 = 16;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Most buckets a window may have: every ring index fits in `INDEX_BITS`.
pub(crate) const MAX_BUCKETS: usize = 1 << INDEX_BITS;
/// Largest bucket slot (bucket number since creation) the cursor can hold: 2⁴⁸ − 1. A window
/// of 1 µs buckets reaches it after 8.9 years, one of 1 ms buckets after 8 900 years; beyond
/// it, records stay in the last slot.
const MAX_SLOT: u64 = (1 << (64 - INDEX_BITS)) - 1;

/// A concurrent rolling window of `sum`/`count` buckets over the clock `C`: counters over
/// the last `buckets × bucket_duration` of time.
///
/// The window is a ring of buckets, each `bucket_duration` wide and aligned to the window's
/// creation instant. Each bucket holds a `sum` and a `count` of the values recorded in its span.
/// The breaker counts calls in one, the limiter response times in another. Build one from a
/// [`WindowConfig`], or with [`RollingWindow::new`] for one that reads [`SystemClock`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{Clock, ManualClock, RollingWindow, View, WindowConfig};
///
/// let window = RollingWindow::new(10, Duration::from_millis(100))?;
/// window.record(250);
/// assert_eq!(window.sum(), 250);
///
/// // On a clock moved by hand:
/// let clock = ManualClock::new();
/// let window = WindowConfig::new(3, Duration::from_secs(1)).build_with(clock.clone())?;
///
/// window.record(1);
/// clock.advance(Duration::from_secs(1));
/// window.record(2);
/// window.record(3);
/// assert_eq!((window.sum(), window.count()), (6, 3));
///
/// // The completed view leaves out the current bucket, which holds 2 and 3.
/// assert_eq!(window.view(View::Completed).sum(), 1);
///
/// // A layer that already read the clock for this request passes the instant along.
/// let now = clock.now();
/// window.record_at(now, 4);
/// let sums: Vec<u64> = window.view_at(now, View::IncludingCurrent).iter().map(|b| b.sum).collect();
/// assert_eq!(sums, [0, 1, 9]); // oldest first
///
/// // Three seconds later everything has expired, without a write to rotate the ring.
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(window.count(), 0);
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Semantics
///
/// These follow Kratos aegis's rolling counter, with its bugs fixed:
///
/// - **Writes rotate.** A record at instant `t` first moves the ring forward to `t`'s bucket:
///   the buckets in between are emptied (at most `buckets` of them), and the ring advances by
///   the *unclamped* number of elapsed buckets, so it stays aligned to its creation instant
///   even after an idle gap longer than the window (aegis issue #17). Then the value is added.
/// - **Time never runs backwards.** A record at an instant older than the newest bucket (the
///   clock stepped back, or another thread rotated first) goes into the newest bucket: zero
///   elapsed time, never a panic or a reset.
/// - **Reads never write and never show expired data.** A read at `now` covers the `buckets`
///   bucket slots ending with `now`'s bucket, whether or not a write has rotated the ring
///   since: a read more than a full window after the last write sees nothing.
/// - **Two views.** [`View::IncludingCurrent`] covers the current, partial bucket and the
///   `buckets − 1` before it (the breaker's view: the newest outcomes count at once).
///   [`View::Completed`] covers only the `buckets − 1` completed buckets before the current one
///   (the limiter's view: statistics of whole buckets only).
///
/// # Concurrency
///
/// Recording is lock-free on its fast path: one atomic load of the ring's cursor and two
/// relaxed `fetch_add`s on the calling thread's copy of the bucket (one for an
/// [`add_at`](Self::add_at) whose sum or count is zero). Each bucket has one copy
/// per [stripe](Stripes) (by default one per CPU, up to 8), each on its own cache line, so
/// threads recording at the same time do not slow each other down; reads add the copies up.
/// Rotating, once per bucket, takes a mutex; it empties buckets *before*
/// publishing the new cursor, so no record that lands in a fresh bucket can be erased by the
/// rotation that created it, and `N` threads recording `M` values each are always counted
/// exactly `N × M` times. The only record a rotation can erase is one that was delayed past a
/// whole window (its thread loaded the cursor, then did not run for a whole window): its bucket
/// had expired and no read would have shown it. A read racing a rotation may see a bucket
/// already emptied for its new span, never one that holds expired data.
///
/// # Clock
///
/// Every operation has two forms: one reads the window's clock (`record`, `view`, `sum`,
/// `count`) and one takes the instant from the caller (`record_at`, `view_at`), so a caller that
/// has already read the same clock for this event never reads it twice. Instants passed in
/// must come from the window's clock (or a clone of it).
///
/// # Sharing
///
/// All methods take `&self`; share a window between threads and tasks with an `Arc`.
pub struct RollingWindow<C = SystemClock> {
    /// `slot << INDEX_BITS | index`: the bucket number (since creation) of the newest bucket
    /// and its position in the ring. Only a rotation, under `rotation`, writes it.
    cursor: AtomicU64,
    ring: StripedRing,
    bucket_nanos: u64,
    /// The clock's reading at creation, in nanoseconds: slot 0 starts here.
    origin_nanos: u64,
    rotation: SlowPathLock,
    clock: C,
}

#[inline]
const fn pack(slot: u64, index: u64) -> u64 {
    (slot << INDEX_BITS) | index
}

#[inline]
const fn slot_of(cursor: u64) -> u64 {
    cursor >> INDEX_BITS
}

#[inline]
const fn index_of(cursor: u64) -> usize {
    (cursor & INDEX_MASK) as usize
}

/// # Construction
impl RollingWindow {
    /// A window of `buckets` buckets of `bucket_duration` each, reading [`SystemClock`].
    ///
    /// # Errors
    ///
    /// As [`WindowConfig::validate`].
    pub fn new(buckets: usize, bucket_duration: Duration) -> Result<Self, ConfigError> {
        WindowConfig::new(buckets, bucket_duration).build()
    }
}

impl<C: Clock> RollingWindow<C> {
    /// A window of the given shape reading `clock`; its buckets are aligned to `clock.now()`.
    ///
    /// # Errors
    ///
    /// As [`WindowConfig::validate`].
    pub fn new_with(config: WindowConfig, clock: C) -> Result<Self, ConfigError> {
        config.build_with(clock)
    }

    pub(crate) fn from_valid_config(config: WindowConfig, clock: C) -> Self {
        let origin_nanos = saturating_nanos(clock.now());
        Self {
            cursor: AtomicU64::new(pack(0, 0)),
            ring: StripedRing::new(config.buckets, config.stripes.count()),
            bucket_nanos: saturating_nanos(config.bucket_duration),
            origin_nanos,
            rotation: SlowPathLock::default(),
            clock,
        }
    }
}

/// # Recording and reading now
impl<C: Clock> RollingWindow<C> {
    /// Adds `value` to the current bucket, reading the window's clock.
    #[inline]
    pub fn record(&self, value: u64) {
        self.record_at(self.clock.now(), value);
    }

    /// The sum of the values recorded in the window, current bucket included.
    pub fn sum(&self) -> u64 {
        self.view(View::IncludingCurrent).sum()
    }

    /// The number of values recorded in the window, current bucket included.
    pub fn count(&self) -> u64 {
        self.view(View::IncludingCurrent).count()
    }

    /// The window's buckets as of now, reading the window's clock.
    pub fn view(&self, which: View) -> WindowView<'_> {
        self.view_at(self.clock.now(), which)
    }
}

/// # Recording at a given instant
///
/// These never read the clock, so they need no `Clock` bound: a guard's `Drop` can call them.
impl<C> RollingWindow<C> {
    /// Adds `value` to the bucket of instant `now` (read from the window's clock), or to the
    /// newest bucket if `now` is older than it.
    ///
    /// Sums wrap around at 2⁶⁴.
    #[inline]
    pub fn record_at(&self, now: Duration, value: u64) {
        self.add_at(
            now,
            BucketStats {
                sum: value,
                count: 1,
            },
        );
    }

    /// Adds `stats` to the bucket of instant `now`, as [`record_at`](Self::record_at) adds
    /// one value: its sum to the bucket's sum and its count to its count. A zero part writes
    /// nothing, so a caller that packs its own counts into the sum (or keeps one in the
    /// count alone) pays one atomic write per event instead of two.
    ///
    /// ```
    /// use rampart_core::{BucketStats, Clock, ManualClock, WindowConfig};
    ///
    /// let clock = ManualClock::new();
    /// let window = WindowConfig::default().build_with(clock.clone())?;
    /// window.add_at(clock.now(), BucketStats { sum: 5, count: 0 });
    /// window.add_at(clock.now(), BucketStats { sum: 0, count: 2 });
    /// assert_eq!((window.sum(), window.count()), (5, 2));
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn add_at(&self, now: Duration, stats: BucketStats) {
        let elapsed = saturating_nanos(now).saturating_sub(self.origin_nanos);
        let cursor = self.cursor.load(Ordering::Acquire);
        let index = if elapsed < self.end_of_slot(slot_of(cursor)) {
            index_of(cursor)
        } else {
            index_of(self.rotate(elapsed))
        };
        self.ring.add(index, stats.sum, stats.count);
    }

    /// Moves the ring forward to the bucket of `now`, as a record at `now` would, without
    /// recording anything.
    ///
    /// A layer that reads the clock once per request (when admitting it) and records the
    /// outcome at that same instant when the response arrives calls this on admission: late
    /// outcomes then land in the newest bucket (an instant older than the newest bucket reads
    /// as the newest bucket) instead of the bucket of their admission, which may have expired
    /// by the time a slow call fails.
    #[inline]
    pub fn advance_to(&self, now: Duration) {
        self.advance_cursor(now);
    }

    /// Moves the ring forward to the bucket of `now`, as [`advance_to`](Self::advance_to)
    /// does, and reads that bucket, as [`current_at`](Self::current_at) does: its number and
    /// what it holds so far. One look at the ring's position serves both, where the two calls
    /// would each make their own.
    ///
    /// After it, the bucket of `now` is the newest bucket (or, when `now` is older than the
    /// newest bucket, the newest bucket is read), so a record at `now` that follows lands in
    /// the bucket read here.
    #[inline]
    pub fn advance_and_read(&self, now: Duration) -> (u64, BucketStats) {
        let cursor = self.advance_cursor(now);
        (slot_of(cursor), self.ring.load(index_of(cursor)))
    }

    /// Moves the ring forward to the bucket of `now` if it is not there yet; returns the
    /// cursor after the move.
    #[inline]
    fn advance_cursor(&self, now: Duration) -> u64 {
        let elapsed = saturating_nanos(now).saturating_sub(self.origin_nanos);
        let cursor = self.cursor.load(Ordering::Acquire);
        if elapsed < self.end_of_slot(slot_of(cursor)) {
            cursor
        } else {
            self.rotate(elapsed)
        }
    }

    /// Nanoseconds since creation at which bucket slot `slot` ends.
    #[inline]
    fn end_of_slot(&self, slot: u64) -> u64 {
        (slot + 1).saturating_mul(self.bucket_nanos)
    }

    /// The slot that holds `elapsed` nanoseconds since creation.
    #[inline]
    fn slot_at(&self, elapsed: u64) -> u64 {
        (elapsed / self.bucket_nanos).min(MAX_SLOT)
    }

    /// Moves the ring forward to the slot of `elapsed`, if it is not there yet, and returns
    /// the cursor of the newest bucket.
    #[cold]
    #[inline(never)]
    fn rotate(&self, elapsed: u64) -> u64 {
        let target = self.slot_at(elapsed);
        let _rotating = self.rotation.lock();
        // The lock orders this rotation after the previous one: its cursor is visible.
        let cursor = self.cursor.load(Ordering::Relaxed);
        let (slot, index) = (slot_of(cursor), index_of(cursor) as u64);
        if target <= slot {
            return cursor;
        }
        let len = self.ring.len() as u64;
        let advance = target - slot;
        for step in 1..=advance.min(len) {
            self.ring.reset(((index + step) % len) as usize);
        }
        let new_index = (index + advance % len) % len;
        // Release: a writer that sees the new cursor also sees the emptied buckets, so its
        // `fetch_add` lands after the reset in each counter's modification order.
        let cursor = pack(target, new_index);
        self.cursor.store(cursor, Ordering::Release);
        cursor
    }
}

/// # Reading at a given instant
impl<C> RollingWindow<C> {
    /// The window's buckets as of instant `now` (read from the window's clock). An instant
    /// older than the newest bucket reads as the newest bucket's.
    pub fn view_at(&self, now: Duration, which: View) -> WindowView<'_> {
        let (cursor, now_slot) = self.locate(now);
        WindowView::new(
            &self.ring,
            slot_of(cursor),
            index_of(cursor),
            now_slot,
            which,
        )
    }

    /// The number of the bucket instant `now` falls in, counting from 0 at the window's
    /// creation (and never less than the newest bucket written). It changes once per
    /// `bucket_duration`, so it keys statistics computed once per bucket: see
    /// [`PerBucketCache`].
    #[inline]
    pub fn bucket_at(&self, now: Duration) -> u64 {
        self.locate(now).1
    }

    /// The bucket instant `now` falls in: its number (as [`bucket_at`](Self::bucket_at)) and
    /// what it holds so far. Together with a cached total of the completed buckets, this
    /// gives the [`View::IncludingCurrent`] totals without adding up the whole window.
    #[inline]
    pub fn current_at(&self, now: Duration) -> (u64, BucketStats) {
        let (cursor, now_slot) = self.locate(now);
        let stats = if now_slot == slot_of(cursor) {
            self.ring.load(index_of(cursor))
        } else {
            BucketStats::default()
        };
        (now_slot, stats)
    }

    /// The cursor, and the slot of `now` (never older than the cursor's).
    #[inline]
    fn locate(&self, now: Duration) -> (u64, u64) {
        let elapsed = saturating_nanos(now).saturating_sub(self.origin_nanos);
        let cursor = self.cursor.load(Ordering::Acquire);
        let newest = slot_of(cursor);
        let now_slot = if elapsed < self.end_of_slot(newest) {
            newest
        } else {
            self.slot_at(elapsed).max(newest)
        };
        (cursor, now_slot)
    }
}

/// # Shape
impl<C> RollingWindow<C> {
    /// The window's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The number of buckets in the ring.
    pub fn buckets(&self) -> usize {
        self.ring.len()
    }

    /// The number of stripes concurrent writers spread over (see [`Stripes`]).
    pub fn stripes(&self) -> usize {
        self.ring.stripes()
    }

    /// The width of one bucket.
    pub fn bucket_duration(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos)
    }

    /// The span of the window: `buckets × bucket_duration`.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos * self.ring.len() as u64)
    }

    /// The shape this window was built with.
    pub fn config(&self) -> WindowConfig {
        WindowConfig {
            stripes: Stripes::Exactly(self.stripes()),
            ..WindowConfig::new(self.buckets(), self.bucket_duration())
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RollingWindow<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cursor = self.cursor.load(Ordering::Relaxed);
        f.debug_struct("RollingWindow")
            .field("buckets", &self.ring.len())
            .field("stripes", &self.ring.stripes())
            .field("bucket_duration", &Duration::from_nanos(self.bucket_nanos))
            .field("newest_slot", &slot_of(cursor))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
