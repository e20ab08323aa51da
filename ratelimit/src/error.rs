use std::fmt;
use std::time::Duration;

use rampart_core::{Criticality, DeadlineExceeded};

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

/// The limiter refused a request that could not finish in time: at the current load, its
/// predicted completion comes after its deadline, so serving it would spend the server's work
/// on an answer nobody waits for.
///
/// Returned (boxed into `tower::BoxError`) by [`BbrLimit`](crate::BbrLimit) for a request whose
/// [`Deadline`](rampart_core::Deadline) is current; a request whose deadline has already
/// passed gets [`DeadlineExceeded`](rampart_core::DeadlineExceeded) instead. Servers map it
/// to `504 Gateway Timeout`.
///
/// ```
/// use std::time::Duration;
/// use rampart_ratelimit::WouldMissDeadline;
///
/// let refusal = WouldMissDeadline::new(Duration::from_millis(8), Duration::from_millis(30));
/// assert_eq!(refusal.remaining(), Duration::from_millis(8));
/// let err: tower::BoxError = refusal.into();
/// assert_eq!(err.to_string(), "would miss its deadline: 8ms left, 30ms predicted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldMissDeadline {
    remaining: Duration,
    predicted: Duration,
}

impl WouldMissDeadline {
    /// The refusal of a request with `remaining` time left whose completion was predicted to
    /// take `predicted`.
    pub const fn new(remaining: Duration, predicted: Duration) -> Self {
        Self {
            remaining,
            predicted,
        }
    }

    /// The time the request had left.
    pub const fn remaining(&self) -> Duration {
        self.remaining
    }

    /// The completion time predicted at the load it arrived at.
    pub const fn predicted(&self) -> Duration {
        self.predicted
    }
}

impl fmt::Display for WouldMissDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "would miss its deadline: {:?} left, {:?} predicted",
            self.remaining, self.predicted
        )
    }
}

impl std::error::Error for WouldMissDeadline {}

/// Why [`BbrLimiter::check_deadline_at`](crate::BbrLimiter::check_deadline_at) refuses a
/// request: its deadline has passed, or it would pass before the request could finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineRefusal {
    /// No time is left: the caller has stopped waiting.
    Expired(DeadlineExceeded),
    /// Time is left, less than the request's predicted completion.
    WouldMiss(WouldMissDeadline),
}

impl fmt::Display for DeadlineRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired(error) => error.fmt(f),
            Self::WouldMiss(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for DeadlineRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Expired(error) => Some(error),
            Self::WouldMiss(error) => Some(error),
        }
    }
}

impl DeadlineRefusal {
    /// The error inside, boxed: [`DeadlineExceeded`] or [`WouldMissDeadline`], the types a
    /// caller downcasts to (what [`BbrLimit`](crate::BbrLimit) returns).
    pub fn into_boxed(self) -> tower::BoxError {
        match self {
            Self::Expired(error) => Box::new(error),
            Self::WouldMiss(error) => Box::new(error),
        }
    }
}
