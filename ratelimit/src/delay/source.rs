//! [`SchedulingDelay`], the signal's trait, and [`ManualDelay`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::saturating_nanos;

/// How late the runtime runs work that is ready, at an instant: read on every decision, so it
/// must be cheap (a few atomic loads).
pub trait SchedulingDelay: Send + Sync + 'static {
    /// The delay at `now`, an instant of the clock the source and the limiter share.
    fn delay(&self, now: Duration) -> Duration;
}

impl<D: SchedulingDelay + ?Sized> SchedulingDelay for Arc<D> {
    #[inline]
    fn delay(&self, now: Duration) -> Duration {
        (**self).delay(now)
    }
}

/// A delay set by hand, for tests and simulations; clones share the reading.
#[derive(Clone, Default)]
pub struct ManualDelay {
    nanos: Arc<AtomicU64>,
}

impl ManualDelay {
    /// A reading of zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reading.
    pub fn set(&self, delay: Duration) {
        self.nanos.store(saturating_nanos(delay), Ordering::Relaxed);
    }
}

impl SchedulingDelay for ManualDelay {
    #[inline]
    fn delay(&self, _now: Duration) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for ManualDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualDelay")
            .field(&Duration::from_nanos(self.nanos.load(Ordering::Relaxed)))
            .finish()
    }
}

/// Any function of the instant: a simulated runtime's queue, for example.
impl<F> SchedulingDelay for F
where
    F: Fn(Duration) -> Duration + Send + Sync + 'static,
{
    #[inline]
    fn delay(&self, now: Duration) -> Duration {
        self(now)
    }
}
