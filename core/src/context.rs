//! [`RequestContext`]: what travels with a request from service to service, and the scope that
//! makes it the current request's while that request is being handled.
//!
//! A server-side layer reads the context a request brings (its criticality, from a header)
//! and installs it for the whole handling of the request: around the inner service's `call`
//! and around every poll of its response future, as `tracing` enters a span. Every layer and
//! handler inside, on whatever thread polls it, reads it with [`RequestContext::current`], so
//! a handler that calls another service needs no plumbing: the client-side layer reads the
//! scope and stamps the outgoing request. Outside any scope the context is empty, and the
//! layers behave as they did without one.
//!
//! The scope is the current *poll's*, not the task's: work spawned onto another task carries
//! it only when wrapped with [`RequestContext::scope`], as a span must be with
//! `tracing::Instrument`.
//!
//! ```
//! use rampart_core::{Criticality, RequestContext};
//!
//! assert_eq!(RequestContext::current().criticality(), None);
//! let batch = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
//!
//! // Synchronous code: the context is current until the guard drops.
//! {
//!     let _entered = batch.enter();
//!     assert_eq!(RequestContext::current().criticality(), Some(Criticality::SHEDDABLE));
//! }
//! assert_eq!(RequestContext::current(), RequestContext::new());
//!
//! // A future: the context is current during each of its polls.
//! let handled = batch.scope(async { RequestContext::current().criticality() });
//! # let seen = block_on(handled);
//! # assert_eq!(seen, Some(Criticality::SHEDDABLE));
//! # fn block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     use std::task::{Context, Poll, Waker};
//! #     let mut future = std::pin::pin!(future);
//! #     loop {
//! #         if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
//! #             return out;
//! #         }
//! #     }
//! # }
//! ```

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use crate::{Criticality, Deadline};

/// What a request carries between services: its [`Criticality`], its [`Deadline`], its
/// attempt number, and the budget it has been charged to. Each value is optional: an absent
/// one means the request did not say, and a layer uses its own default.
///
/// It is `Copy` and small, so reading the current one costs a thread-local load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct RequestContext {
    criticality: Option<Criticality>,
    deadline: Option<Deadline>,
    attempt: Option<u32>,
    charged: Option<BudgetId>,
}

/// The identity of a budget (of retries, of hedges) that requests are charged to: layers that
/// share one budget see the same id, so that a request deposits into it once however many of
/// them it passes (see [`RequestContext::charged`]).
///
/// ```
/// use std::sync::Arc;
/// use rampart_core::BudgetId;
///
/// let (one, other) = (Arc::new(10_u32), Arc::new(10_u32));
/// let shared = Arc::clone(&one);
/// assert_eq!(BudgetId::of(&*one), BudgetId::of(&*shared), "one budget, two handles");
/// assert_ne!(BudgetId::of(&*one), BudgetId::of(&*other), "equal values, two budgets");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BudgetId(NonZeroUsize);

impl BudgetId {
    /// The budget at `budget`'s address: distinct for two budgets alive at once, the same for
    /// every reference to one. (A zero-sized value has no address of its own: give such a
    /// budget an id with [`BudgetId::new`].)
    #[inline]
    pub fn of<T: ?Sized>(budget: &T) -> Self {
        Self(NonNull::from(budget).cast::<u8>().addr())
    }

    /// The budget numbered `id`, for a budget that names itself.
    pub const fn new(id: NonZeroUsize) -> Self {
        Self(id)
    }

    /// The number.
    pub const fn get(self) -> NonZeroUsize {
        self.0
    }
}

thread_local! {
    static CURRENT: Cell<RequestContext> = const { Cell::new(RequestContext::new()) };
}

impl RequestContext {
    /// A context that says nothing.
    pub const fn new() -> Self {
        Self {
            criticality: None,
            deadline: None,
            attempt: None,
            charged: None,
        }
    }

    /// The context of the request being handled on this thread: the innermost scope's, or an
    /// empty one outside any scope.
    #[inline]
    pub fn current() -> Self {
        CURRENT.with(Cell::get)
    }

    /// The criticality the request carries, if it said one.
    pub const fn criticality(&self) -> Option<Criticality> {
        self.criticality
    }

    /// This context, carrying `criticality`.
    #[must_use]
    pub const fn with_criticality(self, criticality: Criticality) -> Self {
        Self {
            criticality: Some(criticality),
            ..self
        }
    }

    /// The deadline the request carries, if it has one (an instant of the layers' clock).
    pub const fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// This context, carrying `deadline`.
    #[must_use]
    pub const fn with_deadline(self, deadline: Deadline) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// The attempts made before this one, if the request said: 0 for a first attempt, 1 for
    /// the first retry, as gRPC's `grpc-previous-rpc-attempts` counts them. A retry layer sets
    /// it around each attempt it makes, so a client-side layer inside it can send it on.
    pub const fn attempt(&self) -> Option<u32> {
        self.attempt
    }

    /// This context, carrying `previous` attempts made before this one.
    #[must_use]
    pub const fn with_attempt(self, previous: u32) -> Self {
        Self {
            attempt: Some(previous),
            ..self
        }
    }

    /// The budget the request has been charged to (deposited into) by a layer it passed, if
    /// any. A retry or hedge layer deposits into its budget once per request: it skips the
    /// deposit when the request is already charged to its budget (a layer outside shares it),
    /// and otherwise deposits and marks the request charged to its budget for the services
    /// inside (one mark: the innermost layer's).
    pub const fn charged(&self) -> Option<BudgetId> {
        self.charged
    }

    /// Whether the request has been charged to `budget` (see [`charged`](Self::charged)).
    #[inline]
    pub fn is_charged_to(&self, budget: BudgetId) -> bool {
        self.charged == Some(budget)
    }

    /// This context, charged to `budget` (see [`charged`](Self::charged)).
    #[must_use]
    pub const fn with_charged(self, budget: BudgetId) -> Self {
        Self {
            charged: Some(budget),
            ..self
        }
    }

    /// This context, its absent values taken from `outer`: a request's own values win over the
    /// scope it is made in.
    #[must_use]
    pub fn or(self, outer: Self) -> Self {
        Self {
            criticality: self.criticality.or(outer.criticality),
            deadline: self.deadline.or(outer.deadline),
            attempt: self.attempt.or(outer.attempt),
            charged: self.charged.or(outer.charged),
        }
    }

    /// Makes this context current until the guard is dropped (for a synchronous call such as a
    /// service's `call`). Guards nest; each restores the context it replaced, also when the
    /// code between unwinds.
    #[inline]
    pub fn enter(self) -> Entered {
        Entered {
            previous: CURRENT.with(|current| current.replace(self)),
            _not_send: PhantomData,
        }
    }

    /// `future`, with this context current during each of its polls.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            context: self,
            future,
        }
    }
}

/// The criticality of the request being handled on this thread, or the default
/// ([`Criticality::CRITICAL`]) when it said none: what a layer that sheds by importance uses.
#[inline]
pub fn current_criticality() -> Criticality {
    RequestContext::current().criticality.unwrap_or_default()
}

/// The deadline of the request being handled on this thread, if it has one.
#[inline]
pub fn current_deadline() -> Option<Deadline> {
    RequestContext::current().deadline
}

/// A context made current by [`RequestContext::enter`]; dropping it restores the one before.
/// It is tied to its thread.
#[derive(Debug)]
#[must_use = "the context is current only until the guard is dropped"]
pub struct Entered {
    previous: RequestContext,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

pin_project_lite::pin_project! {
    /// A future polled with a [`RequestContext`] current (see [`RequestContext::scope`]).
    #[derive(Debug)]
    pub struct Scoped<F> {
        context: RequestContext,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// The context the future runs in.
    pub fn context(&self) -> RequestContext {
        self.context
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.context.enter();
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::Waker;

    use super::*;

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    const BATCH: RequestContext = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    const VIP: RequestContext = RequestContext::new().with_criticality(Criticality::CRITICAL_PLUS);

    #[test]
    fn guards_nest_and_restore_what_they_replaced() {
        assert_eq!(current_criticality(), Criticality::CRITICAL, "the default");
        let outer = BATCH.enter();
        assert_eq!(current_criticality(), Criticality::SHEDDABLE);
        {
            let _inner = VIP.enter();
            assert_eq!(current_criticality(), Criticality::CRITICAL_PLUS);
        }
        assert_eq!(current_criticality(), Criticality::SHEDDABLE);
        drop(outer);
        assert_eq!(RequestContext::current(), RequestContext::new());
    }

    #[test]
    fn a_panic_inside_a_scope_restores_the_context_before_it() {
        let _outer = BATCH.enter();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let _inner = VIP.enter();
            panic!("handler bug");
        }));
        assert!(unwound.is_err());
        assert_eq!(current_criticality(), Criticality::SHEDDABLE);
    }

    #[test]
    fn a_scoped_future_sees_its_context_in_every_poll_and_leaves_none_between() {
        let mut polls = 0;
        let future = VIP.scope(std::future::poll_fn(|cx| {
            assert_eq!(current_criticality(), Criticality::CRITICAL_PLUS);
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        let mut future = std::pin::pin!(future);
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(
            RequestContext::current(),
            RequestContext::new(),
            "between polls"
        );
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(poll_once(future.as_mut()), Poll::Ready(3));
    }

    #[test]
    fn a_scope_polled_on_another_thread_is_current_there() {
        let future = BATCH.scope(async { current_criticality() });
        let seen = std::thread::spawn(move || {
            let mut future = std::pin::pin!(future);
            poll_once(future.as_mut())
        })
        .join()
        .expect("no panic");
        assert_eq!(seen, Poll::Ready(Criticality::SHEDDABLE));
        assert_eq!(current_criticality(), Criticality::CRITICAL, "not here");
    }

    #[test]
    fn a_requests_own_values_win_over_the_scope() {
        assert_eq!(VIP.or(BATCH), VIP);
        assert_eq!(RequestContext::new().or(BATCH), BATCH);
        let soon = Deadline::at(std::time::Duration::from_millis(5));
        let timed = RequestContext::new().with_deadline(soon);
        assert_eq!(
            VIP.or(timed),
            VIP.with_deadline(soon),
            "each value from where it is set"
        );
        let later = Deadline::at(std::time::Duration::from_secs(5));
        assert_eq!(timed.or(RequestContext::new().with_deadline(later)), timed);
        assert_eq!(
            RequestContext::new().or(RequestContext::new()),
            RequestContext::new()
        );
    }

    #[test]
    fn an_attempt_number_travels_and_merges_like_the_other_values() {
        assert_eq!(RequestContext::new().attempt(), None);
        let retry = VIP.with_attempt(2);
        assert_eq!(retry.attempt(), Some(2));
        assert_eq!(retry.criticality(), Some(Criticality::CRITICAL_PLUS));
        assert_eq!(
            BATCH.or(retry),
            BATCH.with_attempt(2),
            "taken from the scope"
        );
        assert_eq!(
            retry.or(BATCH.with_attempt(0)),
            retry,
            "the request's own wins"
        );
        let _entered = retry.enter();
        assert_eq!(RequestContext::current().attempt(), Some(2));
    }

    #[test]
    fn a_charge_marks_one_budget_and_merges_like_the_other_values() {
        let (retries, hedges) = (String::from("retries"), String::from("hedges"));
        let (retries, hedges) = (BudgetId::of(&retries), BudgetId::of(&hedges));
        assert_ne!(retries, hedges);
        assert_eq!(RequestContext::new().charged(), None);
        let charged = VIP.with_charged(retries);
        assert!(charged.is_charged_to(retries));
        assert!(
            !charged.is_charged_to(hedges),
            "another budget is not charged"
        );
        assert!(!VIP.is_charged_to(retries));
        assert_eq!(charged.criticality(), Some(Criticality::CRITICAL_PLUS));
        assert_eq!(
            charged.with_charged(hedges).charged(),
            Some(hedges),
            "the innermost mark"
        );
        assert_eq!(
            BATCH.or(charged).charged(),
            Some(retries),
            "taken from the scope"
        );
        assert_eq!(
            BATCH.with_charged(hedges).or(charged).charged(),
            Some(hedges),
            "the request's own wins"
        );
        let _entered = charged.enter();
        assert!(RequestContext::current().is_charged_to(retries));
    }
}
