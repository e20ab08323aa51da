use std::fmt;

use crate::Criticality;

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
///
/// A rejection of a request that said its [`Criticality`] (in a
/// [`RequestContext`](crate::RequestContext), or to the breaker directly) carries it, and says
/// it:
///
/// ```
/// use rampart_core::{Criticality, Rejected};
///
/// let rejected = Rejected::of(Criticality::SHEDDABLE);
/// assert_eq!(rejected.criticality(), Some(Criticality::SHEDDABLE));
/// assert_eq!(rejected.to_string(), "rejected by the adaptive breaker (sheddable)");
/// assert_eq!(Rejected::new().criticality(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    criticality: Option<Criticality>,
}

impl Rejected {
    /// The rejection of a request that said no criticality (so was treated as the default,
    /// [`Criticality::CRITICAL`]).
    pub const fn new() -> Self {
        Self { criticality: None }
    }

    /// The rejection of a request of `criticality`.
    pub const fn of(criticality: Criticality) -> Self {
        Self {
            criticality: Some(criticality),
        }
    }

    /// The criticality of the rejected request, if it said one.
    pub const fn criticality(&self) -> Option<Criticality> {
        self.criticality
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
        f.write_str("rejected by the adaptive breaker")?;
        match self.criticality {
            Some(criticality) => write!(f, " ({criticality})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Rejected {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CriticalityClass;

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
        assert!(Rejected::is_in(&Wrapper(Rejected::of(
            Criticality::SHEDDABLE
        ))));
        assert!(!Rejected::is_in(&std::io::Error::other("reset")));
    }

    #[test]
    fn a_rejection_says_the_criticality_of_its_request() {
        let user = Criticality::with_level(CriticalityClass::SheddablePlus, 42);
        assert_eq!(
            Rejected::of(user).to_string(),
            "rejected by the adaptive breaker (sheddable-plus/42)"
        );
        assert_eq!(
            Rejected::of(Criticality::CRITICAL_PLUS).to_string(),
            "rejected by the adaptive breaker (critical-plus)"
        );
        assert_ne!(Rejected::of(Criticality::CRITICAL), Rejected::new());
        assert_eq!(Rejected::default(), Rejected::new());
    }
}
