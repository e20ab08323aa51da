//! [`QuotaConfig`] and [`Fallback`]: what a fleet-wide quota is built from, validated field by
//! field.

use std::borrow::Cow;
use std::time::Duration;

use rampart_core::{ConfigError, check};

/// What a process does for a key while Redis is down, slow or unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fallback {
    /// Serve from a local share of the quota: its rate and burst divided by the number of
    /// processes Redis last counted for the key. The keys Redis never answered for (new, or
    /// evicted from the group's table and back) share one such share between them, divided by
    /// the processes Redis counted at its last answer (one if it never answered). While every
    /// process of the fleet does the same, the fleet admits about the quota. The default.
    #[default]
    LocalShare,
    /// Admit every request: availability over the quota.
    FailOpen,
    /// Refuse every request the lease in hand cannot serve: the quota over availability.
    FailClosed,
}

/// The configuration of a [`QuotaGroup`](crate::QuotaGroup): the quota of each key and how the
/// fleet shares it.
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `rate` | 100 per second | finite, from 0.001 to 10⁹ |
/// | `burst` | the rate's one second (100) | from 1 to 10⁹ |
/// | `redis_url` | `redis://127.0.0.1:6379` | a Redis URL |
/// | `prefix` | `"rampart:quota"` | not empty, no `{`, `}` or space |
/// | `name` | `"default"` | not empty, no `{`, `}` or space |
/// | `lease_horizon` | 500 ms | from 1 ms to 60 s |
/// | `max_lease` | 10 000 | at least 1 |
/// | `lease_ttl` | 2 s | from 1 ms to 1 hour, at least `lease_horizon` |
/// | `presence` | 2 s | from 1 ms to 1 hour |
/// | `redis_timeout` | 50 ms | from 1 ms to 60 s |
/// | `min_backoff` | 50 ms | from 1 ms to 60 s |
/// | `max_backoff` | 500 ms | from `min_backoff` to 60 s |
/// | `max_in_flight` | 64 | from 1 to 65 536 |
/// | `fallback` | [`Fallback::LocalShare`] | |
///
/// ```
/// use rampart_quota::{Fallback, QuotaConfig};
///
/// let config = QuotaConfig::per_second(500.0)
///     .with_burst(1_000)
///     .with_redis_url("redis://127.0.0.1:6379/0")
///     .with_name("tenant-api")
///     .with_fallback(Fallback::FailClosed);
/// assert_eq!(config.validate(), Ok(()));
///
/// let err = QuotaConfig::per_second(0.0).validate().unwrap_err();
/// assert_eq!(err.field(), "rate");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaConfig {
    /// Tokens per second, for each key, across every process that shares the Redis: one
    /// request takes one token.
    pub rate: f64,
    /// Tokens the quota may grant at once after a quiet spell. Leases are capped by it, so for
    /// the fleet to admit the whole rate it should hold at least `rate × lease_horizon / 2`.
    pub burst: u64,
    /// The Redis server the fleet shares: `redis://[user:password@]host:port[/db]` or
    /// `redis+unix:///path/to/socket` (TLS is not built in).
    pub redis_url: String,
    /// The namespace of every Redis key this quota writes.
    pub prefix: Cow<'static, str>,
    /// The quota's name: part of its Redis keys (quotas of different names never share
    /// tokens) and the `name` label of its metrics.
    pub name: Cow<'static, str>,
    /// How much of its recent demand a process leases at once: a lease holds about
    /// `demand × lease_horizon` tokens, and a process asks for a new one when half is spent.
    /// Longer means fewer Redis calls and more tokens held by each process.
    pub lease_horizon: Duration,
    /// The most tokens one lease asks for.
    pub max_lease: u64,
    /// How long leased tokens stay usable: tokens unspent that long are dropped, so a process
    /// cannot spend after a quiet spell what it was granted long before.
    pub lease_ttl: Duration,
    /// How long a process counts as sharing a key after its last ask (its want among those the
    /// fair share is water-filled over, and the divisor of the local share).
    pub presence: Duration,
    /// The most a Redis call may take before it counts as failed. No request waits on Redis:
    /// leases are asked for in the background, ahead of need.
    pub redis_timeout: Duration,
    /// The first wait after a failed Redis call before the next one; each failure in a row
    /// doubles it, up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between calls to a Redis that keeps failing: the quota is exact
    /// again at most this long after Redis returns.
    pub max_backoff: Duration,
    /// The most Redis calls in flight at once for the group. The asks of new keys take at most
    /// half of them (at least one), so that a flood of new keys leaves the other half to the
    /// keys that hold leases.
    pub max_in_flight: usize,
    /// What to do while Redis cannot be reached: see [`Fallback`].
    pub fallback: Fallback,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self::per_second(100.0)
    }
}

impl QuotaConfig {
    /// The default configuration with `rate` tokens per second and a burst of one second's
    /// tokens (at least 1).
    pub fn per_second(rate: f64) -> Self {
        Self {
            rate,
            burst: if rate.is_finite() && rate >= 1.0 {
                rate.ceil() as u64
            } else {
                1
            },
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            prefix: Cow::Borrowed("rampart:quota"),
            name: Cow::Borrowed("default"),
            lease_horizon: Duration::from_millis(500),
            max_lease: 10_000,
            lease_ttl: Duration::from_secs(2),
            presence: Duration::from_secs(2),
            redis_timeout: Duration::from_millis(50),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            max_in_flight: 64,
            fallback: Fallback::LocalShare,
        }
    }

    /// This configuration with `rate` tokens per second (the burst unchanged).
    #[must_use]
    pub fn with_rate(self, rate: f64) -> Self {
        Self { rate, ..self }
    }

    /// This configuration with the given burst.
    #[must_use]
    pub fn with_burst(self, burst: u64) -> Self {
        Self { burst, ..self }
    }

    /// This configuration with the given Redis URL.
    #[must_use]
    pub fn with_redis_url(self, url: impl Into<String>) -> Self {
        Self {
            redis_url: url.into(),
            ..self
        }
    }

    /// This configuration with the given key namespace.
    #[must_use]
    pub fn with_prefix(self, prefix: impl Into<Cow<'static, str>>) -> Self {
        Self {
            prefix: prefix.into(),
            ..self
        }
    }

    /// This configuration with the given name.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// This configuration with the given lease horizon.
    #[must_use]
    pub fn with_lease_horizon(self, lease_horizon: Duration) -> Self {
        Self {
            lease_horizon,
            ..self
        }
    }

    /// This configuration with the given largest lease.
    #[must_use]
    pub fn with_max_lease(self, max_lease: u64) -> Self {
        Self { max_lease, ..self }
    }

    /// This configuration with leased tokens dropped after `lease_ttl`.
    #[must_use]
    pub fn with_lease_ttl(self, lease_ttl: Duration) -> Self {
        Self { lease_ttl, ..self }
    }

    /// This configuration counting a process as present for `presence` after its last ask.
    #[must_use]
    pub fn with_presence(self, presence: Duration) -> Self {
        Self { presence, ..self }
    }

    /// This configuration with the given bound on each Redis call.
    #[must_use]
    pub fn with_redis_timeout(self, redis_timeout: Duration) -> Self {
        Self {
            redis_timeout,
            ..self
        }
    }

    /// This configuration with the given reconnection backoff, from `min` doubling to `max`.
    #[must_use]
    pub fn with_backoff(self, min: Duration, max: Duration) -> Self {
        Self {
            min_backoff: min,
            max_backoff: max,
            ..self
        }
    }

    /// This configuration with at most `max_in_flight` Redis calls at once.
    #[must_use]
    pub fn with_max_in_flight(self, max_in_flight: usize) -> Self {
        Self {
            max_in_flight,
            ..self
        }
    }

    /// This configuration with the given fallback.
    #[must_use]
    pub fn with_fallback(self, fallback: Fallback) -> Self {
        Self { fallback, ..self }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field that breaks its rule (see the table above).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validated_client().map(drop)
    }

    /// Checks every field, as [`validate`](Self::validate) does, and returns the Redis client
    /// of `redis_url` (which connects to nothing yet).
    pub(crate) fn validated_client(&self) -> Result<redis::Client, ConfigError> {
        const MS: Duration = Duration::from_millis(1);
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3_600);
        check::finite_in("rate", self.rate, 0.001..=1e9)?;
        check::within("burst", self.burst, 1..=1_000_000_000)?;
        key_part("prefix", &self.prefix)?;
        key_part("name", &self.name)?;
        check::duration_in("lease_horizon", self.lease_horizon, MS..=MINUTE)?;
        check::at_least("max_lease", self.max_lease, 1)?;
        check::duration_in("lease_ttl", self.lease_ttl, MS..=HOUR)?;
        if self.lease_ttl < self.lease_horizon {
            return Err(
                ConfigError::new("lease_ttl", "must be at least `lease_horizon`")
                    .with_value(self.lease_ttl),
            );
        }
        check::duration_in("presence", self.presence, MS..=HOUR)?;
        check::duration_in("redis_timeout", self.redis_timeout, MS..=MINUTE)?;
        check::duration_in("min_backoff", self.min_backoff, MS..=MINUTE)?;
        check::duration_in("max_backoff", self.max_backoff, self.min_backoff..=MINUTE)?;
        check::within("max_in_flight", self.max_in_flight, 1..=65_536)?;
        redis::Client::open(self.redis_url.as_str()).map_err(|err| {
            ConfigError::new("redis_url", format!("must be a Redis URL ({err})"))
                .with_value(&self.redis_url)
        })
    }
}

/// A part of every Redis key: not empty, and none of the characters that would change which
/// part of the key a Redis Cluster hashes (`{`, `}`) or make it awkward to read (spaces).
fn key_part(field: &'static str, value: &str) -> Result<(), ConfigError> {
    check::not_empty(field, value)?;
    if value.contains(['{', '}']) || value.contains(char::is_whitespace) {
        return Err(
            ConfigError::new(field, "must hold no `{`, `}` or whitespace").with_value(value),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_hundred_a_second_with_a_seconds_burst() {
        let config = QuotaConfig::default();
        assert_eq!(config.rate, 100.0);
        assert_eq!(config.burst, 100);
        assert_eq!(config.fallback, Fallback::LocalShare);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(QuotaConfig::per_second(0.5).burst, 1);
        assert_eq!(QuotaConfig::per_second(2.5).burst, 3);
        for url in [
            "redis://:secret@10.0.0.5:6380/2",
            "redis+unix:///run/redis.sock",
        ] {
            assert_eq!(
                QuotaConfig::default().with_redis_url(url).validate(),
                Ok(())
            );
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = QuotaConfig::default();
        let ms = Duration::from_millis;
        let cases = [
            (base.clone().with_rate(f64::NAN), "rate"),
            (base.clone().with_rate(0.0), "rate"),
            (base.clone().with_burst(0), "burst"),
            (base.clone().with_prefix(""), "prefix"),
            (base.clone().with_prefix("a{b"), "prefix"),
            (base.clone().with_name("a b"), "name"),
            (base.clone().with_name("}"), "name"),
            (
                base.clone().with_lease_horizon(Duration::ZERO),
                "lease_horizon",
            ),
            (base.clone().with_max_lease(0), "max_lease"),
            (base.clone().with_lease_ttl(ms(100)), "lease_ttl"),
            (base.clone().with_presence(Duration::ZERO), "presence"),
            (
                base.clone().with_redis_timeout(Duration::ZERO),
                "redis_timeout",
            ),
            (
                base.clone().with_backoff(Duration::ZERO, ms(10)),
                "min_backoff",
            ),
            (base.clone().with_backoff(ms(100), ms(10)), "max_backoff"),
            (base.clone().with_max_in_flight(0), "max_in_flight"),
            (base.clone().with_redis_url("http://example"), "redis_url"),
            (base.clone().with_redis_url("rediss://example"), "redis_url"),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field(), field, "{config:?}: {err}");
        }
    }
}
