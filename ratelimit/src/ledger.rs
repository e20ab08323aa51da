//! [`Ledger`]: what a limiter's permits record their completions in, and whose references
//! count them in flight.
//!
//! A permit needs the window to record its completion in, so it holds a reference to it
//! however it ends; the limiter holds one more. Counting the requests in flight as the
//! references beyond the limiter's makes taking a permit one atomic increment and ending it
//! one decrement, where a separate counter beside the reference would cost two of each (and a
//! permit that outlives its limiter needs the reference anyway). Only the limiter and its
//! permits ever hold one.

use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use rampart_core::{Arrival, BucketStats, Clock, RollingWindow, Timing, saturating_nanos};

/// Added to a bucket's count by a timed completion: the count's high half counts the timed
/// completions, its low half all of them (a bucket would need 2³² completions to carry).
const TIMED: u64 = 1 << 32;

/// The limiter's window of completions (per bucket: the sum of the timed ones' response times
/// in µs, and in the count, every completion and the timed ones, see [`passes`] and
/// [`mean_rt_us`]), how its requests are timed, and its in-flight gauge.
///
/// Aligned to two cache lines so that the reference counts, written by every admission and
/// completion, never share a line with the window's fields, which every admission reads.
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Ledger<C> {
    pub(crate) window: RollingWindow<C>,
    pub(crate) timing: Timing,
    /// `rampart_ratelimit_inflight`, set to 0 when the last request in flight ends.
    inflight_gauge: Gauge,
}

impl<C: Clock> Ledger<C> {
    /// The limiter's reference to a new ledger.
    pub(crate) fn new(window: RollingWindow<C>, inflight_gauge: Gauge) -> Arc<Self> {
        let timing = Timing::new(window.clock(), window.bucket_duration());
        Arc::new(Self {
            window,
            timing,
            inflight_gauge,
        })
    }

    /// The arrival of a request now (see [`Timing`]).
    #[inline]
    pub(crate) fn arrival(&self) -> Arrival {
        self.timing.arrival(self.window.clock())
    }

    /// Records the completion now of a request timed from `timed_from` (`None`: not timed).
    #[inline]
    pub(crate) fn complete(&self, timed_from: Option<Duration>) {
        let finish = self.timing.completion(self.window.clock(), timed_from);
        self.record(finish.at, finish.timed.map(|timed| timed.elapsed()));
    }
}

impl<C> Ledger<C> {
    /// Requests admitted and not yet ended: the references beyond the limiter's (`this`).
    #[inline]
    pub(crate) fn inflight(this: &Arc<Self>) -> u64 {
        (Arc::strong_count(this) as u64).saturating_sub(1)
    }

    /// Records a completion at `at`: one pass, and for a timed request its `response_time`
    /// in µs (at least 1), in one write to the window (two for a timed one). The permit's
    /// reference, dropped after, takes it out of flight.
    #[inline]
    pub(crate) fn record(&self, at: Duration, response_time: Option<Duration>) {
        let stats = match response_time {
            Some(response_time) => {
                // In whole nanoseconds (a u64 holds 584 years of them): no 128-bit division on
                // the request path.
                let rt_us = saturating_nanos(response_time).div_ceil(1_000).max(1);
                BucketStats {
                    sum: rt_us,
                    count: 1 + TIMED,
                }
            }
            None => BucketStats { sum: 0, count: 1 },
        };
        self.window.add_at(at, stats);
    }

    /// Called by a permit (`this`) about to drop its reference: a completion, or a request
    /// that never completed (cancelled, or unwinding from a panic), which records nothing.
    ///
    /// The gauge is otherwise published by arrivals, once per bucket: without this, a server
    /// whose traffic stopped would show the last sample's requests in flight. Two last requests
    /// ending at once may each see the other in flight and leave the gauge to the background
    /// refresher, which sets it within a second.
    #[inline]
    pub(crate) fn leaving(this: &Arc<Self>) {
        if Arc::strong_count(this) == 2 {
            this.inflight_gauge.set(0.0);
        }
    }
}

/// The completions in `bucket`, timed or not.
#[inline]
pub(crate) fn passes(bucket: &BucketStats) -> u64 {
    bucket.count & (TIMED - 1)
}

/// The mean response time of the timed completions in `bucket`, in µs; `None` if none was
/// timed.
#[inline]
pub(crate) fn mean_rt_us(bucket: &BucketStats) -> Option<f64> {
    let timed = bucket.count / TIMED;
    (timed > 0).then(|| bucket.sum as f64 / timed as f64)
}

#[cfg(test)]
mod tests {
    use rampart_core::{ManualClock, WindowConfig};

    use super::*;

    #[test]
    fn every_completion_is_a_pass_and_only_the_timed_ones_make_the_mean() {
        let window = WindowConfig::default()
            .build_with(ManualClock::new())
            .expect("valid");
        let ledger = Ledger::new(window, Gauge::noop());
        let ms = Duration::from_millis(1);
        ledger.record(ms, None);
        ledger.record(ms, Some(10 * ms));
        ledger.record(ms, None);
        ledger.record(ms, Some(20 * ms));
        let bucket = ledger
            .window
            .view_at(ms, rampart_core::View::IncludingCurrent)
            .into_iter()
            .last();
        let bucket = bucket.expect("a bucket");
        assert_eq!(passes(&bucket), 4);
        assert_eq!(mean_rt_us(&bucket), Some(15_000.0));
        assert_eq!(mean_rt_us(&BucketStats { sum: 0, count: 3 }), None);
        // A sub-microsecond response time counts as one microsecond.
        ledger.record(ms, Some(Duration::from_nanos(1)));
        let bucket = ledger
            .window
            .view_at(ms, rampart_core::View::IncludingCurrent)
            .into_iter()
            .last();
        assert_eq!(bucket.map(|b| (passes(&b), b.sum)), Some((5, 30_001)));
    }
}
