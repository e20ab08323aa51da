//! [`Handler`]: the CPU-bound handler a `SimRuntime`'s stack calls, and the burn it is made of.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{BoxError, Service};

use super::NotOnWorker;
use super::shared::Shared;
use crate::Served;

/// The handler of a [`SimRuntime`](crate::SimRuntime): put the stack under test in front of
/// it, and serve the stack with [`SimRuntime::serve`](crate::SimRuntime::serve).
///
/// A call draws the request's CPU time from the runtime's `service_time` and burns it on the
/// worker polling the request's task, in `slices` pieces; after each piece but the last it
/// yields, as `tokio::task::yield_now` does, and the task goes to the back of the run queue.
/// It answers with what the request cost: [`Served::service`] is its CPU time and
/// [`Served::queued`] all the time it waited for a worker since it arrived at the runtime.
///
/// Polled anywhere but on a worker of its runtime (called outside a task of
/// [`serve`](crate::SimRuntime::serve), or after the runtime is gone) it fails with
/// [`NotOnWorker`].
#[derive(Debug, Clone)]
pub struct Handler {
    pub(super) shared: Weak<Shared>,
}

impl<Req> Service<Req> for Handler {
    type Response = Served;
    type Error = BoxError;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Req) -> HandlerFuture {
        let Some(shared) = self.shared.upgrade() else {
            return HandlerFuture::off_worker();
        };
        let mut state = shared.state.lock();
        let Some(arrived) = state.handle() else {
            return HandlerFuture::off_worker();
        };
        let service_time = state.config.service_time;
        let cpu = service_time.sample(&mut state.rng);
        let slices = state.config.slices.max(1);
        HandlerFuture {
            work: Some(Work {
                shared: self.shared.clone(),
                arrived,
                cpu,
                slices,
                done: 0,
                burning: false,
            }),
        }
    }
}

/// The response future of a [`Handler`].
///
/// # Cancellation
///
/// Dropping it stops the work at the end of the piece being burned (a worker cannot be
/// interrupted mid-poll).
#[derive(Debug)]
pub struct HandlerFuture {
    /// `None` when the handler is not on a worker of its runtime.
    work: Option<Work>,
}

#[derive(Debug)]
struct Work {
    shared: Weak<Shared>,
    arrived: Duration,
    cpu: Duration,
    slices: u32,
    /// Pieces burned so far.
    done: u32,
    /// Whether the worker is burning the next piece (the next poll comes when it is done).
    burning: bool,
}

impl Work {
    /// The CPU time of piece `n`: the pieces sum to `cpu` exactly.
    fn piece(&self, n: u32) -> Duration {
        let total = self.cpu.as_nanos();
        let slices = u128::from(self.slices);
        let until = |n: u32| total * u128::from(n) / slices;
        let nanos = until(n + 1) - until(n);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl HandlerFuture {
    fn off_worker() -> Self {
        Self { work: None }
    }
}

impl Future for HandlerFuture {
    type Output = Result<Served, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(work) = &mut self.get_mut().work else {
            return Poll::Ready(Err(NotOnWorker::new().into()));
        };
        let Some(shared) = work.shared.upgrade() else {
            return Poll::Ready(Err(NotOnWorker::new().into()));
        };
        if !work.burning {
            // On a worker: burn the next piece, then come back here.
            if !shared.state.lock().burn(work.piece(work.done)) {
                return Poll::Ready(Err(NotOnWorker::new().into()));
            }
            work.burning = true;
            return Poll::Pending;
        }
        work.burning = false;
        work.done += 1;
        if work.done < work.slices {
            // Yield: back of the run queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let latency = shared.instant().saturating_sub(work.arrived);
        Poll::Ready(Ok(Served {
            queued: latency.saturating_sub(work.cpu),
            service: work.cpu,
        }))
    }
}

/// Burns `cpu` on the worker polling the current task, then resolves (no yield in between).
#[derive(Debug)]
pub(super) struct Burn {
    shared: Weak<Shared>,
    cpu: Duration,
    asked: bool,
}

impl Burn {
    pub(super) fn new(shared: Weak<Shared>, cpu: Duration) -> Self {
        Self {
            shared,
            cpu,
            asked: false,
        }
    }
}

impl Future for Burn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let burn = self.get_mut();
        if burn.asked {
            return Poll::Ready(());
        }
        let asked = burn
            .shared
            .upgrade()
            .is_some_and(|shared| shared.state.lock().burn(burn.cpu));
        if !asked {
            return Poll::Ready(());
        }
        burn.asked = true;
        Poll::Pending
    }
}
