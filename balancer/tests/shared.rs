//! `SharedP2c`, the handle many tasks share: exact counts (cancellation, errors, panics in
//! `call` and in a poll), honest readiness (an endpoint not ready is never picked; a waiting
//! handle is woken when one turns ready or is inserted), discovery applied by any handle, and
//! an endpoint whose `poll_ready` fails dropped.
//!
//! The requests are polled by hand, so each test decides exactly how and when each one ends.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_balancer::{
    EndpointSnapshot, NoEndpoints, P2cConfig, PeakSuccess, SharedP2c, WhenEmpty,
};
use rampart_core::{Clock, ManualClock};
use rampart_testkit::model::{self, Cancellation};
use rampart_testkit::poll::{PanicsInCall, poll_once};
use rampart_testkit::verdict::{Undecided, Verdict};
use tower::discover::Change;
use tower::{BoxError, Service, ServiceExt};

type Balancer<Svc, C = ManualClock> = SharedP2c<usize, Svc, C, PeakSuccess>;

fn config() -> P2cConfig {
    P2cConfig::default().with_seed(9)
}

/// A balancer over `services` keyed 0.., reading `clock`.
fn balancer<Svc, C>(services: Vec<Svc>, clock: C, config: P2cConfig) -> Balancer<Svc, C>
where
    Svc: Send + 'static,
    C: Clock,
{
    let balancer = SharedP2c::empty_with(config, clock, PeakSuccess).expect("a valid config");
    for (key, service) in services.into_iter().enumerate() {
        balancer.insert(key, service);
    }
    balancer
}

/// Polls `balancer` ready once with `waker`.
fn poll_ready<Svc, C>(balancer: &mut Balancer<Svc, C>, waker: &Waker) -> Poll<Result<(), BoxError>>
where
    Svc: Service<()> + Clone,
    Svc::Error: Into<BoxError>,
    C: Clock + Clone,
{
    Service::<()>::poll_ready(balancer, &mut Context::from_waker(waker))
}

/// Sends one request through `balancer` once it is ready at once.
fn call<Svc, C>(balancer: &mut Balancer<Svc, C>) -> <Balancer<Svc, C> as Service<()>>::Future
where
    Svc: Service<()> + Clone,
    Svc::Error: Into<BoxError>,
    C: Clock + Clone,
{
    let ready = matches!(poll_ready(balancer, Waker::noop()), Poll::Ready(Ok(())));
    assert!(ready, "an endpoint is ready");
    balancer.call(())
}

/// The snapshot of `key`'s endpoint.
fn endpoint<Svc, C: Clock>(balancer: &Balancer<Svc, C>, key: usize) -> EndpointSnapshot<usize> {
    let snapshot = balancer.snapshot();
    snapshot.into_iter().find(|e| e.key == key).expect("known")
}

#[test]
fn a_cancelled_request_changes_nothing_but_the_in_flight_count() {
    let clock = ManualClock::new();
    let mut balancer = balancer(vec![Undecided::default()], clock.clone(), config());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(endpoint(&balancer, 0).inflight, 1);
    clock.advance(Duration::from_secs(5));
    drop(pending);
    let seen = endpoint(&balancer, 0);
    assert_eq!(
        (seen.success, seen.lag, seen.inflight, seen.picks),
        (1.0, Duration::ZERO, 0, 1),
        "{seen:?}"
    );
}

#[test]
fn an_error_is_a_failure_and_leaves_flight() {
    let clock = ManualClock::new();
    let backend = Undecided::default();
    let mut balancer = balancer(vec![backend.clone()], clock.clone(), config());
    let mut failing = call(&mut balancer);
    clock.advance(Duration::from_millis(25));
    backend.decide(Verdict::Fail);
    assert!(matches!(poll_once(&mut failing), Poll::Ready(Err(_))));
    let seen = endpoint(&balancer, 0);
    assert_eq!(
        (seen.success, seen.lag, seen.inflight),
        (0.0, Duration::from_millis(25), 0),
        "{seen:?}"
    );
}

#[test]
fn a_panic_caught_around_poll_counts_as_a_failure_when_the_future_is_dropped_later() {
    let clock = ManualClock::new();
    let backend = Undecided::default();
    let mut balancer = balancer(vec![backend.clone()], clock.clone(), config());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    clock.advance(Duration::from_millis(40));
    backend.decide(Verdict::Panic);
    let caught = catch_unwind(AssertUnwindSafe(|| poll_once(&mut pending)));
    assert!(caught.is_err(), "the endpoint panics");
    clock.advance(Duration::from_secs(5));
    drop(pending);
    let seen = endpoint(&balancer, 0);
    assert_eq!(
        (seen.success, seen.lag, seen.inflight),
        (0.0, Duration::from_millis(40), 0),
        "{seen:?}"
    );
}

#[test]
fn a_panic_caught_around_the_endpoints_call_counts_as_a_failure() {
    let mut balancer = balancer(vec![PanicsInCall], ManualClock::new(), config());
    let caught = catch_unwind(AssertUnwindSafe(|| call(&mut balancer)));
    assert!(caught.is_err(), "the endpoint's call panics");
    let seen = endpoint(&balancer, 0);
    assert_eq!((seen.success, seen.inflight), (0.0, 0), "{seen:?}");
    // The handle goes on: its pick was taken by the call that panicked.
    assert!(matches!(
        poll_ready(&mut balancer, Waker::noop()),
        Poll::Ready(Ok(()))
    ));
}

#[tokio::test]
async fn an_uncaught_panic_in_a_spawned_task_counts_as_a_failure() {
    let backend = Undecided::default();
    backend.decide(Verdict::Panic);
    let mut balancer = balancer(vec![backend], ManualClock::new(), config());
    let joined = tokio::spawn(call(&mut balancer)).await;
    assert!(joined.expect_err("the task panicked").is_panic());
    let seen = endpoint(&balancer, 0);
    assert_eq!((seen.success, seen.inflight), (0.0, 0), "{seen:?}");
}

#[test]
fn a_panic_in_the_caller_while_a_request_is_pending_is_a_cancellation() {
    let mut balancer = balancer(vec![Undecided::default()], ManualClock::new(), config());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    model::cancel(pending, Cancellation::Unwound);
    let seen = endpoint(&balancer, 0);
    assert_eq!((seen.success, seen.inflight), (1.0, 0), "{seen:?}");
}

#[test]
fn a_handle_dropped_between_poll_ready_and_call_sends_nothing() {
    let mut balancer = balancer(vec![Undecided::default()], ManualClock::new(), config());
    let mut handle = balancer.clone();
    assert!(matches!(
        poll_ready(&mut handle, Waker::noop()),
        Poll::Ready(Ok(()))
    ));
    drop(handle);
    let seen = endpoint(&balancer, 0);
    assert_eq!((seen.picks, seen.inflight), (0, 0), "{seen:?}");
    drop(call(&mut balancer));
    assert_eq!(endpoint(&balancer, 0).picks, 1);
}

/// An endpoint whose clones share one gate: ready while it is open, pending (their wakers
/// kept) while it is shut, failing once broken. Each call counts on the clone's shared count.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<GateState>,
}

#[derive(Default)]
struct GateState {
    shut: AtomicBool,
    broken: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    calls: AtomicUsize,
    polls: AtomicUsize,
}

impl Gate {
    fn shut() -> Self {
        let gate = Self::default();
        gate.state.shut.store(true, Ordering::Relaxed);
        gate
    }

    fn set_shut(&self, shut: bool) {
        self.state.shut.store(shut, Ordering::Relaxed);
        if !shut {
            for waker in std::mem::take(&mut *self.state.wakers.lock()) {
                waker.wake();
            }
        }
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::Relaxed)
    }
}

impl Service<()> for Gate {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.state.polls.fetch_add(1, Ordering::Relaxed);
        if self.state.broken.load(Ordering::Relaxed) {
            return Poll::Ready(Err("broken".into()));
        }
        if self.state.shut.load(Ordering::Relaxed) {
            self.state.wakers.lock().push(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.state.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Woken(AtomicUsize);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Woken {
    fn pair() -> (Arc<Self>, Waker) {
        let woken = Arc::new(Self::default());
        (Arc::clone(&woken), Waker::from(woken))
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

fn waiting() -> P2cConfig {
    config().with_when_empty(WhenEmpty::Wait)
}

#[test]
fn an_endpoint_not_ready_is_never_picked_and_a_waiting_handle_wakes_when_one_turns_ready() {
    let (a, b) = (Gate::shut(), Gate::default());
    let mut balancer = balancer(vec![a.clone(), b.clone()], ManualClock::new(), waiting());
    for _ in 0..100 {
        drop(call(&mut balancer));
    }
    assert_eq!((a.calls(), b.calls()), (0, 100));
    assert_eq!(balancer.ready_len(), 1);
    assert!(!endpoint(&balancer, 0).ready && endpoint(&balancer, 1).ready);

    // Both shut: the handle waits, and wakes when one opens.
    b.set_shut(true);
    let (woken, waker) = Woken::pair();
    let mut other = balancer.clone();
    assert!(poll_ready(&mut balancer, &waker).is_pending());
    let (other_woken, other_waker) = Woken::pair();
    assert!(poll_ready(&mut other, &other_waker).is_pending());
    assert_eq!(balancer.ready_len(), 0);
    a.set_shut(false);
    assert_eq!(
        (woken.count(), other_woken.count()),
        (1, 1),
        "every waiting handle"
    );
    assert!(matches!(
        poll_ready(&mut balancer, &waker),
        Poll::Ready(Ok(()))
    ));
    drop(balancer.call(()));
    assert!(matches!(
        poll_ready(&mut other, &other_waker),
        Poll::Ready(Ok(()))
    ));
    drop(other.call(()));
    assert_eq!((a.calls(), b.calls()), (2, 100));
}

#[test]
fn a_waiting_handle_is_woken_by_an_insert() {
    let mut balancer: Balancer<Gate> = balancer(Vec::new(), ManualClock::new(), waiting());
    let (woken, waker) = Woken::pair();
    assert!(poll_ready(&mut balancer, &waker).is_pending());
    let gate = Gate::default();
    balancer.clone().insert(7, gate.clone());
    assert_eq!(woken.count(), 1);
    assert!(matches!(
        poll_ready(&mut balancer, &waker),
        Poll::Ready(Ok(()))
    ));
    drop(balancer.call(()));
    assert_eq!(gate.calls(), 1);
}

#[test]
fn an_endpoint_whose_poll_ready_fails_is_dropped_until_inserted_again() {
    let (a, b) = (Gate::default(), Gate::default());
    let mut balancer = balancer(vec![a.clone(), b.clone()], ManualClock::new(), config());
    a.state.broken.store(true, Ordering::Relaxed);
    for _ in 0..20 {
        drop(call(&mut balancer));
    }
    assert_eq!((a.calls(), b.calls(), balancer.len()), (0, 20, 1));
    a.state.broken.store(false, Ordering::Relaxed);
    balancer.insert(0, a.clone());
    assert_eq!(balancer.len(), 2);
    b.set_shut(true);
    drop(call(&mut balancer));
    assert_eq!(a.calls(), 1);
}

#[test]
fn a_reinserted_key_keeps_its_statistics_and_a_removed_one_loses_them() {
    let clock = ManualClock::new();
    let backend = Undecided::default();
    let mut balancer = balancer(vec![backend.clone()], clock.clone(), config());
    backend.decide(Verdict::Succeed);
    clock.advance(Duration::from_millis(1));
    let mut answered = call(&mut balancer);
    clock.advance(Duration::from_millis(30));
    assert!(matches!(poll_once(&mut answered), Poll::Ready(Ok(()))));
    let before = endpoint(&balancer, 0);
    balancer.insert(0, backend.clone());
    let after = endpoint(&balancer, 0);
    assert_eq!((after.lag, after.picks), (before.lag, 1));
    assert!(!after.ready, "a new service is polled ready anew");
    assert!(balancer.remove(&0));
    assert!(!balancer.remove(&0));
    balancer.insert(0, backend);
    let fresh = endpoint(&balancer, 0);
    assert_eq!(
        (fresh.picks, fresh.lag),
        (0, Duration::ZERO),
        "new statistics: no warm peer to start from, its old self is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn with_no_endpoint_it_fails_after_the_wait() {
    let balancer: Balancer<Gate> = balancer(Vec::new(), ManualClock::new(), config());
    let started = tokio::time::Instant::now();
    let err = balancer.oneshot(()).await.expect_err("nothing to send to");
    assert!(err.is::<NoEndpoints>(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn discovery_is_drained_by_any_handle_and_a_removed_endpoint_finishes_its_requests() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let discover = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let balancer = SharedP2c::new(discover, config()).expect("valid");
    let backend = Undecided::default();
    tx.send(Ok::<_, std::convert::Infallible>(Change::Insert(
        "a",
        backend.clone(),
    )))
    .expect("open");
    let mut first = balancer.clone();
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(first.ready().await.expect("ready").call(()));
    }
    assert_eq!(balancer.snapshot()[0].inflight, 3);
    tx.send(Ok(Change::Remove("a"))).expect("open");
    // Another handle applies the removal: nothing is left.
    let err = balancer.clone().oneshot(()).await.expect_err("removed");
    assert!(err.is::<NoEndpoints>(), "{err}");
    assert!(balancer.is_empty());
    backend.decide(Verdict::Succeed);
    for mut call in pending {
        assert!(matches!(poll_once(&mut call), Poll::Ready(Ok(()))));
    }
}
