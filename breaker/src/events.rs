//! State transitions as `tracing` events (feature `tracing`): the breaker starting and stopping
//! throttling, each reported once per transition, never per request.
//!
//! Events carry the target `rampart::breaker` and the breaker's `name` (and `key`, in a keyed
//! group). Without the feature this is an empty type and costs nothing. The breaker holds it
//! beside its metrics (`metrics.rs`), which tell it when the drop probability changed.

// Without the feature the methods are empty and ignore `self`.
#![cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]

/// Reports a breaker's transitions.
#[derive(Debug)]
pub(crate) struct Transitions {
    /// The breaker's `name`, and its `key` in a group.
    #[cfg(feature = "tracing")]
    labels: (Box<str>, Option<Box<str>>),
}

impl Transitions {
    /// Reports the transitions of the breaker `name` (`key` in a group).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            labels: (name.into(), key.map(Into::into)),
        }
    }

    /// The drop probability changed from `before` to `after`: reports a start or a stop of
    /// throttling. Called once per change of the probability, by the thread that made it.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    #[inline]
    pub(crate) fn probability_changed(&self, before: f64, after: f64) {
        #[cfg(feature = "tracing")]
        {
            let (name, key) = &self.labels;
            let key = key.as_deref().unwrap_or("");
            match (before > 0.0, after > 0.0) {
                (false, true) => tracing::warn!(
                    target: "rampart::breaker",
                    name = &**name,
                    key,
                    drop_probability = after,
                    "breaker started throttling: the backend accepts too few requests"
                ),
                (true, false) => tracing::info!(
                    target: "rampart::breaker",
                    name = &**name,
                    key,
                    "breaker stopped throttling"
                ),
                _ => {}
            }
        }
    }
}
