//! State transitions of a hedge layer as `tracing` events (feature `tracing`), each reported
//! once per transition, never per request: hedging starting (the window warm enough to give a
//! delay) and stopping (cold again), and the budget refusing hedges and granting them again.
//!
//! Events carry the target `rampart::retry` and the layer's `name`. Without the feature this is
//! an empty type and costs nothing.

// Without the feature the methods are empty and ignore `self`.
#![cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]

use std::time::Duration;

#[cfg(feature = "tracing")]
use rampart_core::Switch;

/// Reports a hedge layer's transitions.
#[derive(Debug)]
pub(crate) struct HedgeTransitions {
    #[cfg(feature = "tracing")]
    name: Box<str>,
    #[cfg(feature = "tracing")]
    warm: Switch,
    #[cfg(feature = "tracing")]
    dry: Switch,
}

impl HedgeTransitions {
    /// Reports the transitions of the hedge layer `name`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(name: &str) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            name: name.into(),
            #[cfg(feature = "tracing")]
            warm: Switch::new(false),
            #[cfg(feature = "tracing")]
            dry: Switch::new(false),
        }
    }

    /// The delay of a new bucket: `None` while the window is cold.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn delay(&self, delay: Option<Duration>) {
        #[cfg(feature = "tracing")]
        match delay {
            Some(delay) if self.warm.turn_on() => tracing::info!(
                target: "rampart::retry",
                name = &*self.name,
                delay_us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                "hedging started: enough latencies observed for a hedge delay"
            ),
            None if self.warm.turn_off() => tracing::info!(
                target: "rampart::retry",
                name = &*self.name,
                "hedging stopped: too few recent latencies for a hedge delay"
            ),
            _ => {}
        }
    }

    /// The budget refused a hedge.
    pub(crate) fn refused(&self) {
        #[cfg(feature = "tracing")]
        if self.dry.turn_on() {
            tracing::warn!(
                target: "rampart::retry",
                name = &*self.name,
                "hedge budget exhausted: slow requests are no longer hedged"
            );
        }
    }

    /// The budget granted a hedge.
    #[inline]
    pub(crate) fn granted(&self) {
        #[cfg(feature = "tracing")]
        if self.dry.turn_off() {
            tracing::info!(
                target: "rampart::retry",
                name = &*self.name,
                "hedge budget recovered"
            );
        }
    }
}
