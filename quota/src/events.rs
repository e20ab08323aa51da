//! Redis going away and coming back as `tracing` events (feature `tracing`): the fallback
//! starting and ending, each reported once per transition, never per request.
//!
//! Events carry the target `rampart::quota` and the quota's `name`. Without the feature this is
//! an empty type and costs nothing. The group holds it beside its metrics (`metrics.rs`).

// Without the feature the methods are empty and ignore `self`.
#![cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]

/// Reports a quota's transitions.
#[derive(Debug)]
pub(crate) struct Transitions {
    #[cfg(feature = "tracing")]
    name: Box<str>,
}

impl Transitions {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(name: &str) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            name: name.into(),
        }
    }

    /// A Redis call failed and the fallback took over; the next call is in `retry_in`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn fallback_started(
        &self,
        error: &dyn std::fmt::Display,
        retry_in: std::time::Duration,
    ) {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "rampart::quota",
            name = &*self.name,
            %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "quota fallback started: Redis cannot be reached"
        );
    }

    /// Redis answered again: leases again, the fallback over.
    pub(crate) fn fallback_ended(&self) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "rampart::quota",
            name = &*self.name,
            "quota fallback ended: Redis answers again"
        );
    }
}
