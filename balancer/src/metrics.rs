//! The balancer's metrics, registered once per balancer and once per endpoint.

use metrics::{Counter, Gauge, Label};

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
    pub(crate) score: Gauge,
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
        }
    }
}
