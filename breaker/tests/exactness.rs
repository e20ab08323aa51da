//! Every admitted call's outcome counts exactly once, in the bucket of the instant it arrives:
//! after a quiet spell longer than the window, after a clock jump, and when the inner service
//! panics, whether or not the caller catches the panic.
//!
//! The calls are polled by hand, on a [`ManualClock`], so each test decides exactly when each
//! outcome arrives and what the clock reads then.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_breaker::{
    BreakerConfig, BreakerGroup, BreakerGroupLayer, BreakerLayer, Rejected, SreBreaker,
};
use rampart_core::{Clock, ManualClock, Outcome};
use rampart_testkit::poll::{PanicsInCall, poll_once};
use tower::{BoxError, Layer, Service, ServiceExt};

const WAIT: u8 = 0;
const FAIL: u8 = 1;
const SUCCEED: u8 = 2;
const PANIC: u8 = 3;

/// A backend whose calls stay pending until the test decides how they all end.
#[derive(Clone, Default)]
struct Backend {
    verdict: Arc<AtomicU8>,
}

impl Backend {
    /// From now on, every call of this backend ends as `verdict` when next polled.
    fn decide(&self, verdict: u8) {
        self.verdict.store(verdict, Ordering::Relaxed);
    }
}

impl Service<()> for Backend {
    type Response = ();
    type Error = std::io::Error;
    type Future = Call;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Call {
        Call {
            verdict: Arc::clone(&self.verdict),
        }
    }
}

/// One call to [`Backend`].
struct Call {
    verdict: Arc<AtomicU8>,
}

impl Future for Call {
    type Output = Result<(), std::io::Error>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.verdict.load(Ordering::Relaxed) {
            WAIT => Poll::Pending,
            FAIL => Poll::Ready(Err(std::io::Error::other("backend down"))),
            SUCCEED => Poll::Ready(Ok(())),
            _ => panic!("backend bug"),
        }
    }
}

fn breaker(config: BreakerConfig) -> (ManualClock, Arc<SreBreaker<ManualClock>>) {
    let clock = ManualClock::new();
    let breaker = config
        .with_seed(3)
        .build_with(clock.clone())
        .expect("a valid config");
    (clock, Arc::new(breaker))
}

/// Calls `service` once it is ready (the services here are always ready).
fn call<S: Service<()>>(service: &mut S) -> S::Future {
    let ready = matches!(poll_once(&mut service.ready()), Poll::Ready(Ok(_)));
    assert!(ready, "the test services are always ready");
    service.call(())
}

/// Whether `poll` is the breaker's own rejection.
fn is_rejection<T>(poll: &Poll<Result<T, BoxError>>) -> bool {
    matches!(poll, Poll::Ready(Err(error)) if error.is::<Rejected>())
}

/// Sends a burst of 100 calls through `service`, all pending; after `quiet` without traffic
/// they all fail.
fn burst_failing_after<S>(clock: &ManualClock, backend: &Backend, service: &mut S, quiet: Duration)
where
    S: Service<(), Error = BoxError>,
    S::Future: Unpin,
{
    backend.decide(WAIT);
    let mut burst: Vec<_> = (0..100).map(|_| call(service)).collect();
    for pending in &mut burst {
        assert!(poll_once(pending).is_pending());
    }
    clock.advance(quiet);
    backend.decide(FAIL);
    for failing in &mut burst {
        let poll = poll_once(failing);
        assert!(
            poll.is_ready() && !is_rejection(&poll),
            "admitted calls fail"
        );
    }
}

/// How many of a burst of 100 calls through `service`, at one instant, the breaker rejects.
fn rejected_of_a_burst<S>(service: &mut S) -> usize
where
    S: Service<(), Error = BoxError>,
    S::Future: Unpin,
{
    (0..100)
        .filter(|_| is_rejection(&poll_once(&mut call(service))))
        .count()
}

#[test]
fn failures_arriving_after_a_quiet_spell_longer_than_the_window_are_counted() {
    let window = BreakerConfig::default().window;
    let year = Duration::from_secs(365 * 24 * 3_600);
    for quiet in [
        window + Duration::from_millis(1),
        2 * window,
        60 * window,
        year,
    ] {
        let (clock, shared) = breaker(BreakerConfig::default());
        let backend = Backend::default();
        let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(backend.clone());
        clock.advance(Duration::from_secs(100)); // long idle before the burst too
        burst_failing_after(&clock, &backend, &mut service, quiet);
        let snapshot = shared.snapshot();
        assert_eq!(
            (snapshot.admitted, snapshot.accepts),
            (100, 0),
            "after a quiet spell of {quiet:?}, at {:?}: {snapshot:?}",
            clock.now()
        );
        assert!(snapshot.drop_probability > 0.99, "{snapshot:?}");
        let rejected = rejected_of_a_burst(&mut service);
        assert!(
            rejected >= 95,
            "after {quiet:?}, only {rejected} of the next 100 calls were rejected"
        );
    }
}

#[test]
fn a_keyed_breaker_counts_failures_arriving_after_a_quiet_spell() {
    let clock = ManualClock::new();
    let group = BreakerGroup::new_with(BreakerConfig::default().with_seed(3), clock.clone())
        .expect("a valid config");
    let layer = BreakerGroupLayer::new(group, |(): &()| "/search");
    let backend = Backend::default();
    let mut service = layer.layer(backend.clone());
    let quiet = 10 * BreakerConfig::default().window;
    burst_failing_after(&clock, &backend, &mut service, quiet);
    let snapshot = layer.group().get(&"/search").snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts),
        (100, 0),
        "{snapshot:?}"
    );
    let rejected = rejected_of_a_burst(&mut service);
    assert!(
        rejected >= 95,
        "only {rejected} of the next 100 calls were rejected"
    );
}

#[test]
fn outcomes_arriving_after_the_clock_stepped_back_are_counted() {
    let (clock, shared) = breaker(BreakerConfig::default());
    let backend = Backend::default();
    let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(backend.clone());
    clock.set(Duration::from_secs(50));
    let mut calls: Vec<_> = (0..30).map(|_| call(&mut service)).collect();
    clock.set(Duration::from_secs(10));
    backend.decide(SUCCEED);
    for completing in &mut calls {
        assert!(matches!(poll_once(completing), Poll::Ready(Ok(()))));
    }
    let snapshot = shared.snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts),
        (30, 30),
        "{snapshot:?}"
    );
}

#[test]
fn a_panic_caught_around_poll_counts_as_a_failure_when_the_future_is_dropped_later() {
    // Even with cancellations counted as successes: a panic is not a cancellation.
    for on_cancel in [Outcome::Ignore, Outcome::Success] {
        let (_, shared) = breaker(BreakerConfig::default().with_on_cancel(on_cancel));
        let backend = Backend::default();
        let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(backend.clone());
        let mut pending = call(&mut service);
        assert!(poll_once(&mut pending).is_pending());
        backend.decide(PANIC);
        let caught = catch_unwind(AssertUnwindSafe(|| poll_once(&mut pending)));
        assert!(caught.is_err(), "the backend panics");
        let counts = |shared: &SreBreaker<ManualClock>| {
            let snapshot = shared.snapshot();
            (snapshot.admitted, snapshot.accepts)
        };
        assert_eq!(
            counts(&shared),
            (1, 0),
            "on_cancel = {on_cancel:?}, as it panicked"
        );
        drop(pending); // later, not while unwinding
        assert_eq!(
            counts(&shared),
            (1, 0),
            "on_cancel = {on_cancel:?}, once dropped"
        );
    }
}

#[test]
fn a_keyed_breaker_counts_a_panic_caught_around_poll_as_a_failure() {
    let group = BreakerGroup::new_with(BreakerConfig::default(), ManualClock::new())
        .expect("a valid config");
    let layer = BreakerGroupLayer::new(group, |(): &()| "/search");
    let backend = Backend::default();
    backend.decide(PANIC);
    let mut service = layer.layer(backend);
    let mut panicking = call(&mut service);
    assert!(catch_unwind(AssertUnwindSafe(|| poll_once(&mut panicking))).is_err());
    drop(panicking);
    let snapshot = layer.group().get(&"/search").snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts),
        (1, 0),
        "{snapshot:?}"
    );
}

#[test]
fn a_panic_caught_around_the_inner_call_counts_as_a_failure() {
    let (_, shared) = breaker(BreakerConfig::default().with_on_cancel(Outcome::Success));
    let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(PanicsInCall);
    let caught = catch_unwind(AssertUnwindSafe(|| call(&mut service)));
    assert!(caught.is_err(), "the backend's call panics");
    let snapshot = shared.snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts),
        (1, 0),
        "{snapshot:?}"
    );
}

#[tokio::test]
async fn an_uncaught_panic_in_a_spawned_task_counts_as_a_failure() {
    let (_, shared) = breaker(BreakerConfig::default().with_on_cancel(Outcome::Success));
    let backend = Backend::default();
    backend.decide(PANIC);
    let service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(backend);
    let joined = tokio::spawn(service.oneshot(())).await;
    assert!(joined.expect_err("the task panicked").is_panic());
    let snapshot = shared.snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts),
        (1, 0),
        "{snapshot:?}"
    );
}

#[test]
fn a_cancelled_call_counts_as_on_cancel_when_it_is_dropped() {
    for (on_cancel, admitted, accepts) in [
        (Outcome::Ignore, 0, 0),
        (Outcome::Success, 1, 1),
        (Outcome::Failure, 1, 0),
    ] {
        let (clock, shared) = breaker(BreakerConfig::default().with_on_cancel(on_cancel));
        let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(Backend::default());
        let mut pending = call(&mut service);
        assert!(poll_once(&mut pending).is_pending());
        // Dropped long after the call began: it counts when it is dropped.
        clock.advance(10 * BreakerConfig::default().window);
        drop(pending);
        let snapshot = shared.snapshot();
        assert_eq!(
            (snapshot.admitted, snapshot.accepts),
            (admitted, accepts),
            "on_cancel = {on_cancel:?}: {snapshot:?}"
        );
    }
}

#[test]
fn a_panic_in_the_caller_while_a_call_is_pending_is_a_cancellation() {
    // The backend did nothing wrong: the caller panicked while the call was in flight.
    let (_, shared) = breaker(BreakerConfig::default());
    let mut service = BreakerLayer::from_breaker(Arc::clone(&shared)).layer(Backend::default());
    let mut pending = call(&mut service);
    assert!(poll_once(&mut pending).is_pending());
    let caught = catch_unwind(AssertUnwindSafe(move || {
        let _in_flight = pending;
        panic!("caller bug");
    }));
    assert!(caught.is_err());
    let snapshot = shared.snapshot();
    assert_eq!(snapshot.admitted, 0, "{snapshot:?}");
}
