use std::borrow::Cow;
use std::time::Duration;

use rampart_core::pick_hint::MAX_AVOIDED;
use rampart_core::{ConfigError, check};

/// How a [`Hedge`](crate::Hedge) layer hedges.
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `quantile` | 0.95 | 0.01 to 0.9999 |
/// | `min_delay` | 1 ms | at most 1 h |
/// | `max_hedges` | 1 (one copy besides the first) | 1 to 8 |
/// | `min_samples` | 100 | at least 1 |
/// | `window` | 10 s | `window / window_buckets` at least 1 ms |
/// | `window_buckets` | 10 | 2 to 600 |
/// | `max_pushback` | 30 s | above zero |
/// | `name` | `"default"` | not empty |
///
/// ```
/// use std::time::Duration;
/// use rampart_retry::HedgeConfig;
///
/// let config = HedgeConfig::default()
///     .with_quantile(0.99)
///     .with_min_delay(Duration::from_millis(5));
/// assert!(config.validate().is_ok());
/// let err = HedgeConfig::default().with_quantile(1.0).validate().unwrap_err();
/// assert_eq!(err.field(), "quantile");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeConfig {
    /// The quantile of recent latencies after which a copy is sent: at 0.95, about one
    /// request in twenty is hedged while the latencies hold ("The Tail at Scale").
    pub quantile: f64,
    /// The shortest hedge delay, whatever the quantile says.
    pub min_delay: Duration,
    /// The most copies sent besides the first, each a hedge delay after the one before.
    pub max_hedges: u32,
    /// The latencies the window's completed buckets must hold before the first hedge: a cold
    /// window sends no hedge.
    pub min_samples: u64,
    /// How far back latencies count: the delay is read from the last `window_buckets`
    /// completed buckets, which cover `window` (the current bucket, partial, is not read).
    pub window: Duration,
    /// The buckets `window` is divided into: the delay is recomputed once per bucket, from the
    /// completed ones.
    pub window_buckets: usize,
    /// The longest server pushback (`Retry-After`, `grpc-retry-pushback-ms`) that holds the
    /// layer's hedges: a copy answering "retry after" a wait no longer than this stops the
    /// layer's hedges for that wait; a longer one, like "don't retry", stops only its own
    /// request's (a broken or hostile server cannot turn hedging off for long).
    pub max_pushback: Duration,
    /// The `name` label of the layer's metrics.
    pub name: Cow<'static, str>,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            quantile: 0.95,
            min_delay: Duration::from_millis(1),
            max_hedges: 1,
            min_samples: 100,
            window: Duration::from_secs(10),
            window_buckets: 10,
            max_pushback: Duration::from_secs(30),
            name: Cow::Borrowed("default"),
        }
    }
}

impl HedgeConfig {
    /// This configuration hedging after the `quantile` of recent latencies.
    #[must_use]
    pub fn with_quantile(self, quantile: f64) -> Self {
        Self { quantile, ..self }
    }

    /// This configuration waiting at least `min_delay` before a hedge.
    #[must_use]
    pub fn with_min_delay(self, min_delay: Duration) -> Self {
        Self { min_delay, ..self }
    }

    /// This configuration sending at most `max_hedges` copies besides the first.
    #[must_use]
    pub fn with_max_hedges(self, max_hedges: u32) -> Self {
        Self { max_hedges, ..self }
    }

    /// This configuration hedging only once `min_samples` latencies are in the window.
    #[must_use]
    pub fn with_min_samples(self, min_samples: u64) -> Self {
        Self {
            min_samples,
            ..self
        }
    }

    /// This configuration counting latencies over `window`, in `buckets` buckets.
    #[must_use]
    pub fn with_window(self, window: Duration, buckets: usize) -> Self {
        Self {
            window,
            window_buckets: buckets,
            ..self
        }
    }

    /// This configuration holding hedges for server pushbacks up to `max_pushback`.
    #[must_use]
    pub fn with_max_pushback(self, max_pushback: Duration) -> Self {
        Self {
            max_pushback,
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

    /// The width of one bucket of the window.
    pub fn bucket(&self) -> Duration {
        let buckets = u32::try_from(self.window_buckets.max(1)).unwrap_or(u32::MAX);
        self.window / buckets
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `quantile` outside 0.01–0.9999 (or not finite), `min_delay` over an hour, `max_hedges`
    /// outside 1–8, `min_samples` of zero, `window_buckets` outside 2–600, a `window` whose
    /// buckets are shorter than 1 ms, a zero `max_pushback`, an empty name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::finite_in("quantile", self.quantile, 0.01..=0.9999)?;
        check::duration_in(
            "min_delay",
            self.min_delay,
            Duration::ZERO..=Duration::from_secs(3_600),
        )?;
        #[allow(clippy::cast_possible_truncation)]
        check::within("max_hedges", self.max_hedges, 1..=MAX_AVOIDED as u32)?;
        check::at_least("min_samples", self.min_samples, 1)?;
        check::within("window_buckets", self.window_buckets, 2..=600)?;
        if self.bucket() < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "window",
                "must give each of the window_buckets at least 1 ms",
            )
            .with_value(self.window));
        }
        check::positive("max_pushback", self.max_pushback)?;
        check::not_empty("name", &self.name)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_its_field() {
        let field = |config: HedgeConfig| config.validate().unwrap_err().field();
        let base = HedgeConfig::default;
        assert_eq!(field(base().with_quantile(f64::NAN)), "quantile");
        assert_eq!(field(base().with_quantile(0.0)), "quantile");
        assert_eq!(
            field(base().with_min_delay(Duration::from_secs(3_601))),
            "min_delay"
        );
        assert_eq!(field(base().with_max_hedges(0)), "max_hedges");
        assert_eq!(field(base().with_max_hedges(9)), "max_hedges");
        assert_eq!(field(base().with_min_samples(0)), "min_samples");
        assert_eq!(
            field(base().with_window(Duration::from_secs(1), 1)),
            "window_buckets"
        );
        assert_eq!(
            field(base().with_window(Duration::from_millis(5), 10)),
            "window"
        );
        assert_eq!(
            field(base().with_max_pushback(Duration::ZERO)),
            "max_pushback"
        );
        assert_eq!(field(base().with_name("")), "name");
        assert!(base().validate().is_ok());
        assert!(
            base()
                .with_max_hedges(8)
                .with_min_delay(Duration::ZERO)
                .validate()
                .is_ok()
        );
    }
}
