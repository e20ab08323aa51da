//! Retry budgets: how many retries the traffic has earned.
//!
//! A fixed number of attempts per request is not a limit on retries: when a backend fails
//! every call, three attempts per request triple its load exactly when it can least take it.
//! A budget bounds retries as a share of real traffic instead, so that they rescue the odd
//! failure and stop by themselves during an outage.

mod ratio;
mod token;
mod unlimited;

pub use self::ratio::{RatioBudget, RatioConfig};
pub use self::token::{TokenBudget, TokenConfig};
pub use self::unlimited::Unlimited;

use rampart_core::{BudgetId, Criticality, CriticalityClass, Outcome};

/// A source of permission to retry.
///
/// A fixed number of attempts per request is not a limit on retries: when a backend fails
/// every call, three attempts per request triple its load exactly when it can least take it.
/// A budget bounds retries as a share of real traffic instead, so that they rescue the odd
/// failure and stop by themselves during an outage.
///
/// The [`Retry`](crate::Retry) layer calls [`deposit`](Self::deposit) once per original
/// request, [`record`](Self::record) with the outcome of every attempt, and
/// [`withdraw`](Self::withdraw) before every retry: a retry goes ahead only if it returns
/// `true`. Implementations are shared by every clone of the layer's services, so they take
/// `&self` and must be exact under concurrent use.
///
/// A request deposits once into a budget however many layers sharing it
/// ([`id`](Self::id)) it passes: the first to see it deposits and marks the request's
/// [`RequestContext`](rampart_core::RequestContext) charged to the budget, and the layers
/// inside sharing the budget neither deposit again nor count their copies as new requests.
pub trait Budget: Send + Sync + 'static {
    /// The budget's identity: the same for every handle to one budget (an `Arc` answers its
    /// budget's), distinct between budgets. The default is the budget's address, right for a
    /// budget whose state lives in it; a budget that is a handle to state kept elsewhere (a
    /// `Clone` sharing it) answers the state's.
    #[inline]
    fn id(&self) -> BudgetId {
        BudgetId::of(self)
    }

    /// A new request arrived (its first attempt).
    fn deposit(&self);

    /// Asks for one retry; `true` spends it.
    fn withdraw(&self) -> bool;

    /// Asks for one retry of a request of `criticality`; `true` spends it. The
    /// [`Retry`](crate::Retry) layer and the [`Retrier`](crate::Retrier) ask this.
    ///
    /// A retry of a lower class must leave a share of the budget for the classes above
    /// ([`kept_back`]): rampart's budgets grant it only while what is left after it covers
    /// that share of their capacity, and [`withdraw`](Self::withdraw) is this for
    /// [`Criticality::CRITICAL`], which keeps nothing back. The default treats every
    /// criticality as `withdraw` does, for a budget with no notion of capacity.
    fn withdraw_for(&self, criticality: Criticality) -> bool {
        let _ = criticality;
        self.withdraw()
    }

    /// An attempt completed with `outcome`. The default does nothing.
    fn record(&self, outcome: Outcome) {
        let _ = outcome;
    }

    /// How much budget is left now.
    fn snapshot(&self) -> BudgetSnapshot;
}

impl<B: Budget + ?Sized> Budget for std::sync::Arc<B> {
    #[inline]
    fn id(&self) -> BudgetId {
        (**self).id()
    }

    fn deposit(&self) {
        (**self).deposit();
    }

    fn withdraw(&self) -> bool {
        (**self).withdraw()
    }

    fn withdraw_for(&self, criticality: Criticality) -> bool {
        (**self).withdraw_for(criticality)
    }

    fn record(&self, outcome: Outcome) {
        (**self).record(outcome);
    }

    fn snapshot(&self) -> BudgetSnapshot {
        (**self).snapshot()
    }
}

/// How much budget is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSnapshot {
    /// What is left: retries for [`RatioBudget`], tokens above the throttling threshold for
    /// [`TokenBudget`]. Zero or less means the next withdrawal is refused.
    pub remaining: f64,
}

/// The share of a budget's capacity that a retry of `class` must leave in it, kept back for the
/// retries of the classes above: none for [`CriticalPlus`](CriticalityClass::CriticalPlus) and
/// [`Critical`](CriticalityClass::Critical) (the default: a request that says no criticality
/// retries exactly as it would without them), a quarter for
/// [`SheddablePlus`](CriticalityClass::SheddablePlus), half for
/// [`Sheddable`](CriticalityClass::Sheddable).
///
/// So as a budget runs low, sheddable retries stop first (at half of it), then sheddable-plus
/// ones (at a quarter), then the critical ones (when it is empty), and critical work always
/// keeps a quarter of the budget to itself. A budget's capacity is what it would hold with no
/// retry spent: [`RatioBudget`]'s earned allowance in its window, `ratio × deposits +
/// min_per_sec × ttl`; [`TokenBudget`]'s tokens above its throttling threshold when full,
/// `max_tokens / 2`. [`Unlimited`] grants every class.
///
/// ```
/// use rampart_core::CriticalityClass;
/// use rampart_retry::kept_back;
///
/// assert_eq!(kept_back(CriticalityClass::Critical), 0.0);
/// assert_eq!(kept_back(CriticalityClass::SheddablePlus), 0.25);
/// assert_eq!(kept_back(CriticalityClass::Sheddable), 0.5);
/// ```
pub const fn kept_back(class: CriticalityClass) -> f64 {
    quarters_kept(class) as f64 / 4.0
}

/// [`kept_back`] in quarters, for exact integer arithmetic.
const fn quarters_kept(class: CriticalityClass) -> u128 {
    match class {
        CriticalityClass::Sheddable => 2,
        CriticalityClass::SheddablePlus => 1,
        CriticalityClass::Critical | CriticalityClass::CriticalPlus => 0,
    }
}

/// The part of `capacity` (in a budget's own units) that a retry of `class` must leave in the
/// budget: [`kept_back`]'s share, rounded down.
pub(crate) const fn floor(class: CriticalityClass, capacity: u128) -> u128 {
    capacity * quarters_kept(class) / 4
}
