//! [`BreakerConfig`] and [`Rejections`]: what a breaker is built from, validated field by
//! field.

use std::borrow::Cow;
use std::time::Duration;

use rampart_core::{
    Clock, ConfigError, Outcome, SystemClock, ValidWindowConfig, WindowConfig, check,
};

use crate::SreBreaker;

/// How much the calls a breaker rejected itself count as requests in its decision.
///
/// The decision compares `requests` with `k × accepts`, where
/// `requests = admitted + w × rejected`. The weight `w` is what the three modes differ in;
/// the crate documentation has their measured behaviour in an outage and under overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rejections {
    /// `w = 1`: the SRE book's and Kratos's rule: every call the application attempts is a
    /// request, rejected or not. The strongest protection, but after a total outage accepts
    /// can only grow by a factor of e every `window / k` from the trickle that gets through, so
    /// full traffic returns many seconds after the backend does.
    Sre,
    /// `w = 0`: go-zero's variant: only admitted calls count. Recovers within about a second,
    /// but a dead backend keeps receiving about `sqrt(rate / window)` calls per second and an
    /// overloaded one several times its capacity.
    Ignore,
    /// `w = clamp((1 − s) / (1 − 1/k), 0, 1)`, with `s = accepts / admitted` the success ratio of
    /// the newest calls that got through: those of the current bucket and the last completed
    /// one (the whole window if they hold none; `w = 1` when nothing got through). While
    /// admitted calls fail at the rate the throttling settles at (`s ≤ 1/k`) it is exactly
    /// `Sre`; as soon as they succeed, rejections stop counting and traffic returns.
    ///
    /// While throttling, the first call of each bucket that the draw would reject goes through
    /// instead, as a probe (3.3 per second with the default 300 ms buckets): a recovered backend
    /// is noticed within a bucket, instead of after waiting for a random call to slip through
    /// (about one per window at full throttle). The default.
    #[default]
    Adaptive,
}

/// The configuration of an [`SreBreaker`].
///
/// The breaker rejects a call locally with probability
/// `max(0, (requests − k·accepts) / (requests + 1))` over the last `window`, once at least
/// `min_requests` calls were seen in it. `Default` gives the SRE book's settings:
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `k` | 2.0 | finite, from 1 to 1 000 |
/// | `min_requests` | 20 | any |
/// | `window` | 3 s | at least 1 µs per bucket |
/// | `buckets` | 10 | 1 to 65 536 |
/// | `rejections` | [`Rejections::Adaptive`] | |
/// | `enforce` | true | |
/// | `on_cancel` | [`Outcome::Ignore`] | |
/// | `seed` | none (entropy) | |
/// | `name` | `"default"` | not empty |
///
/// ```
/// use std::time::Duration;
/// use rampart_breaker::{BreakerConfig, Rejections};
///
/// let breaker = BreakerConfig::default()
///     .with_k(1.5)
///     .with_window(Duration::from_secs(10), 20)
///     .with_rejections(Rejections::Sre)
///     .with_name("payments")
///     .build()?;
/// assert_eq!(breaker.config().k, 1.5);
///
/// let err = BreakerConfig::default().with_k(0.5).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid `k`: must be finite and in [1, 1000] (got 0.5)");
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// How many requests per accepted one the backend may see before throttling starts: 2
    /// lets about one failing call through per successful one. Lower throttles harder.
    pub k: f64,
    /// Calls (admitted plus rejected) the window must hold before the breaker rejects
    /// anything: a handful of failures after a quiet spell is not an outage.
    pub min_requests: u64,
    /// The span of history the decision looks at.
    pub window: Duration,
    /// The number of buckets `window` is cut into: the history moves forward one bucket at a
    /// time.
    pub buckets: usize,
    /// How much locally rejected calls count: see [`Rejections`].
    pub rejections: Rejections,
    /// `false` for a dry run: every decision is computed and reported (metrics, snapshot)
    /// but no call is rejected.
    pub enforce: bool,
    /// How a call whose response future was dropped before completing counts. `Ignore` by
    /// default: a client that gave up says nothing about the backend.
    pub on_cancel: Outcome,
    /// Seed of the rejection draws, for reproducible tests; `None` seeds from entropy. A seeded
    /// breaker also reads its window's current bucket afresh at every decision (see
    /// [`SreBreaker`](crate::SreBreaker)'s "Cost"): exact and reproducible, but slower when
    /// the cores of a server share it, so leave it unset in production.
    pub seed: Option<u64>,
    /// The `name` label of this breaker's metrics.
    pub name: Cow<'static, str>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            k: 2.0,
            min_requests: 20,
            window: Duration::from_secs(3),
            buckets: 10,
            rejections: Rejections::Adaptive,
            enforce: true,
            on_cancel: Outcome::Ignore,
            seed: None,
            name: Cow::Borrowed("default"),
        }
    }
}

impl BreakerConfig {
    /// This configuration with the given `k`.
    #[must_use]
    pub fn with_k(self, k: f64) -> Self {
        Self { k, ..self }
    }

    /// This configuration with the given minimum number of calls.
    #[must_use]
    pub fn with_min_requests(self, min_requests: u64) -> Self {
        Self {
            min_requests,
            ..self
        }
    }

    /// This configuration with a `window` cut into `buckets` buckets.
    #[must_use]
    pub fn with_window(self, window: Duration, buckets: usize) -> Self {
        Self {
            window,
            buckets,
            ..self
        }
    }

    /// This configuration with the given rejection weighting.
    #[must_use]
    pub fn with_rejections(self, rejections: Rejections) -> Self {
        Self { rejections, ..self }
    }

    /// This configuration as a dry run (`enforce = false`) or not.
    #[must_use]
    pub fn with_enforce(self, enforce: bool) -> Self {
        Self { enforce, ..self }
    }

    /// This configuration with cancelled calls counted as `on_cancel`.
    #[must_use]
    pub fn with_on_cancel(self, on_cancel: Outcome) -> Self {
        Self { on_cancel, ..self }
    }

    /// This configuration with a fixed seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// This configuration with the given metrics name.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// The shape of the breaker's rolling window.
    pub fn window_config(&self) -> WindowConfig {
        WindowConfig::spanning(self.window, self.buckets)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `k` not finite or outside [1, 1000]; a zero `window`; `buckets` zero or above 65 536; a
    /// bucket (`window / buckets`) shorter than 1 µs; an empty `name`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validated_window().map(drop)
    }

    /// Checks every field, as [`validate`](Self::validate) does, and returns the window's
    /// shape, from which breakers of this configuration are built without failing.
    pub(crate) fn validated_window(&self) -> Result<ValidWindowConfig, ConfigError> {
        check::finite_in("k", self.k, 1.0..=1000.0)?;
        let window = WindowConfig::spanning_checked(self.window, self.buckets)?.validated()?;
        check::not_empty("name", &self.name)?;
        Ok(window)
    }

    /// Builds a breaker that reads [`SystemClock`].
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build(self) -> Result<SreBreaker, ConfigError> {
        self.build_with(SystemClock::new())
    }

    /// Builds a breaker that reads `clock`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build_with<C: Clock>(self, clock: C) -> Result<SreBreaker<C>, ConfigError> {
        SreBreaker::new(self, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_sre_books() {
        let config = BreakerConfig::default();
        assert_eq!(config.k, 2.0);
        assert_eq!(config.min_requests, 20);
        assert_eq!(
            config.window_config(),
            WindowConfig::new(10, Duration::from_millis(300))
        );
        assert_eq!(config.rejections, Rejections::Adaptive);
        assert!(config.enforce);
        assert_eq!(config.on_cancel, Outcome::Ignore);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = BreakerConfig::default();
        let cases = [
            (base.clone().with_k(f64::NAN), "k"),
            (base.clone().with_k(0.99), "k"),
            (base.clone().with_k(f64::INFINITY), "k"),
            (base.clone().with_window(Duration::ZERO, 10), "window"),
            (
                base.clone().with_window(Duration::from_secs(1), 0),
                "buckets",
            ),
            (
                base.clone().with_window(Duration::from_secs(1), 100_000),
                "buckets",
            ),
            (
                base.clone().with_window(Duration::from_nanos(500), 10),
                "window",
            ),
            (base.clone().with_name(""), "name"),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field(), field, "{config:?}: {err}");
        }
        assert!(base.clone().with_k(1.0).validate().is_ok());
        assert!(base.with_min_requests(0).validate().is_ok());
    }
}
