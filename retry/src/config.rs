use std::borrow::Cow;
use std::time::Duration;

use rampart_core::{ConfigError, check};

use crate::Backoff;

/// How a [`Retry`](crate::Retry) layer retries.
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `max_attempts` | 3 (the first included) | 1 to 100 |
/// | `backoff` | exponential, 25 ms doubling to 1 s, full jitter | see [`Backoff`] |
/// | `attempt_timeout` | none | above zero |
/// | `max_pushback` | 30 s | above zero |
/// | `mark_gave_up` | false | |
/// | `hold_on_pushback` | true | |
/// | `seed` | none (entropy) | |
/// | `name` | `"default"` | not empty |
///
/// ```
/// use std::time::Duration;
/// use rampart_retry::RetryConfig;
///
/// let config = RetryConfig::default()
///     .with_max_attempts(4)
///     .with_attempt_timeout(Duration::from_millis(300));
/// assert!(config.validate().is_ok());
/// assert_eq!(RetryConfig::default().with_max_attempts(0).validate().unwrap_err().field(), "max_attempts");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// A timeout for each attempt; an attempt past it fails with
    /// [`AttemptTimedOut`](crate::AttemptTimedOut) (and may be retried). For a request with a
    /// deadline, an attempt's timeout is the sooner of this and the deadline (see the crate
    /// docs' "Deadlines").
    pub attempt_timeout: Option<Duration>,
    /// The longest wait a server's pushback ([`Decision::RetryAfter`](crate::Decision)) may
    /// ask for: a longer one is not waited, and the request stops with its last answer
    /// ([`StopReason::Pushback`](crate::StopReason::Pushback)), so that a broken or hostile
    /// server cannot hold a client.
    pub max_pushback: Duration,
    /// Whether a failed request the layer gives up on (attempts, budget, pushback or time
    /// exhausted) ends with [`GaveUp`](crate::GaveUp) wrapping its last error, so that a
    /// server can tell its caller not to retry. Off by default: the last error is returned
    /// as it is.
    pub mark_gave_up: bool,
    /// Whether a server's pushback delay holds all of the layer's retries, not only the
    /// pushed-back request's: while the latest pushback's delay runs, no retry is granted and
    /// none is sent (see [`PushbackHold`](crate::PushbackHold)). On by default: a server that
    /// says it is overloaded is overloaded for every request sent to it.
    pub hold_on_pushback: bool,
    /// Seed of the jitter draws, for reproducible tests.
    pub seed: Option<u64>,
    /// The `name` label of the layer's metrics.
    pub name: Cow<'static, str>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            attempt_timeout: None,
            max_pushback: Duration::from_secs(30),
            mark_gave_up: false,
            hold_on_pushback: true,
            seed: None,
            name: Cow::Borrowed("default"),
        }
    }
}

impl RetryConfig {
    /// This configuration with `max_attempts` attempts per request.
    #[must_use]
    pub fn with_max_attempts(self, max_attempts: u32) -> Self {
        Self {
            max_attempts,
            ..self
        }
    }

    /// This configuration with the given backoff.
    #[must_use]
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }

    /// This configuration with a deadline per attempt.
    #[must_use]
    pub fn with_attempt_timeout(self, timeout: Duration) -> Self {
        Self {
            attempt_timeout: Some(timeout),
            ..self
        }
    }

    /// This configuration waiting at most `max_pushback` for a server's pushback.
    #[must_use]
    pub fn with_max_pushback(self, max_pushback: Duration) -> Self {
        Self {
            max_pushback,
            ..self
        }
    }

    /// This configuration ending a failed request it gives up on with [`GaveUp`](crate::GaveUp).
    #[must_use]
    pub fn with_mark_gave_up(self, mark_gave_up: bool) -> Self {
        Self {
            mark_gave_up,
            ..self
        }
    }

    /// This configuration holding all retries during a pushback's delay (`true`), or only the
    /// pushed-back request's (`false`).
    #[must_use]
    pub fn with_hold_on_pushback(self, hold_on_pushback: bool) -> Self {
        Self {
            hold_on_pushback,
            ..self
        }
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

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `max_attempts` outside 1–100, an invalid backoff, a zero attempt timeout or `max_pushback`, an empty
    /// name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::within("max_attempts", self.max_attempts, 1..=100)?;
        self.backoff.validate()?;
        if let Some(timeout) = self.attempt_timeout {
            check::positive("attempt_timeout", timeout)?;
        }
        check::positive("max_pushback", self.max_pushback)?;
        check::not_empty("name", &self.name)?;
        Ok(())
    }
}
