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
use rampart_core::{RollingWindow, saturating_nanos};

/// The limiter's window of completions (per bucket: the sum of response times in µs, and the
/// number of completions) and its in-flight gauge.
///
/// Aligned to two cache lines so that the reference counts, written by every admission and
/// completion, never share a line with the window's fields, which every admission reads.
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Ledger<C> {
    pub(crate) window: RollingWindow<C>,
    /// `rampart_ratelimit_inflight`, set to 0 when the last request in flight ends.
    inflight_gauge: Gauge,
}

impl<C> Ledger<C> {
    /// The limiter's reference to a new ledger.
    pub(crate) fn new(window: RollingWindow<C>, inflight_gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            window,
            inflight_gauge,
        })
    }

    /// Requests admitted and not yet ended: the references beyond the limiter's (`this`).
    #[inline]
    pub(crate) fn inflight(this: &Arc<Self>) -> u64 {
        (Arc::strong_count(this) as u64).saturating_sub(1)
    }

    /// Records a completion at `now` of a request that started at `started`: its response time
    /// in µs (at least 1) and one pass. The permit's reference, dropped after, takes it out of
    /// flight.
    #[inline]
    pub(crate) fn record(&self, started: Duration, now: Duration) {
        // In whole nanoseconds (a u64 holds 584 years of them): no 128-bit division on the
        // request path.
        let nanos = saturating_nanos(now.saturating_sub(started));
        let rt_us = nanos.div_ceil(1_000).max(1);
        self.window.record_at(now, rt_us);
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
