//! The retry layer's metrics, registered once when it is built.

use metrics::{Counter, Label};
use rampart_core::CriticalityClass;

use crate::events::Transitions;
use crate::{Next, StopReason};

/// `rampart_retry_attempts_total{name, kind, criticality}` and
/// `rampart_retry_budget_exhausted_total{name, criticality}`: every handle registered up front,
/// one per criticality class (by [`CriticalityClass::index`]), so that counting is an index,
/// never a lookup.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    first: [Counter; 4],
    retry: [Counter; 4],
    exhausted: [Counter; 4],
    transitions: Transitions,
}

impl RetryMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let name = Label::new("name", name.to_owned());
        let criticality = |class: CriticalityClass| Label::new("criticality", class.as_str());
        let attempts = |kind: &'static str| {
            CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    "rampart_retry_attempts_total",
                    vec![name.clone(), Label::new("kind", kind), criticality(class)]
                )
            })
        };
        Self {
            first: attempts("first"),
            retry: attempts("retry"),
            exhausted: CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    "rampart_retry_budget_exhausted_total",
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

    /// Counts what the retrier decided after an attempt of a request of `class`: a retry the
    /// budget granted, or one it refused.
    #[inline]
    pub(crate) fn decided<Req>(&self, next: &Next<Req>, class: CriticalityClass) {
        match next {
            Next::Retry { .. } => self.transitions.granted(),
            Next::Stop(StopReason::BudgetExhausted) => {
                self.exhausted[class.index()].increment(1);
                self.transitions.refused();
            }
            Next::Stop(_) => {}
        }
    }
}
