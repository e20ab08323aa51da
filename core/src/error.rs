//! [`ConfigError`]: the one error every rampart `build()` returns.

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A configuration value was rejected when the configuration was built.
///
/// It names the field and the rule it broke, and shows the rejected value:
///
/// ```
/// use std::time::Duration;
/// use rampart_core::WindowConfig;
///
/// let err = WindowConfig::new(0, Duration::from_millis(100)).validate().unwrap_err();
/// assert_eq!(err.field(), "buckets");
/// assert_eq!(err.to_string(), "invalid `buckets`: must be at least 1 (got 0)");
/// ```
///
/// Every rampart crate validates its whole configuration in `build()` and returns this error
/// instead of panicking, here or later on the request path. Layer crates build it with
/// [`ConfigError::new`] and the checks in [`check`](crate::check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    rule: Cow<'static, str>,
    value: Option<String>,
}

impl ConfigError {
    /// An error for `field`, which must satisfy `rule` (a phrase such as "must be at least 1").
    pub fn new(field: &'static str, rule: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field,
            rule: rule.into(),
            value: None,
        }
    }

    /// Attaches the rejected value, shown with its `Debug` form.
    #[must_use]
    pub fn with_value(mut self, value: impl fmt::Debug) -> Self {
        self.value = Some(format!("{value:?}"));
        self
    }

    /// The name of the configuration field that was rejected, as spelled in the config struct.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rule the value broke, such as "must be at least 1".
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The rejected value in its `Debug` form, when the error carries one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.rule)?;
        if let Some(value) = &self.value {
            write!(f, " (got {value})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Checks shared by every configuration's validation; each returns the value it accepted.
///
/// ```
/// use std::time::Duration;
/// use rampart_core::check;
///
/// assert_eq!(check::finite_in("ratio", 0.2, 0.0..=1.0), Ok(0.2));
/// let err = check::finite_in("ratio", f64::NAN, 0.0..=1.0).unwrap_err();
/// assert_eq!(err.to_string(), "invalid `ratio`: must be finite and in [0, 1] (got NaN)");
/// assert!(check::positive("ttl", Duration::ZERO).is_err());
/// ```
pub mod check {
    use super::{ConfigError, Duration, RangeInclusive};

    /// `value` must be at least `min`.
    ///
    /// # Errors
    ///
    /// When `value < min`.
    pub fn at_least<T>(field: &'static str, value: T, min: T) -> Result<T, ConfigError>
    where
        T: PartialOrd + Copy + std::fmt::Debug + std::fmt::Display,
    {
        if value >= min {
            Ok(value)
        } else {
            Err(ConfigError::new(field, format!("must be at least {min}")).with_value(value))
        }
    }

    /// `value` must be at most `max`.
    ///
    /// # Errors
    ///
    /// When `value > max`.
    pub fn at_most<T>(field: &'static str, value: T, max: T) -> Result<T, ConfigError>
    where
        T: PartialOrd + Copy + std::fmt::Debug + std::fmt::Display,
    {
        if value <= max {
            Ok(value)
        } else {
            Err(ConfigError::new(field, format!("must be at most {max}")).with_value(value))
        }
    }

    /// `value` must be inside `range`, both ends included: [`at_least`] its start and
    /// [`at_most`] its end.
    ///
    /// # Errors
    ///
    /// As [`at_least`] below `range`, as [`at_most`] above it.
    pub fn within<T>(
        field: &'static str,
        value: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: PartialOrd + Copy + std::fmt::Debug + std::fmt::Display,
    {
        at_least(field, value, *range.start())?;
        at_most(field, value, *range.end())
    }

    /// `value` must be inside `range`, both ends included; the rule names the ends in the
    /// largest whole unit (`must be from 1 ms to 10 s`).
    ///
    /// # Errors
    ///
    /// When `value` is outside `range`.
    pub fn duration_in(
        field: &'static str,
        value: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        if range.contains(&value) {
            Ok(value)
        } else {
            let (start, end) = (whole_units(*range.start()), whole_units(*range.end()));
            Err(ConfigError::new(field, format!("must be from {start} to {end}")).with_value(value))
        }
    }

    /// `duration` in the largest unit (s, ms, µs, ns) that states it as a whole number.
    fn whole_units(duration: Duration) -> String {
        let nanos = duration.as_nanos();
        [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs")]
            .into_iter()
            .find(|&(unit, _)| nanos.is_multiple_of(unit))
            .map_or_else(
                || format!("{nanos} ns"),
                |(unit, name)| format!("{} {name}", nanos / unit),
            )
    }

    /// `value` must be finite and inside `range` (both ends included).
    ///
    /// # Errors
    ///
    /// When `value` is NaN, infinite, or outside `range`.
    pub fn finite_in(
        field: &'static str,
        value: f64,
        range: RangeInclusive<f64>,
    ) -> Result<f64, ConfigError> {
        if value.is_finite() && range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                field,
                format!("must be finite and in [{}, {}]", range.start(), range.end()),
            )
            .with_value(value))
        }
    }

    /// `value` must not be empty (a metrics name, for example).
    ///
    /// # Errors
    ///
    /// When `value` is empty.
    pub fn not_empty<'a>(field: &'static str, value: &'a str) -> Result<&'a str, ConfigError> {
        if value.is_empty() {
            Err(ConfigError::new(field, "must not be empty"))
        } else {
            Ok(value)
        }
    }

    /// `value` must be longer than zero.
    ///
    /// # Errors
    ///
    /// When `value` is zero.
    pub fn positive(field: &'static str, value: Duration) -> Result<Duration, ConfigError> {
        if value.is_zero() {
            Err(ConfigError::new(field, "must be greater than zero").with_value(value))
        } else {
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_the_rule_and_the_value() {
        let err = ConfigError::new("k", "must be finite and at least 1").with_value(0.5);
        assert_eq!(
            err.to_string(),
            "invalid `k`: must be finite and at least 1 (got 0.5)"
        );
        assert_eq!(err.field(), "k");
        assert_eq!(err.rule(), "must be finite and at least 1");
        assert_eq!(err.value(), Some("0.5"));
        assert_eq!(check::not_empty("name", "api"), Ok("api"));
        let bare = check::not_empty("name", "").unwrap_err();
        assert_eq!(bare.to_string(), "invalid `name`: must not be empty");
        assert_eq!(bare.value(), None);
    }

    #[test]
    fn finite_in_rejects_every_non_finite_value_and_both_sides_of_the_range() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.01, 1.01] {
            let err = check::finite_in("ratio", bad, 0.0..=1.0).unwrap_err();
            assert_eq!(err.field(), "ratio", "{bad}");
        }
        for good in [0.0, 0.5, 1.0] {
            assert_eq!(check::finite_in("ratio", good, 0.0..=1.0), Ok(good));
        }
    }

    #[test]
    fn bounds_accept_their_limits_and_reject_beyond() {
        assert_eq!(check::at_least("buckets", 1_u32, 1), Ok(1));
        assert_eq!(
            check::at_least("buckets", 0_u32, 1)
                .unwrap_err()
                .to_string(),
            "invalid `buckets`: must be at least 1 (got 0)"
        );
        assert_eq!(check::at_most("buckets", 10_u32, 10), Ok(10));
        assert!(check::at_most("buckets", 11_u32, 10).is_err());
        assert_eq!(check::within("buckets", 10_u32, 1..=10), Ok(10));
        assert_eq!(
            check::within("buckets", 0_u32, 1..=10)
                .unwrap_err()
                .to_string(),
            "invalid `buckets`: must be at least 1 (got 0)"
        );
        assert_eq!(
            check::within("buckets", 11_u32, 1..=10)
                .unwrap_err()
                .to_string(),
            "invalid `buckets`: must be at most 10 (got 11)"
        );
        assert_eq!(
            check::positive("ttl", Duration::ZERO)
                .unwrap_err()
                .to_string(),
            "invalid `ttl`: must be greater than zero (got 0ns)"
        );
    }

    #[test]
    fn duration_ranges_accept_their_ends_and_name_them_in_whole_units() {
        let (ms, s) = (Duration::from_millis(1), Duration::from_secs(10));
        assert_eq!(check::duration_in("max_delay", ms, ms..=s), Ok(ms));
        assert_eq!(check::duration_in("max_delay", s, ms..=s), Ok(s));
        let below = check::duration_in("max_delay", Duration::from_micros(999), ms..=s);
        assert_eq!(
            below.unwrap_err().to_string(),
            "invalid `max_delay`: must be from 1 ms to 10 s (got 999µs)"
        );
        let odd = Duration::from_nanos(1_500);
        let above = check::duration_in(
            "ttl",
            Duration::from_secs(61),
            odd..=Duration::from_micros(2),
        );
        assert_eq!(above.unwrap_err().rule(), "must be from 1500 ns to 2 µs");
    }
}
