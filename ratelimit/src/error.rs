use std::fmt;

/// The limiter shed the request: the service is overloaded and already carries as many
/// requests as it has proven it can.
///
/// Returned (boxed into `tower::BoxError`) by [`BbrLimit`](crate::BbrLimit) and by
/// [`BbrLimiter::acquire`](crate::BbrLimiter::acquire). Servers usually map it to
/// `503 Service Unavailable` (or 429) with a `Retry-After`:
///
/// ```
/// use rampart_ratelimit::Overloaded;
///
/// let err: tower::BoxError = Overloaded::new().into();
/// assert!(err.is::<Overloaded>());
/// assert_eq!(err.to_string(), "service overloaded");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overloaded {
    _private: (),
}

impl Overloaded {
    /// The rejection.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("service overloaded")
    }
}

impl std::error::Error for Overloaded {}
