//! The retry layer's metrics, registered once when it is built.

use metrics::{Counter, Label};
use rampart_core::CriticalityClass;

use crate::events::Transitions;
use crate::{Next, StopReason};

/// `rampart_retry_attempts_total{name, kind, criticality}`,
/// `rampart_retry_budget_exhausted_total{name, criticality}`,
/// `rampart_retry_deadline_skips_total{name, kind, criticality}` and
/// `rampart_retry_pushback_stops_total{name, criticality}`: every handle registered up
/// front, one per criticality class (by [`CriticalityClass::index`]), so that counting is an
/// index, never a lookup.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    first: [Counter; 4],
    retry: [Counter; 4],
    exhausted: [Counter; 4],
    /// First attempts not sent: the deadline had passed when the layer was called.
    first_skipped: [Counter; 4],
    /// Retries not sent: the deadline left too little time.
    retry_skipped: [Counter; 4],
    /// Retries not made because a server asked: "don't retry", a wait past `max_pushback`, or
    /// a pushback holding the layer's retries.
    pushback_stops: [Counter; 4],
    transitions: Transitions,
}

impl RetryMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let name = Label::new("name", name.to_owned());
        let criticality = |class: CriticalityClass| Label::new("criticality", class.as_str());
        let by_kind = |metric: &'static str, kind: &'static str| {
            CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    metric,
                    vec![name.clone(), Label::new("kind", kind), criticality(class)]
                )
            })
        };
        let attempts = |kind| by_kind("rampart_retry_attempts_total", kind);
        let skips = |kind| by_kind("rampart_retry_deadline_skips_total", kind);
        Self {
            first: attempts("first"),
            retry: attempts("retry"),
            exhausted: CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    "rampart_retry_budget_exhausted_total",
                    vec![name.clone(), criticality(class)]
                )
            }),
            first_skipped: skips("first"),
            retry_skipped: skips("retry"),
            pushback_stops: CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    "rampart_retry_pushback_stops_total",
                    vec![name.clone(), criticality(class)]
                )
            }),
            transitions: Transitions::new(name.value()),
        }
    }

    #[inline]
    pub(crate) fn first(&self, class: CriticalityClass) {
        self.first[class.index()].increment(1);
    }

    #[inline]
    pub(crate) fn retry(&self, class: CriticalityClass) {
        self.retry[class.index()].increment(1);
    }

    /// A first attempt not sent: the request's deadline had passed.
    #[cold]
    pub(crate) fn first_skipped(&self, class: CriticalityClass) {
        self.first_skipped[class.index()].increment(1);
    }

    /// A retry not sent: the request's deadline left too little time.
    #[cold]
    pub(crate) fn retry_skipped(&self, class: CriticalityClass) {
        self.retry_skipped[class.index()].increment(1);
    }

    /// Counts what the retrier decided after an attempt of a request of `class`: a retry the
    /// budget granted, one it refused, one skipped for lack of time, or one a server's pushback
    /// stopped (also when a retry due is held at the end of its wait).
    #[inline]
    pub(crate) fn decided<Req>(&self, next: &Next<Req>, class: CriticalityClass) {
        match next {
            Next::Retry { .. } => self.transitions.granted(),
            Next::Stop(StopReason::BudgetExhausted) => {
                self.exhausted[class.index()].increment(1);
                self.transitions.refused();
            }
            Next::Stop(StopReason::NoTimeLeft) => self.retry_skipped(class),
            Next::Stop(StopReason::Pushback) => {
                self.pushback_stops[class.index()].increment(1);
            }
            Next::Stop(_) => {}
        }
    }
}
