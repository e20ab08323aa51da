use std::fmt;

/// A call was rejected locally, on the client, without reaching the backend.
///
/// `rampart-breaker` returns it (as `rampart_breaker::Rejected`, this same type) while it
/// throttles a failing backend. It lives here so that other layers recognise it without
/// depending on the breaker: `rampart-retry`'s default policy never retries it (retrying a
/// local rejection only adds load to a client that is already shedding).
///
/// ```
/// use rampart_core::Rejected;
///
/// let err: Box<dyn std::error::Error + Send + Sync> = Rejected::new().into();
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

    /// Whether `error`, or any error in its `source()` chain, is a [`Rejected`].
    pub fn is_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(error) = current {
            if error.is::<Self>() {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rejected by the adaptive breaker")
    }
}

impl std::error::Error for Rejected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Rejected);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn is_found_directly_and_through_source_chains() {
        assert!(Rejected::is_in(&Rejected::new()));
        assert!(Rejected::is_in(&Wrapper(Rejected::new())));
        assert!(!Rejected::is_in(&std::io::Error::other("reset")));
    }
}
