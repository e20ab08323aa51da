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

use rampart_core::Outcome;

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
pub trait Budget: Send + Sync + 'static {
    /// A new request arrived (its first attempt).
    fn deposit(&self);

    /// Asks for one retry; `true` spends it.
    fn withdraw(&self) -> bool;

    /// An attempt completed with `outcome`. The default does nothing.
    fn record(&self, outcome: Outcome) {
        let _ = outcome;
    }

    /// How much budget is left now.
    fn snapshot(&self) -> BudgetSnapshot;
}

impl<B: Budget + ?Sized> Budget for std::sync::Arc<B> {
    fn deposit(&self) {
        (**self).deposit();
    }

    fn withdraw(&self) -> bool {
        (**self).withdraw()
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
