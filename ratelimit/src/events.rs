//! State transitions as `tracing` events (feature `tracing`): the limiter starting to shed and
//! stopping, each reported once per transition, never per request.
//!
//! Shedding starts with the first request shed and stops once a cooldown has passed without
//! one (checked once per bucket). Events carry the target `rampart::ratelimit` and the
//! limiter's `name` (and `key`, in a keyed group). Without the feature this is an empty type
//! and costs nothing.

// Without the feature the methods are empty and ignore `self`.
#![cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]

use rampart_core::CriticalityClass;
#[cfg(feature = "tracing")]
use rampart_core::Switch;

/// Reports a limiter's transitions.
#[derive(Debug)]
pub(crate) struct Transitions {
    #[cfg(feature = "tracing")]
    name: Box<str>,
    #[cfg(feature = "tracing")]
    key: Option<Box<str>>,
    #[cfg(feature = "tracing")]
    shedding: Switch,
}

impl Transitions {
    /// Reports the transitions of the limiter `name` (`key` in a group).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            name: name.into(),
            #[cfg(feature = "tracing")]
            key: key.map(Into::into),
            #[cfg(feature = "tracing")]
            shedding: Switch::new(false),
        }
    }

    /// A request was shed (or, in a dry run, would have been); `max_inflight` is the limit
    /// it exceeded.
    #[inline]
    pub(crate) fn shed(&self, max_inflight: impl FnOnce() -> u64) {
        #[cfg(feature = "tracing")]
        if self.shedding.turn_on() {
            tracing::warn!(
                target: "rampart::ratelimit",
                name = &*self.name,
                key = self.key.as_deref().unwrap_or(""),
                max_inflight = max_inflight(),
                "limiter started shedding: the server is overloaded"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = max_inflight;
    }

    /// The shedding threshold moved from the class `from` to `to` (`None`: every class's
    /// demand fits under the limit); reported while the limiter sheds (`cooling_down()`).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn threshold_moved(
        &self,
        from: Option<CriticalityClass>,
        to: Option<CriticalityClass>,
        cooling_down: impl FnOnce() -> bool,
    ) {
        #[cfg(feature = "tracing")]
        if self.shedding.is_on() && cooling_down() {
            let name =
                |class: Option<CriticalityClass>| class.map_or("none", CriticalityClass::as_str);
            tracing::info!(
                target: "rampart::ratelimit",
                name = &*self.name,
                key = self.key.as_deref().unwrap_or(""),
                from = name(from),
                to = name(to),
                "limiter's shedding threshold moved between criticality classes"
            );
        }
    }

    /// A new bucket began; `cooling_down` tells whether the last shed is within the cooldown.
    #[inline]
    pub(crate) fn bucket_began(&self, cooling_down: impl FnOnce() -> bool) {
        #[cfg(feature = "tracing")]
        if self.shedding.is_on() && !cooling_down() && self.shedding.turn_off() {
            tracing::info!(
                target: "rampart::ratelimit",
                name = &*self.name,
                key = self.key.as_deref().unwrap_or(""),
                "limiter stopped shedding"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = cooling_down;
    }
}

/// Says whether a limiter built from a configuration with a `max_delay` found a runtime whose
/// scheduling delay it can measure.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn delay_probe(name: &str, started: bool) {
    #[cfg(feature = "tracing")]
    if started {
        tracing::info!(
            target: "rampart::ratelimit",
            name,
            "limiter reads the tokio runtime's scheduling delay"
        );
    } else {
        tracing::warn!(
            target: "rampart::ratelimit",
            name,
            "limiter built outside a tokio runtime (or without the `tokio` feature): \
             it cannot see requests queued in the runtime, and sheds on its other signals only"
        );
    }
}
