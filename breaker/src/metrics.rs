//! The breaker's metrics, registered once when it is built.
//!
//! The handles bind to the recorder installed when the breaker is built: install yours first.
//! Decisions set the drop-probability gauge; the shared background refresher
//! (`rampart_core::gauges`) sets it too, once a second, so that it follows the window when no
//! call arrives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use metrics::{Counter, Gauge};

use crate::events::Transitions;

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
    transitions: Transitions,
    /// Whether the gauge still awaits its registration with the background refresher: set
    /// for reporting handles until registered, never for no-op ones.
    unrefreshed: AtomicBool,
}

impl BreakerMetrics {
    /// Registers the metrics of the breaker `name`; a member of a keyed group also carries
    /// its `key` label.
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        let mut labels = vec![metrics::Label::new("name", name.to_owned())];
        if let Some(key) = key {
            labels.push(metrics::Label::new("key", key.to_owned()));
        }
        let requests = |outcome: &'static str| {
            let mut labels = labels.clone();
            labels.push(metrics::Label::new("outcome", outcome));
            metrics::counter!("rampart_breaker_requests_total", labels)
        };
        let metrics = Self {
            success: requests("success"),
            failure: requests("failure"),
            rejected: requests("rejected"),
            drop_probability: metrics::gauge!("rampart_breaker_drop_probability", labels.clone()),
            published: AtomicU64::new(0.0_f64.to_bits()),
            transitions: Transitions::new(name, key),
            unrefreshed: AtomicBool::new(true),
        };
        metrics.drop_probability.set(0.0);
        metrics
    }

    /// Handles that record nothing.
    pub(crate) fn noop() -> Self {
        Self {
            success: Counter::noop(),
            failure: Counter::noop(),
            rejected: Counter::noop(),
            drop_probability: Gauge::noop(),
            published: AtomicU64::new(0.0_f64.to_bits()),
            transitions: Transitions::default(),
            unrefreshed: AtomicBool::new(false),
        }
    }

    /// Whether the caller is the one to register these metrics with the background refresher:
    /// true once for reporting handles, never for no-op ones.
    pub(crate) fn claim_refresh(&self) -> bool {
        self.unrefreshed.load(Ordering::Relaxed) && self.unrefreshed.swap(false, Ordering::Relaxed)
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
            // The swap tells exactly one thread what the probability was before it.
            let before = self.published.swap(bits, Ordering::Relaxed);
            if before != bits {
                self.drop_probability.set(probability);
                self.transitions
                    .probability_changed(f64::from_bits(before), probability);
            }
        }
    }
}
