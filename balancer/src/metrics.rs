//! The balancer's metrics, registered once per balancer and once per endpoint.

use std::time::Duration;

use metrics::{Counter, Gauge, Label};

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
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub(crate) picks: Counter,
    score: Gauge,
    /// When `score` was last set.
    score_published: Option<Duration>,
}

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
            score_published: None,
        }
    }
}

impl EndpointMetrics {
    /// Whether the score gauge is due: never set, or last set `SCORE_PUBLISH_INTERVAL` or
    /// more before `now`.
    #[inline]
    pub(crate) fn score_due(&self, now: Duration) -> bool {
        self.score_published
            .is_none_or(|last| now.saturating_sub(last) >= SCORE_PUBLISH_INTERVAL)
    }

    /// Sets the score gauge to `cost`, at `now`.
    #[inline]
    pub(crate) fn publish_score(&mut self, cost: f64, now: Duration) {
        self.score_published = Some(now);
        self.score.set(cost);
    }
}
