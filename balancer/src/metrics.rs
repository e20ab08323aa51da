//! The balancer's metrics, registered once per balancer and once per endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Label};
use rampart_core::saturating_nanos;

/// How often an endpoint's score gauge is refreshed, at most.
const SCORE_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// `rampart_balancer_endpoints{name}`.
#[derive(Debug)]
pub(crate) struct BalancerMetrics {
    name: String,
    pub(crate) endpoints: Gauge,
}

/// `rampart_balancer_picks_total{name, endpoint}` and
/// `rampart_balancer_endpoint_score{name, endpoint}`.
///
/// Shared by reference: the handles of a [`SharedP2c`](crate::SharedP2c) publish from many
/// threads.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub(crate) picks: Counter,
    score: Gauge,
    /// When `score` was last set, in nanoseconds; `NEVER` before the first time.
    score_published: AtomicU64,
}

/// `score_published` before the score is first set.
const NEVER: u64 = u64::MAX;

impl BalancerMetrics {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            endpoints: metrics::gauge!("rampart_balancer_endpoints", "name" => name.to_owned()),
        }
    }

    pub(crate) fn endpoint(&self, endpoint: String) -> EndpointMetrics {
        let labels = vec![
            Label::new("name", self.name.clone()),
            Label::new("endpoint", endpoint),
        ];
        EndpointMetrics {
            picks: metrics::counter!("rampart_balancer_picks_total", labels.clone()),
            score: metrics::gauge!("rampart_balancer_endpoint_score", labels),
            score_published: AtomicU64::new(NEVER),
        }
    }
}

impl EndpointMetrics {
    /// Whether the score gauge is due: never set, or last set `SCORE_PUBLISH_INTERVAL` or
    /// more before `now`.
    #[inline]
    pub(crate) fn score_due(&self, now: Duration) -> bool {
        match self.score_published.load(Ordering::Relaxed) {
            NEVER => true,
            last => {
                Duration::from_nanos(saturating_nanos(now).saturating_sub(last))
                    >= SCORE_PUBLISH_INTERVAL
            }
        }
    }

    /// Sets the score gauge to `cost`, at `now`.
    #[inline]
    pub(crate) fn publish_score(&self, cost: f64, now: Duration) {
        self.score_published
            .store(saturating_nanos(now).min(NEVER - 1), Ordering::Relaxed);
        self.score.set(cost);
    }
}
