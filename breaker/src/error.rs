use std::fmt;

/// The breaker rejected the request locally, without calling the backend.
///
/// Returned (boxed into `tower::BoxError`) by [`Breaker`](crate::Breaker) and by
/// [`SreBreaker::allow`](crate::SreBreaker::allow) while the backend is throttled. Find it by
/// downcasting; a retry layer should not retry it (retrying a local rejection only adds load
/// to the throttled client):
///
/// ```
/// use rampart_breaker::Rejected;
///
/// let err: tower::BoxError = Rejected::new().into();
/// assert!(err.is::<Rejected>());
/// assert_eq!(err.to_string(), "rejected by the adaptive breaker");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    _private: (),
}

impl Rejected {
    /// The rejection.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rejected by the adaptive breaker")
    }
}

impl std::error::Error for Rejected {}
