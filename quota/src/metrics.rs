//! The quota's metrics, registered once when its group is built.
//!
//! The handles bind to the recorder installed when the group is built: install yours first.
//! No metric carries a request's key: keys come from requests, and a label per key would let
//! them grow the metrics backend without bound. The `tracing` events of the fallback starting
//! and ending stand beside these, in `events.rs`.

use metrics::{Counter, Gauge};

/// `rampart_quota_requests_total{name, outcome}`, `rampart_quota_leases_total{name}`,
/// `rampart_quota_leased_tokens_total{name}`, `rampart_quota_redis_errors_total{name, kind}`
/// and `rampart_quota_fallback_active{name}`.
#[derive(Debug)]
pub(crate) struct QuotaMetrics {
    leased: Counter,
    local: Counter,
    open: Counter,
    refused: Counter,
    leases: Counter,
    leased_tokens: Counter,
    timeouts: Counter,
    errors: Counter,
    fallback_active: Gauge,
}

impl QuotaMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let labels = vec![metrics::Label::new("name", name.to_owned())];
        let with = |key: &'static str, value: &'static str| {
            let mut labels = labels.clone();
            labels.push(metrics::Label::new(key, value));
            labels
        };
        let requests =
            |outcome| metrics::counter!("rampart_quota_requests_total", with("outcome", outcome));
        let errors =
            |kind| metrics::counter!("rampart_quota_redis_errors_total", with("kind", kind));
        let metrics = Self {
            leased: requests("leased"),
            local: requests("local"),
            open: requests("open"),
            refused: requests("refused"),
            leases: metrics::counter!("rampart_quota_leases_total", labels.clone()),
            leased_tokens: metrics::counter!("rampart_quota_leased_tokens_total", labels.clone()),
            timeouts: errors("timeout"),
            errors: errors("error"),
            fallback_active: metrics::gauge!("rampart_quota_fallback_active", labels),
        };
        metrics.fallback_active.set(0.0);
        metrics
    }

    #[inline]
    pub(crate) fn leased(&self) {
        self.leased.increment(1);
    }

    #[inline]
    pub(crate) fn local(&self) {
        self.local.increment(1);
    }

    #[inline]
    pub(crate) fn open(&self) {
        self.open.increment(1);
    }

    #[inline]
    pub(crate) fn refused(&self) {
        self.refused.increment(1);
    }

    pub(crate) fn lease(&self, tokens: u64) {
        self.leases.increment(1);
        self.leased_tokens.increment(tokens);
    }

    pub(crate) fn redis_error(&self, timeout: bool) {
        if timeout {
            &self.timeouts
        } else {
            &self.errors
        }
        .increment(1);
    }

    pub(crate) fn fallback_active(&self, active: bool) {
        self.fallback_active.set(if active { 1.0 } else { 0.0 });
    }
}
