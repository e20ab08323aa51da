//! The breaker's metrics, registered once when it is built.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge};

/// `rampart_breaker_requests_total{name, outcome}` and `rampart_breaker_drop_probability{name}`.
#[derive(Debug)]
pub(crate) struct BreakerMetrics {
    success: Counter,
    failure: Counter,
    rejected: Counter,
    drop_probability: Gauge,
    /// The last probability set on the gauge, as `f64` bits, so that the gauge is only
    /// touched when the probability changes.
    published: AtomicU64,
}

impl BreakerMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let requests = |outcome: &'static str| {
            metrics::counter!(
                "rampart_breaker_requests_total",
                "name" => name.to_owned(),
                "outcome" => outcome
            )
        };
        let metrics = Self {
            success: requests("success"),
            failure: requests("failure"),
            rejected: requests("rejected"),
            drop_probability: metrics::gauge!(
                "rampart_breaker_drop_probability",
                "name" => name.to_owned()
            ),
            published: AtomicU64::new(0.0_f64.to_bits()),
        };
        metrics.drop_probability.set(0.0);
        metrics
    }

    #[inline]
    pub(crate) fn success(&self) {
        self.success.increment(1);
    }

    #[inline]
    pub(crate) fn failure(&self) {
        self.failure.increment(1);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    #[inline]
    pub(crate) fn drop_probability(&self, probability: f64) {
        // A read in the steady state, so that threads do not fight over the cache line.
        let bits = probability.to_bits();
        if self.published.load(Ordering::Relaxed) != bits {
            self.published.store(bits, Ordering::Relaxed);
            self.drop_probability.set(probability);
        }
    }
}
