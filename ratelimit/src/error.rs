use std::fmt;

use rampart_core::Criticality;

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
///
/// // A request that said how important it was hears which class was shed:
/// let batch = Overloaded::shedding(Some(rampart_core::Criticality::SHEDDABLE));
/// assert_eq!(batch.to_string(), "service overloaded: shed sheddable");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overloaded {
    criticality: Option<Criticality>,
}

impl Overloaded {
    /// The rejection of a request that said no criticality.
    pub const fn new() -> Self {
        Self { criticality: None }
    }

    /// The rejection of a request of `criticality` (`None`: it said none).
    pub const fn shedding(criticality: Option<Criticality>) -> Self {
        Self { criticality }
    }

    /// The criticality of the request shed, when it said one.
    pub const fn criticality(&self) -> Option<Criticality> {
        self.criticality
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.criticality {
            None => f.write_str("service overloaded"),
            Some(criticality) => write!(f, "service overloaded: shed {criticality}"),
        }
    }
}

impl std::error::Error for Overloaded {}
