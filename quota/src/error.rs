//! [`QuotaExceeded`]: the error of a request the quota refused.

use std::fmt;
use std::time::Duration;

/// The quota refused the request (boxed in `tower::BoxError`): its key has no token in this
/// process's lease, the fleet's quota is short, or (while Redis is unreachable) the local
/// share is spent. The inner service was not called.
///
/// [`retry_after`](Self::retry_after) says when a token is expected; `rampart::http` answers
/// it with `429 Too Many Requests` and a `Retry-After` header.
///
/// ```
/// use std::time::Duration;
/// use rampart_quota::QuotaExceeded;
///
/// let refused = QuotaExceeded::new(Duration::from_millis(250));
/// assert_eq!(refused.retry_after(), Duration::from_millis(250));
/// let boxed: tower::BoxError = refused.into();
/// assert!(boxed.is::<QuotaExceeded>());
/// assert_eq!(boxed.to_string(), "refused by the quota: retry after 250 ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    retry_after: Duration,
}

impl QuotaExceeded {
    /// A refusal whose next token is expected after `retry_after`.
    pub fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// How long until a token is expected for the key.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused by the quota: retry after {} ms",
            self.retry_after.as_millis()
        )
    }
}

impl std::error::Error for QuotaExceeded {}
