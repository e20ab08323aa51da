//! State transitions as `tracing` events (feature `tracing`): a retry budget running dry (the
//! first retry it refuses) and recovering (the first retry it grants after that), each reported
//! once per transition, never per request.
//!
//! Events carry the target `rampart::retry` and the layer's `name`. Without the feature this is
//! an empty type and costs nothing.

// Without the feature the methods are empty and ignore `self`.
#![cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]

#[cfg(feature = "tracing")]
use rampart_core::Switch;

/// Reports a retry layer's budget transitions.
#[derive(Debug)]
pub(crate) struct Transitions {
    #[cfg(feature = "tracing")]
    name: Box<str>,
    #[cfg(feature = "tracing")]
    dry: Switch,
}

impl Transitions {
    /// Reports the transitions of the retry layer `name`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(name: &str) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            name: name.into(),
            #[cfg(feature = "tracing")]
            dry: Switch::new(false),
        }
    }

    /// The budget refused a retry.
    #[inline]
    pub(crate) fn refused(&self) {
        #[cfg(feature = "tracing")]
        if self.dry.turn_on() {
            tracing::warn!(
                target: "rampart::retry",
                name = &*self.name,
                "retry budget exhausted: failed requests are no longer retried"
            );
        }
    }

    /// The budget granted a retry.
    #[inline]
    pub(crate) fn granted(&self) {
        #[cfg(feature = "tracing")]
        if self.dry.turn_off() {
            tracing::info!(
                target: "rampart::retry",
                name = &*self.name,
                "retry budget recovered"
            );
        }
    }
}
