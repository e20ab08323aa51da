//! The retry layer's metrics, registered once when it is built.

use metrics::{Counter, Label};

use crate::events::Transitions;
use crate::{Next, StopReason};

/// `rampart_retry_attempts_total{name, kind}` and `rampart_retry_budget_exhausted_total{name}`.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    first: Counter,
    retry: Counter,
    exhausted: Counter,
    transitions: Transitions,
}

impl RetryMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let name = Label::new("name", name.to_owned());
        let attempts = |kind: &'static str| {
            metrics::counter!(
                "rampart_retry_attempts_total",
                vec![name.clone(), Label::new("kind", kind)]
            )
        };
        Self {
            first: attempts("first"),
            retry: attempts("retry"),
            exhausted: metrics::counter!(
                "rampart_retry_budget_exhausted_total",
                vec![name.clone()]
            ),
            transitions: Transitions::new(name.value()),
        }
    }

    #[inline]
    pub(crate) fn first(&self) {
        self.first.increment(1);
    }

    #[inline]
    pub(crate) fn retry(&self) {
        self.retry.increment(1);
    }

    /// Counts what the retrier decided after an attempt: a retry the budget granted, or one it
    /// refused.
    #[inline]
    pub(crate) fn decided<Req>(&self, next: &Next<Req>) {
        match next {
            Next::Retry { .. } => self.transitions.granted(),
            Next::Stop(StopReason::BudgetExhausted) => {
                self.exhausted.increment(1);
                self.transitions.refused();
            }
            Next::Stop(_) => {}
        }
    }
}
