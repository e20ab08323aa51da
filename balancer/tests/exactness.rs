//! Every request's end counts exactly once on its endpoint: a panic in the endpoint (in its
//! `call` or in a poll of its future) is a failure whether or not the caller catches it, a
//! cancellation changes nothing but the in-flight count, and observing an endpoint never
//! panics, however far its clock has run.
//!
//! The requests are polled by hand, so each test decides exactly how and when each one ends.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use rampart_balancer::{EndpointSnapshot, P2c, P2cConfig, PeakSuccess};
use rampart_core::{Clock, ManualClock};
use rampart_testkit::model::{self, Cancellation};
use rampart_testkit::poll::{PanicsInCall, poll_once};
use rampart_testkit::verdict::{Undecided, Verdict};
use tower::discover::ServiceList;
use tower::{Service, ServiceExt};

type Balancer<S, C = ManualClock> = P2c<ServiceList<Vec<S>>, (), C, PeakSuccess>;

/// A balancer over the one endpoint `service`, reading `clock`.
fn balancer<S: Service<()>, C: Clock>(service: S, clock: C) -> Balancer<S, C> {
    P2c::new_with(
        ServiceList::new::<()>(vec![service]),
        P2cConfig::default().with_seed(9),
        clock,
        PeakSuccess,
    )
    .expect("a valid config")
}

/// Sends one request through `balancer` once it is ready (its endpoint always is).
fn call<S, C>(balancer: &mut Balancer<S, C>) -> <Balancer<S, C> as Service<()>>::Future
where
    S: Service<()>,
    S::Error: Into<tower::BoxError>,
    C: Clock + Clone,
{
    let ready = matches!(poll_once(&mut balancer.ready()), Poll::Ready(Ok(_)));
    assert!(ready, "the endpoint is always ready");
    balancer.call(())
}

/// The one endpoint's snapshot.
fn endpoint<S: Service<()>, C: Clock>(balancer: &Balancer<S, C>) -> EndpointSnapshot<usize> {
    let mut snapshot = balancer.snapshot();
    assert_eq!(snapshot.len(), 1);
    snapshot.remove(0)
}

#[test]
fn a_panic_caught_around_poll_counts_as_a_failure_when_the_future_is_dropped_later() {
    let clock = ManualClock::new();
    let backend = Undecided::default();
    let mut balancer = balancer(backend.clone(), clock.clone());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    clock.advance(Duration::from_millis(40));
    backend.decide(Verdict::Panic);
    let caught = catch_unwind(AssertUnwindSafe(|| poll_once(&mut pending)));
    assert!(caught.is_err(), "the endpoint panics");
    clock.advance(Duration::from_secs(5));
    drop(pending); // later, not while unwinding
    let seen = endpoint(&balancer);
    // The first completion sets the EWMAs: a failure after 40 ms.
    assert_eq!(
        (seen.success, seen.lag, seen.inflight),
        (0.0, Duration::from_millis(40), 0),
        "{seen:?}"
    );
}

#[test]
fn a_panic_caught_around_the_endpoints_call_counts_as_a_failure() {
    let mut balancer = balancer(PanicsInCall, ManualClock::new());
    let caught = catch_unwind(AssertUnwindSafe(|| call(&mut balancer)));
    assert!(caught.is_err(), "the endpoint's call panics");
    let seen = endpoint(&balancer);
    assert_eq!((seen.success, seen.inflight), (0.0, 0), "{seen:?}");
}

#[tokio::test]
async fn an_uncaught_panic_in_a_spawned_task_counts_as_a_failure() {
    let backend = Undecided::default();
    backend.decide(Verdict::Panic);
    let mut balancer = balancer(backend, ManualClock::new());
    let joined = tokio::spawn(call(&mut balancer)).await;
    assert!(joined.expect_err("the task panicked").is_panic());
    let seen = endpoint(&balancer);
    assert_eq!((seen.success, seen.inflight), (0.0, 0), "{seen:?}");
}

#[test]
fn a_cancelled_request_changes_nothing_but_the_in_flight_count() {
    let clock = ManualClock::new();
    let mut balancer = balancer(Undecided::default(), clock.clone());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(endpoint(&balancer).inflight, 1);
    clock.advance(Duration::from_secs(5));
    drop(pending);
    let seen = endpoint(&balancer);
    assert_eq!(
        (seen.success, seen.lag, seen.inflight),
        (1.0, Duration::ZERO, 0),
        "{seen:?}"
    );
}

#[test]
fn a_panic_in_the_caller_while_a_request_is_pending_is_a_cancellation() {
    // The endpoint did nothing wrong: the caller panicked while the request was in flight.
    let mut balancer = balancer(Undecided::default(), ManualClock::new());
    let mut pending = call(&mut balancer);
    assert!(poll_once(&mut pending).is_pending());
    // Dropped while the caller unwinds from its own panic (which the helper asserts).
    model::cancel(pending, Cancellation::Unwound);
    let seen = endpoint(&balancer);
    assert_eq!((seen.success, seen.inflight), (1.0, 0), "{seen:?}");
}

/// A clock that reads zero until it is sent to the end of time.
#[derive(Clone, Default)]
struct EndOfTime {
    ended: Arc<AtomicBool>,
}

impl Clock for EndOfTime {
    fn now(&self) -> Duration {
        if self.ended.load(Ordering::Relaxed) {
            Duration::MAX
        } else {
            Duration::ZERO
        }
    }
}

#[test]
fn the_snapshot_saturates_a_lag_beyond_durations_range() {
    let clock = EndOfTime::default();
    let backend = Undecided::default();
    let mut balancer = balancer(backend.clone(), clock.clone());
    let mut slow = call(&mut balancer); // placed at zero
    let mut stalled = call(&mut balancer); // still in flight at the end
    clock.ended.store(true, Ordering::Relaxed);
    assert_eq!(endpoint(&balancer).inflight, 2);
    backend.decide(Verdict::Succeed);
    assert!(matches!(poll_once(&mut slow), Poll::Ready(Ok(()))));
    // Its latency, `Duration::MAX`, is beyond what `Duration` holds once rounded to `f64`.
    let seen = endpoint(&balancer);
    assert_eq!((seen.lag, seen.inflight), (Duration::MAX, 1), "{seen:?}");
    assert!(seen.score.is_finite() && seen.score > 0.0, "{seen:?}");
    backend.decide(Verdict::Wait);
    assert!(poll_once(&mut stalled).is_pending());
    drop(stalled);
    assert_eq!(endpoint(&balancer).inflight, 0);
    // And the balancer goes on balancing.
    backend.decide(Verdict::Succeed);
    assert!(matches!(
        poll_once(&mut call(&mut balancer)),
        Poll::Ready(Ok(()))
    ));
}
