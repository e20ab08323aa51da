//! The limiter's metrics, registered once when it is built.
//!
//! The handles bind to the recorder installed when the limiter is built: install yours first.
//! The first request of each bucket sets the gauges; the shared background refresher
//! (`rampart_core::gauges`) sets them too, once a second, so that they follow the limiter's
//! state when no request arrives.

use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Label};

use crate::events::Transitions;

/// `rampart_ratelimit_requests_total{name, outcome}`, `rampart_ratelimit_inflight{name}`,
/// `rampart_ratelimit_max_inflight{name}` and `rampart_ratelimit_cpu_ratio{name}`.
#[derive(Debug)]
pub(crate) struct LimiterMetrics {
    admitted: Counter,
    shed: Counter,
    pub(crate) inflight: Gauge,
    pub(crate) max_inflight: Gauge,
    pub(crate) cpu: Gauge,
    /// The runtime's scheduling delay, in seconds (set only by a limiter that reads one).
    pub(crate) delay: Gauge,
    pub(crate) transitions: Transitions,
    /// Whether the gauges still await their registration with the background refresher: set
    /// for reporting handles until registered, never for no-op ones.
    unrefreshed: AtomicBool,
}

impl LimiterMetrics {
    /// Registers the metrics of the limiter `name`; a member of a keyed group also carries its
    /// `key` label.
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        let mut labels = vec![Label::new("name", name.to_owned())];
        if let Some(key) = key {
            labels.push(Label::new("key", key.to_owned()));
        }
        let requests = |outcome: &'static str| {
            let mut labels = labels.clone();
            labels.push(Label::new("outcome", outcome));
            metrics::counter!("rampart_ratelimit_requests_total", labels)
        };
        Self {
            admitted: requests("admitted"),
            shed: requests("shed"),
            inflight: metrics::gauge!("rampart_ratelimit_inflight", labels.clone()),
            max_inflight: metrics::gauge!("rampart_ratelimit_max_inflight", labels.clone()),
            cpu: metrics::gauge!("rampart_ratelimit_cpu_ratio", labels.clone()),
            delay: metrics::gauge!("rampart_ratelimit_delay_seconds", labels),
            transitions: Transitions::new(name, key),
            unrefreshed: AtomicBool::new(true),
        }
    }

    /// Handles that record nothing.
    pub(crate) fn noop() -> Self {
        Self {
            admitted: Counter::noop(),
            shed: Counter::noop(),
            inflight: Gauge::noop(),
            max_inflight: Gauge::noop(),
            cpu: Gauge::noop(),
            delay: Gauge::noop(),
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
    pub(crate) fn admitted(&self) {
        self.admitted.increment(1);
    }

    #[inline]
    pub(crate) fn shed(&self) {
        self.shed.increment(1);
    }
}
