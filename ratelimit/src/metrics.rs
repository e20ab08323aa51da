//! The limiter's metrics, registered once when it is built, and the [`BbrLimiter`] methods
//! that keep its gauges current while no request arrives.
//!
//! The handles bind to the recorder installed when the limiter is built: install yours first.
//! The first request of each bucket sets the gauges; the shared background refresher
//! (`rampart_core::gauges`) sets them too, once a second, so that they follow the limiter's
//! state when no request arrives.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label};
use rampart_core::{Clock, CriticalityClass, Switch};

use crate::{BbrLimiter, CpuUsage};

/// `rampart_ratelimit_requests_total{name, outcome, criticality}` (a handle per outcome and
/// class), `rampart_ratelimit_deadline_remaining_seconds{name}`,
/// `rampart_ratelimit_inflight{name}`,
/// `rampart_ratelimit_max_inflight{name}` and `rampart_ratelimit_cpu_ratio{name}`.
#[derive(Debug)]
pub(crate) struct LimiterMetrics {
    /// Per class, in [`CriticalityClass::index`] order.
    admitted: [Counter; 4],
    shed: [Counter; 4],
    /// Refused at their deadline, or before it as unable to finish in time.
    expired: [Counter; 4],
    would_miss: [Counter; 4],
    /// The time requests with a deadline had left when they arrived.
    remaining: Histogram,
    inflight: Gauge,
    max_inflight: Gauge,
    cpu: Gauge,
    /// The runtime's scheduling delay, in seconds (set only by a limiter that reads one).
    delay: Gauge,
    /// Whether the gauges still await their registration with the background refresher.
    unrefreshed: Switch,
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
            CriticalityClass::ALL.map(|class| {
                let mut labels = labels.clone();
                labels.push(Label::new("outcome", outcome));
                labels.push(Label::new("criticality", class.as_str()));
                metrics::counter!("rampart_ratelimit_requests_total", labels)
            })
        };
        Self {
            admitted: requests("admitted"),
            shed: requests("shed"),
            expired: requests("expired"),
            would_miss: requests("would_miss"),
            remaining: metrics::histogram!(
                "rampart_ratelimit_deadline_remaining_seconds",
                labels.clone()
            ),
            inflight: metrics::gauge!("rampart_ratelimit_inflight", labels.clone()),
            max_inflight: metrics::gauge!("rampart_ratelimit_max_inflight", labels.clone()),
            cpu: metrics::gauge!("rampart_ratelimit_cpu_ratio", labels.clone()),
            delay: metrics::gauge!("rampart_ratelimit_delay_seconds", labels),
            unrefreshed: Switch::new(true),
        }
    }

    /// Whether the caller is the one to register these metrics with the background refresher:
    /// true once.
    pub(crate) fn claim_refresh(&self) -> bool {
        self.unrefreshed.turn_off()
    }

    #[inline]
    pub(crate) fn admitted(&self, class: CriticalityClass) {
        self.admitted[class.index()].increment(1);
    }

    #[inline]
    pub(crate) fn shed(&self, class: CriticalityClass) {
        self.shed[class.index()].increment(1);
    }

    /// A request arrived after its deadline.
    pub(crate) fn expired(&self, class: CriticalityClass) {
        self.expired[class.index()].increment(1);
    }

    /// A request was refused as unable to finish before its deadline.
    pub(crate) fn would_miss(&self, class: CriticalityClass) {
        self.would_miss[class.index()].increment(1);
    }

    /// A request with a deadline arrived with `remaining` left.
    pub(crate) fn remaining(&self, remaining: Duration) {
        self.remaining.record(remaining.as_secs_f64());
    }

    /// Sets the gauges: `delay` only for a limiter that reads one.
    #[inline]
    pub(crate) fn publish(
        &self,
        inflight: u64,
        cpu: f64,
        max_inflight: u64,
        delay: Option<Duration>,
    ) {
        self.inflight.set(inflight as f64);
        self.cpu.set(cpu);
        self.max_inflight.set(max_inflight as f64);
        if let Some(delay) = delay {
            self.delay.set(delay.as_secs_f64());
        }
    }

    /// A handle to `rampart_ratelimit_inflight`, for the ledger to set to 0 when the last
    /// request in flight ends.
    pub(crate) fn inflight_gauge(&self) -> Gauge {
        self.inflight.clone()
    }
}

/// # Gauges on an idle process
///
/// The first request of each bucket sets the limiter's gauges; without requests they would
/// keep the values of the last busy bucket. These methods set them from the limiter's state at
/// the current instant.
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// Sets `rampart_ratelimit_inflight`, `rampart_ratelimit_max_inflight` and
    /// `rampart_ratelimit_cpu_ratio` to their values at the clock's current instant, read
    /// without changing the window or the cached statistics (as
    /// [`snapshot`](Self::snapshot) does).
    ///
    /// The background refresher calls it once a second for every limiter registered with
    /// [`keep_gauges_current`](Self::keep_gauges_current); call it yourself to publish at
    /// once (a test on a `ManualClock`, say).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_core::ManualClock;
    /// use rampart_ratelimit::{BbrConfig, ManualCpu};
    ///
    /// let clock = ManualClock::new();
    /// let cpu = ManualCpu::new(0.9);
    /// let limiter = BbrConfig::default().build_with(clock.clone(), cpu.clone())?;
    /// let permit = limiter.acquire()?; // the first request of the bucket sets the gauges
    /// cpu.set(0.1);
    /// clock.advance(Duration::from_secs(10)); // then no request for a whole window
    /// limiter.publish_gauges(); // the gauges read what a snapshot does:
    /// let now = limiter.snapshot();
    /// assert_eq!((now.inflight, now.max_inflight, now.cpu), (1, 0, 0.1));
    /// # drop(permit);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish_gauges(&self) {
        let now = self.instant();
        let max_inflight = self.max_inflight_at(now);
        self.report(now, self.inflight(), || max_inflight);
    }

    /// Registers this limiter with the shared background refresher
    /// ([`rampart_core::gauges`]), which then calls [`publish_gauges`](Self::publish_gauges)
    /// once a second for as long as the limiter lives (it holds a weak reference).
    ///
    /// [`BbrLimitLayer`](crate::BbrLimitLayer) and [`BbrGroup`](crate::BbrGroup)
    /// call it for their limiters; call it for a limiter you share in an `Arc` and drive
    /// yourself. A limiter is registered once however often this is called.
    pub fn keep_gauges_current(self: &Arc<Self>) {
        if self.metrics().claim_refresh() {
            rampart_core::gauges::keep_current(self);
        }
    }
}

impl<C: Clock, U: CpuUsage> rampart_core::gauges::PublishGauges for BbrLimiter<C, U> {
    fn publish_gauges(&self) {
        BbrLimiter::publish_gauges(self);
    }
}
