use std::fmt;

/// No endpoint was ready for the request (none discovered, all busy or failed), and the
/// balancer is configured to fail rather than wait.
///
/// ```
/// use rampart_balancer::NoEndpoints;
///
/// let err: tower::BoxError = NoEndpoints::new().into();
/// assert!(err.is::<NoEndpoints>());
/// assert_eq!(err.to_string(), "no endpoint available");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoEndpoints {
    _private: (),
}

impl NoEndpoints {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for NoEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no endpoint available")
    }
}

impl std::error::Error for NoEndpoints {}
