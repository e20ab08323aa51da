use std::fmt;

/// An attempt did not complete within [`RetryConfig::attempt_timeout`](crate::RetryConfig):
/// it was abandoned and counts as a failure (so it may be retried).
///
/// ```
/// use rampart_retry::AttemptTimedOut;
///
/// let err: tower::BoxError = AttemptTimedOut::new().into();
/// assert!(err.is::<AttemptTimedOut>());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTimedOut {
    _private: (),
}

impl AttemptTimedOut {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attempt timed out")
    }
}

impl std::error::Error for AttemptTimedOut {}

/// The retry layer gave up on a request that failed: its retries ran out
/// ([`StopReason::MaxAttempts`]), the budget refused one ([`StopReason::BudgetExhausted`]), the
/// server asked for none ([`StopReason::Pushback`]) or no time was left
/// ([`StopReason::NoTimeLeft`]). Returned, wrapping the last attempt's error (its
/// [`source`](std::error::Error::source)), only when [`RetryConfig::mark_gave_up`] is set.
///
/// A service that calls a backend and gets this error should tell its own caller not to retry
/// ([`dont_retry`](Self::dont_retry); the HTTP mark is
/// [`pushback::dont_retry_header`](crate::pushback::dont_retry_header)): its hop has already
/// retried what the budget allowed, and a retry from each hop above multiplies the calls at
/// the failing service (three attempts at each of three hops: 27). [`Policy`](crate::Policy)
/// never retries an error that is, or wraps, one that says so.
///
/// ```
/// use rampart_retry::{GaveUp, StopReason};
///
/// let err: tower::BoxError = GaveUp::new(StopReason::MaxAttempts, 3, "reset".into()).into();
/// let gave_up = err.downcast_ref::<GaveUp>().expect("a GaveUp");
/// assert!(gave_up.dont_retry());
/// assert_eq!(gave_up.attempts(), 3);
/// assert_eq!(std::error::Error::source(gave_up).unwrap().to_string(), "reset");
/// ```
///
/// [`StopReason::MaxAttempts`]: crate::StopReason::MaxAttempts
/// [`StopReason::BudgetExhausted`]: crate::StopReason::BudgetExhausted
/// [`StopReason::Pushback`]: crate::StopReason::Pushback
/// [`StopReason::NoTimeLeft`]: crate::StopReason::NoTimeLeft
/// [`RetryConfig::mark_gave_up`]: crate::RetryConfig::mark_gave_up
#[derive(Debug)]
pub struct GaveUp {
    reason: crate::StopReason,
    attempts: u32,
    source: tower::BoxError,
}

impl GaveUp {
    /// The layer stopped for `reason` after `attempts` attempts, the last failing with `source`.
    pub fn new(reason: crate::StopReason, attempts: u32, source: tower::BoxError) -> Self {
        Self {
            reason,
            attempts,
            source,
        }
    }

    /// Why the layer stopped.
    pub fn reason(&self) -> crate::StopReason {
        self.reason
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the caller should not retry: true for every reason the layer gives up for.
    pub fn dont_retry(&self) -> bool {
        use crate::StopReason::{BudgetExhausted, MaxAttempts, NoTimeLeft, Pushback};
        matches!(
            self.reason,
            MaxAttempts | BudgetExhausted | Pushback | NoTimeLeft
        )
    }

    /// The last attempt's error.
    pub fn into_inner(self) -> tower::BoxError {
        self.source
    }
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt(s) ({:?}): {}",
            self.attempts, self.reason, self.source
        )
    }
}

impl std::error::Error for GaveUp {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
