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
