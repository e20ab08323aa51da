//! Static per-class partitions of one concurrency limit: a port of the idea of Netflix's
//! partitioned limiter (`AbstractPartitionedLimiter` in `concurrency-limits`), the reference
//! a criticality-aware limiter is compared with.
//!
//! The port keeps the reference's admission rule: each class owns a fixed share of the total
//! limit (at least one slot, rounded up); a request is admitted while the total in flight is
//! below the limit, whatever its class, and at or above it only while its own class holds
//! fewer than its share. A class may thus borrow idle slots while the total has room, and a
//! class under its share is admitted even when the total is full (so the total can exceed the
//! limit by the shares of the classes that arrive late, as in the reference). To be fair to it,
//! the total limit is fixed at what an adaptive limiter proves on the server instead of being
//! adapted by one of the reference's limit algorithms, and a refusal is immediate (the
//! reference's optional back-off delay is off, as it is by default).
//!
//! The request's class is the current scope's ([`current_criticality`]), read at `call`, as
//! rampart's limiter reads it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use rampart_core::{CriticalityClass, current_criticality};
use tower::load_shed::error::Overloaded;
use tower::{BoxError, Service};

/// The shared state: the total limit, each class's share of it, and what is in flight.
#[derive(Debug)]
pub(super) struct Partitions {
    limit: usize,
    /// Each class's share of `limit`, in slots, by [`CriticalityClass::index`].
    shares: [usize; 4],
    state: Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    by_class: [usize; 4],
}

impl Partitions {
    /// `limit` slots in all, split by `percent` (by class index, summing to 1): each class's
    /// share is `max(1, ceil(limit · percent))`, as in the reference.
    pub(super) fn new(limit: usize, percent: [f64; 4]) -> Arc<Self> {
        let shares = percent.map(|p| ((limit as f64 * p).ceil() as usize).max(1));
        Arc::new(Self {
            limit,
            shares,
            state: Mutex::new(InFlight::default()),
        })
    }

    /// A slot for a request of `class`, or `None` when the rule refuses it.
    fn try_acquire(self: &Arc<Self>, class: CriticalityClass) -> Option<Slot> {
        let index = class.index();
        let mut state = self.state.lock();
        if state.total >= self.limit && state.by_class[index] >= self.shares[index] {
            return None;
        }
        state.total += 1;
        state.by_class[index] += 1;
        Some(Slot {
            partitions: Arc::clone(self),
            index,
        })
    }
}

/// An admitted request's slot, given back when dropped (answered, failed or abandoned).
#[derive(Debug)]
struct Slot {
    partitions: Arc<Partitions>,
    index: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.partitions.state.lock();
        state.total -= 1;
        state.by_class[self.index] -= 1;
    }
}

/// `inner` behind the partitions.
#[derive(Debug, Clone)]
pub(super) struct PartitionLimit<S> {
    inner: S,
    partitions: Arc<Partitions>,
}

impl<S> PartitionLimit<S> {
    pub(super) fn new(inner: S, partitions: Arc<Partitions>) -> Self {
        Self { inner, partitions }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, Req> Service<Req> for PartitionLimit<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(slot) = self.partitions.try_acquire(current_criticality().class()) else {
            return Box::pin(std::future::ready(Err(Overloaded::new().into())));
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await.map_err(Into::into);
            drop(slot);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CriticalityClass::{Critical, CriticalPlus, Sheddable, SheddablePlus};

    #[test]
    fn shares_round_up_and_hold_a_slot_at_least() {
        let partitions = Partitions::new(10, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!(partitions.shares, [1, 2, 3, 4]);
        assert_eq!(
            Partitions::new(3, [0.1, 0.2, 0.3, 0.4]).shares,
            [1, 1, 1, 2]
        );
    }

    #[test]
    fn a_class_borrows_below_the_limit_and_keeps_its_share_at_it() {
        let partitions = Partitions::new(10, [0.1, 0.2, 0.3, 0.4]);
        // Sheddable fills the whole limit while the total has room...
        let held: Vec<Slot> = (0..10)
            .map(|_| partitions.try_acquire(Sheddable).expect("room"))
            .collect();
        // ...and is refused at it, being over its share.
        assert!(partitions.try_acquire(Sheddable).is_none());
        // Each other class still gets its own share, beyond the limit, and no more.
        let critical_plus: Vec<Slot> = (0..4)
            .map(|_| partitions.try_acquire(CriticalPlus).expect("its share"))
            .collect();
        assert!(partitions.try_acquire(CriticalPlus).is_none());
        assert!(partitions.try_acquire(Critical).is_some());
        assert_eq!(partitions.state.lock().total, 14);
        drop(critical_plus);
        drop(held);
        let state = partitions.state.lock();
        assert_eq!((state.total, state.by_class), (0, [0; 4]));
        drop(state);
        assert!(partitions.try_acquire(SheddablePlus).is_some());
    }
}
