//! The breaker's metrics, registered once when it is built.
//!
//! The handles bind to the recorder installed when the breaker is built: install yours first.
//! Decisions set the drop-probability gauge; the shared background refresher
//! (`rampart_core::gauges`) sets it too, once a second, so that it follows the window when no
//! call arrives. The `tracing` events of the same changes stand beside these, in `events.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge};
use rampart_core::{CriticalityClass, Switch};

/// The `outcome` labels of `rampart_breaker_requests_total`, in the order of
/// [`BreakerMetrics::requests`]' inner arrays.
const OUTCOMES: [&str; 3] = ["success", "failure", "rejected"];
const SUCCESS: usize = 0;
const FAILURE: usize = 1;
const REJECTED: usize = 2;

/// `rampart_breaker_requests_total{name, outcome, criticality}` and
/// `rampart_breaker_drop_probability{name}`.
#[derive(Debug)]
pub(crate) struct BreakerMetrics {
    /// Per criticality class (by [`CriticalityClass::index`]), per outcome (by [`OUTCOMES`]):
    /// every handle registered up front, so that counting is an index, never a lookup.
    requests: [[Counter; 3]; 4],
    drop_probability: Gauge,
    /// The last probability set on the gauge, as `f64` bits, so that the gauge is only
    /// touched when the probability changes.
    published: AtomicU64,
    /// Whether the gauge still awaits its registration with the background refresher: set
    /// until registered.
    unrefreshed: Switch,
}

impl BreakerMetrics {
    /// Registers the metrics of the breaker `name`; a member of a keyed group also carries
    /// its `key` label.
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        let mut labels = vec![metrics::Label::new("name", name.to_owned())];
        if let Some(key) = key {
            labels.push(metrics::Label::new("key", key.to_owned()));
        }
        let requests = |class: CriticalityClass| {
            OUTCOMES.map(|outcome| {
                let mut labels = labels.clone();
                labels.push(metrics::Label::new("outcome", outcome));
                labels.push(metrics::Label::new("criticality", class.as_str()));
                metrics::counter!("rampart_breaker_requests_total", labels)
            })
        };
        let metrics = Self {
            requests: CriticalityClass::ALL.map(requests),
            drop_probability: metrics::gauge!("rampart_breaker_drop_probability", labels.clone()),
            published: AtomicU64::new(0.0_f64.to_bits()),
            unrefreshed: Switch::new(true),
        };
        metrics.drop_probability.set(0.0);
        metrics
    }

    /// Whether the caller is the one to register these metrics with the background refresher:
    /// true once.
    pub(crate) fn claim_refresh(&self) -> bool {
        self.unrefreshed.turn_off()
    }

    #[inline]
    pub(crate) fn success(&self, class: CriticalityClass) {
        self.requests[class.index()][SUCCESS].increment(1);
    }

    #[inline]
    pub(crate) fn failure(&self, class: CriticalityClass) {
        self.requests[class.index()][FAILURE].increment(1);
    }

    #[inline]
    pub(crate) fn rejected(&self, class: CriticalityClass) {
        self.requests[class.index()][REJECTED].increment(1);
    }

    /// Sets the drop-probability gauge to `probability` if it changed; returns the probability
    /// it replaced, to exactly one of the threads setting the same change (so that the change
    /// is reported once), and `None` when nothing changed.
    #[inline]
    pub(crate) fn drop_probability(&self, probability: f64) -> Option<f64> {
        // A read in the steady state, so that threads do not fight over the cache line.
        let bits = probability.to_bits();
        if self.published.load(Ordering::Relaxed) == bits {
            return None;
        }
        // The swap tells exactly one thread what the probability was before it.
        let before = self.published.swap(bits, Ordering::Relaxed);
        if before == bits {
            return None;
        }
        self.drop_probability.set(probability);
        Some(f64::from_bits(before))
    }
}

/// # Gauges while idle
impl<C: rampart_core::Clock> crate::SreBreaker<C> {
    /// Sets the drop-probability gauge to the probability at the clock's current instant,
    /// read from the window without changing it (as [`snapshot`](Self::snapshot) does).
    ///
    /// The background refresher calls it once a second for every breaker registered with
    /// [`keep_gauges_current`](Self::keep_gauges_current); call it yourself to publish at
    /// once (a test on a `ManualClock`, say).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_breaker::{BreakerConfig, BreakerState};
    /// use rampart_core::{ManualClock, Outcome};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = BreakerConfig::default().build_with(clock.clone())?;
    /// for _ in 0..100 {
    ///     breaker.record(Outcome::Failure);
    /// }
    /// // A decision sets the gauge: 100/101.
    /// assert!(matches!(breaker.state(), BreakerState::Throttling { .. }));
    /// clock.advance(Duration::from_secs(3)); // then no call for a whole window
    /// breaker.publish_gauges(); // the gauge reads 0
    /// assert_eq!(breaker.snapshot().drop_probability, 0.0);
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    pub fn publish_gauges(&self) {
        self.publish(self.snapshot().drop_probability);
    }

    /// Registers this breaker with the shared background refresher
    /// ([`rampart_core::gauges`]), which then calls [`publish_gauges`](Self::publish_gauges)
    /// once a second for as long as the breaker lives (it holds a weak reference).
    ///
    /// [`BreakerLayer`](crate::BreakerLayer) and [`BreakerGroup`](crate::BreakerGroup) call it
    /// for their breakers; call it for a breaker you share in an `Arc` and drive yourself. A
    /// breaker is registered once however often this is called.
    pub fn keep_gauges_current(self: &std::sync::Arc<Self>) {
        if self.metrics.claim_refresh() {
            rampart_core::gauges::keep_current(self);
        }
    }
}

impl<C: rampart_core::Clock> rampart_core::gauges::PublishGauges for crate::SreBreaker<C> {
    fn publish_gauges(&self) {
        crate::SreBreaker::publish_gauges(self);
    }
}
