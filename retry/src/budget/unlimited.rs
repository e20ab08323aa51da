//! [`Unlimited`]: no budget at all, so that only `max_attempts` bounds retries.

use rampart_core::{BudgetId, Criticality};

use super::{Budget, BudgetSnapshot};

/// A budget that grants every retry: only [`max_attempts`](crate::RetryConfig::max_attempts)
/// bounds them, as in gRPC's retries without `retryThrottling` and in tower's `Retry` with a
/// policy that never asks a budget.
///
/// This is what a budget exists to prevent: while a backend fails every call, each request
/// makes `max_attempts` calls (the lab's `retry-storm` scenario compares it, as "naive", with
/// the budgets). Use it for tests and comparisons, or where another layer already bounds the
/// load; a service in production wants a [`RatioBudget`](crate::RatioBudget) or a
/// [`TokenBudget`](crate::TokenBudget).
///
/// ```
/// use rampart_retry::{Budget, Unlimited};
///
/// assert!((0..1_000).all(|_| Unlimited.withdraw()), "never refuses");
/// assert_eq!(Unlimited.snapshot().remaining, f64::INFINITY);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unlimited;

/// The one identity of every [`Unlimited`]: a zero-sized value has no address of its own.
static UNLIMITED: u8 = 0;

impl Budget for Unlimited {
    /// One for all: [`Unlimited`] has no state, so every one is the same budget.
    fn id(&self) -> BudgetId {
        BudgetId::of(&UNLIMITED)
    }

    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        true
    }

    /// Every class, always: there is no capacity to keep a share of.
    fn withdraw_for(&self, _: Criticality) -> bool {
        true
    }

    fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot {
            remaining: f64::INFINITY,
        }
    }
}
