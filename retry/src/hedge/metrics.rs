//! The hedge layer's metrics, registered once when it is built, and its counts since then
//! ([`HedgeStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Label};
use rampart_core::CriticalityClass;

use super::HedgeRefusal;
use super::events::HedgeTransitions;

/// What a hedge layer did since it was built: hedges sent, hedges whose answer won, hedges
/// that were due and refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeStats {
    /// Copies sent besides the first.
    pub sent: u64,
    /// Requests answered by a hedge rather than their first copy.
    pub won: u64,
    /// Hedges the budget refused.
    pub refused_budget: u64,
    /// Hedges not sent because the deadline left less than the predicted latency.
    pub refused_deadline: u64,
    /// Requests slower than the hedge delay that could not be hedged (the filter refused
    /// them, or the policy could not copy them).
    pub refused_policy: u64,
    /// Hedges not sent because a server's pushback held them.
    pub refused_pushback: u64,
}

/// `rampart_retry_hedges_total{name, outcome, criticality}` (`outcome`: `sent`, `won`,
/// `refused_budget`, `refused_deadline`, `refused_policy`, `refused_pushback`) and
/// `rampart_retry_hedge_delay_seconds{name}`: every handle registered up front, one per
/// criticality class.
#[derive(Debug)]
pub(crate) struct HedgeMetrics {
    sent: [Counter; 4],
    won: [Counter; 4],
    refused: [[Counter; 4]; 4],
    delay: Gauge,
    counts: [AtomicU64; 6],
    pub(crate) transitions: HedgeTransitions,
}

const SENT: usize = 0;
const WON: usize = 1;

const fn refusal_index(refusal: HedgeRefusal) -> usize {
    match refusal {
        HedgeRefusal::Budget => 0,
        HedgeRefusal::Deadline => 1,
        HedgeRefusal::Policy => 2,
        HedgeRefusal::Pushback => 3,
    }
}

impl HedgeMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let name = Label::new("name", name.to_owned());
        let by_class = |outcome: &'static str| {
            CriticalityClass::ALL.map(|class| {
                metrics::counter!(
                    "rampart_retry_hedges_total",
                    vec![
                        name.clone(),
                        Label::new("outcome", outcome),
                        Label::new("criticality", class.as_str()),
                    ]
                )
            })
        };
        Self {
            sent: by_class("sent"),
            won: by_class("won"),
            refused: [
                HedgeRefusal::Budget,
                HedgeRefusal::Deadline,
                HedgeRefusal::Policy,
                HedgeRefusal::Pushback,
            ]
            .map(|refusal| by_class(refusal.as_str())),
            delay: metrics::gauge!("rampart_retry_hedge_delay_seconds", vec![name.clone()]),
            counts: Default::default(),
            transitions: HedgeTransitions::new(name.value()),
        }
    }

    /// A hedge sent.
    pub(crate) fn sent(&self, class: CriticalityClass) {
        self.sent[class.index()].increment(1);
        self.counts[SENT].fetch_add(1, Ordering::Relaxed);
        self.transitions.granted();
    }

    /// A request answered by a hedge.
    pub(crate) fn won(&self, class: CriticalityClass) {
        self.won[class.index()].increment(1);
        self.counts[WON].fetch_add(1, Ordering::Relaxed);
    }

    /// A hedge that was due and not sent.
    #[cold]
    pub(crate) fn refused(&self, refusal: HedgeRefusal, class: CriticalityClass) {
        let index = refusal_index(refusal);
        if let Some(counter) = self.refused.get(index).and_then(|by| by.get(class.index())) {
            counter.increment(1);
        }
        if let Some(count) = self.counts.get(2 + index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if refusal == HedgeRefusal::Budget {
            self.transitions.refused();
        }
    }

    /// The delay of a new bucket, computed by this thread (`None`: the window is cold).
    #[cold]
    pub(crate) fn delay(&self, delay: Option<Duration>) {
        self.delay
            .set(delay.map_or(0.0, |delay| delay.as_secs_f64()));
        self.transitions.delay(delay);
    }

    pub(crate) fn stats(&self) -> HedgeStats {
        let [
            sent,
            won,
            refused_budget,
            refused_deadline,
            refused_policy,
            refused_pushback,
        ] = self
            .counts
            .each_ref()
            .map(|count| count.load(Ordering::Relaxed));
        HedgeStats {
            sent,
            won,
            refused_budget,
            refused_deadline,
            refused_policy,
            refused_pushback,
        }
    }
}
