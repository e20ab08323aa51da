//! [`Permit`]: an admitted request, counted in flight until it completes or is dropped, and the
//! [`BbrLimiter`] methods that hand one out.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Arrival, Clock, Criticality, RequestContext, SystemClock};

use crate::ledger::Ledger;
use crate::{BbrLimiter, CpuUsage, Overloaded, SystemCpu};

/// # Admission
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// Admits a request now, or sheds it. The request's criticality is the current
    /// [`RequestContext`]'s (the default, `critical`, outside any).
    ///
    /// On a clock with a recent time fine enough for the window (the default
    /// [`SystemClock`]'s), the request is placed at that time and its response time measured
    /// on a sample, as the layer does (see [`BbrLimiter`]'s "Clock").
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when the request is shed (never with `enforce = false`).
    #[inline]
    pub fn acquire(&self) -> Result<Permit<&Self>, Overloaded> {
        self.acquire_as(self.arrival(), RequestContext::current().criticality())
    }

    /// Admits a request at instant `now` (read from [`clock`](Self::clock)), or sheds it; its
    /// response time is measured from `now`.
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when the request is shed (never with `enforce = false`).
    #[inline]
    pub fn acquire_at(&self, now: Duration) -> Result<Permit<&Self>, Overloaded> {
        self.acquire_as(Arrival::given(now), RequestContext::current().criticality())
    }

    /// As [`acquire`](Self::acquire), with a permit that borrows nothing (for a response
    /// future that must be `'static`).
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when the request is shed (never with `enforce = false`).
    #[inline]
    pub fn acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit<C, U>, Overloaded> {
        self.acquire_as(self.arrival(), RequestContext::current().criticality())
    }

    /// As [`acquire_at`](Self::acquire_at), with a permit that borrows nothing.
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when the request is shed (never with `enforce = false`).
    #[inline]
    pub fn acquire_owned_at(
        self: &Arc<Self>,
        now: Duration,
    ) -> Result<OwnedPermit<C, U>, Overloaded> {
        self.acquire_as(Arrival::given(now), RequestContext::current().criticality())
    }

    /// Admits a request of `criticality` (`None`: it said none) arriving as `arrival`, or
    /// sheds it; `L` is the permit's kind of handle.
    #[inline]
    pub(crate) fn acquire_as<L>(
        &self,
        arrival: Arrival,
        criticality: Option<Criticality>,
    ) -> Result<Permit<L>, Overloaded>
    where
        L: BbrLimiterRef<Clock = C, Cpu = U>,
    {
        let ledger = self.admit(arrival.at, criticality)?;
        Ok(Permit {
            ledger,
            started: arrival.at,
            timed_from: arrival.timed_from,
            handle: PhantomData,
        })
    }
}

/// A [`Permit`]'s handle to its limiter: `&BbrLimiter` (from
/// [`acquire`](BbrLimiter::acquire)), `Arc<BbrLimiter>` (from
/// [`acquire_owned`](BbrLimiter::acquire_owned)), or any other pointer that dereferences to a
/// limiter.
pub trait BbrLimiterRef {
    /// The limiter's clock.
    type Clock;
    /// The limiter's CPU signal.
    type Cpu;

    /// The limiter.
    fn limiter(&self) -> &BbrLimiter<Self::Clock, Self::Cpu>;
}

impl<L, C, U> BbrLimiterRef for L
where
    L: Deref<Target = BbrLimiter<C, U>>,
{
    type Clock = C;
    type Cpu = U;

    #[inline]
    fn limiter(&self) -> &BbrLimiter<C, U> {
        self
    }
}

/// An admitted request, counted in flight until it completes or is dropped; `L` is the kind of
/// handle it was taken through: a reference ([`acquire`](BbrLimiter::acquire)), whose borrow
/// it keeps, or an `Arc` ([`OwnedPermit`], from [`acquire_owned`](BbrLimiter::acquire_owned)),
/// which borrows nothing. Either way it holds its own reference to the limiter's window, and
/// that reference is what counts it in flight.
///
/// [`complete`](Self::complete) (or [`complete_at`](Self::complete_at)) records the request's
/// response time and its pass: call it when the request has been served, whether the answer
/// is a success or an error. Dropping the permit without completing it (the request was
/// cancelled, or its handler panicked) only takes it out of flight: work nobody received is
/// not throughput, and counting it would let a server that times its clients out believe it
/// serves them.
///
/// ```
/// use rampart_core::ManualClock;
/// use rampart_ratelimit::{BbrConfig, ManualCpu};
///
/// let limiter = BbrConfig::default().build_with(ManualClock::new(), ManualCpu::new(0.0))?;
/// let served = limiter.acquire()?;
/// let cancelled = limiter.acquire()?;
/// assert_eq!(limiter.snapshot().inflight, 2);
/// served.complete(); // a pass and a response time
/// drop(cancelled); // out of flight, nothing recorded
/// assert_eq!(limiter.snapshot().inflight, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a permit counts the request in flight until it completes or is dropped"]
pub struct Permit<L: BbrLimiterRef> {
    /// The limiter's ledger: this reference counts the request in flight until it is dropped.
    ledger: Arc<Ledger<L::Clock>>,
    started: Duration,
    /// For a timed request, the precise instant its response time runs from.
    timed_from: Option<Duration>,
    /// The kind of handle the permit was taken through (a borrow of the limiter, or an owned
    /// one), which it needs no more than the ledger.
    handle: PhantomData<L>,
}

/// A [`Permit`] that borrows nothing, for `'static` response futures: it holds what it needs
/// of the limiter, and may outlive it.
pub type OwnedPermit<C = SystemClock, U = SystemCpu> = Permit<Arc<BbrLimiter<C, U>>>;

impl<L: BbrLimiterRef> Permit<L>
where
    L::Clock: Clock,
{
    /// Records the completion now: one read of the clock's recent time, or of its `now`
    /// (both for a timed request on a clock that has a recent time).
    pub fn complete(self) {
        self.ledger.complete(self.timed_from);
    }

    /// Records the completion at `now` (read from the limiter's clock), with the response time
    /// since the admission if the request is timed (one admitted at a given instant always
    /// is).
    pub fn complete_at(self, now: Duration) {
        let response_time = self.timed_from.map(|start| now.saturating_sub(start));
        self.ledger.record(now, response_time);
    }
}

impl<L: BbrLimiterRef> Permit<L> {
    /// The instant the request was admitted at (on a clock with a recent time, that time,
    /// which may be earlier than its `now` by up to the recent time's resolution).
    pub fn started(&self) -> Duration {
        self.started
    }

    /// Whether the request's response time is measured at its completion.
    pub fn is_timed(&self) -> bool {
        self.timed_from.is_some()
    }
}

impl<L: BbrLimiterRef> Drop for Permit<L> {
    fn drop(&mut self) {
        Ledger::leaving(&self.ledger);
    }
}

impl<L: BbrLimiterRef> fmt::Debug for Permit<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("started", &self.started)
            .field("timed_from", &self.timed_from)
            .finish_non_exhaustive()
    }
}
