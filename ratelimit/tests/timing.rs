//! Response times on a sample: on a clock with a recent time fine enough for the window (the
//! default `SystemClock`'s kernel coarse clock), requests are placed at that time and only a
//! sample is timed; every completion is still counted, and the limiter learns what it learns
//! when every request is timed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Clock, Deadline, DeadlineExceeded, ManualClock, RequestContext};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, BbrLimiter, ManualCpu, Permit};
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const TICK: Duration = Duration::from_millis(4);

/// A clock whose recent time is its time rounded down to 4 ms ticks, as the kernel's coarse
/// clock lags the precise one.
fn ticking() -> ManualClock {
    ManualClock::new().with_recent_resolution(TICK)
}

/// Two seconds of steady traffic: a request every 250 µs (400 per 100 ms bucket), each
/// answered 10 ms after it arrives. `advance` moves the limiter's clock.
fn steady<C: Clock>(limiter: &BbrLimiter<C, ManualCpu>, advance: impl Fn(Duration)) -> usize {
    let step = Duration::from_micros(250);
    let mut in_flight: VecDeque<(Duration, Permit<&BbrLimiter<C, ManualCpu>>)> = VecDeque::new();
    let (mut elapsed, mut timed) = (Duration::ZERO, 0);
    while elapsed < Duration::from_secs(2) {
        let permit = limiter.acquire().expect("a cool service admits everything");
        timed += usize::from(permit.is_timed());
        in_flight.push_back((elapsed + 10 * MS, permit));
        advance(step);
        elapsed += step;
        while in_flight.front().is_some_and(|(due, _)| *due <= elapsed) {
            let (_, permit) = in_flight.pop_front().expect("one is due");
            permit.complete();
        }
    }
    timed
}

#[test]
fn a_sampled_limiter_learns_the_limit_a_fully_timed_one_does() {
    let config = BbrConfig::default();
    let ticking = ticking();
    let sampled = config
        .clone()
        .build_with(ticking.clone(), ManualCpu::new(0.1))
        .expect("valid");
    let manual = ManualClock::new();
    let every = config
        .build_with(manual.clone(), ManualCpu::new(0.1))
        .expect("valid");

    let timed = steady(&sampled, |step| ticking.advance(step));
    let all = steady(&every, |step| manual.advance(step));

    // 8 000 requests over 500 ticks: a timed one per tick, and a sixteenth of the rest (469
    // expected, a standard deviation of 21).
    assert_eq!(
        all, 8_000,
        "every request is timed on a clock without a recent time"
    );
    assert!((800..=1_150).contains(&timed), "{timed} timed");
    let (sampled, every) = (sampled.snapshot(), every.snapshot());
    assert_eq!(sampled.min_rt, 10 * MS);
    assert_eq!(sampled.last_rt, 10 * MS);
    assert_eq!(sampled.max_pass, 400, "every completion is a pass");
    assert_eq!(
        (sampled.max_pass, sampled.min_rt, sampled.max_inflight),
        (every.max_pass, every.min_rt, every.max_inflight)
    );
}

#[test]
fn requests_are_placed_at_the_recent_time() {
    let clock = ticking();
    let limiter = BbrConfig::default()
        .build_with(clock.clone(), ManualCpu::new(0.1))
        .expect("valid");
    clock.advance(7 * MS);
    let permit = limiter.acquire().expect("cool");
    assert_eq!(permit.started(), 4 * MS, "the tick's start, not 7 ms");
    assert!(permit.is_timed(), "the first request of its tick");
    // A request admitted at a given instant is placed there, and timed.
    let given = limiter.acquire_at(clock.now()).expect("cool");
    assert_eq!((given.started(), given.is_timed()), (7 * MS, true));
}

#[tokio::test]
async fn the_layer_measures_a_deadline_on_the_precise_time() {
    let clock = ticking();
    let limiter = Arc::new(
        BbrConfig::default()
            .build_with(clock.clone(), ManualCpu::new(0.1))
            .expect("valid"),
    );
    clock.advance(7 * MS);
    let service = BbrLimitLayer::from_limiter(Arc::clone(&limiter))
        .layer(service_fn(|()| async { Ok::<_, tower::BoxError>(()) }));
    // Passed 1 ms ago: the recent time (4 ms) would still see 2 ms left.
    let gone = RequestContext::new().with_deadline(Deadline::at(6 * MS));
    let error = gone
        .scope(service.clone().oneshot(()))
        .await
        .expect_err("expired");
    assert!(error.is::<DeadlineExceeded>(), "{error}");
    let open = RequestContext::new().with_deadline(Deadline::at(clock.now() + MS));
    open.scope(service.oneshot(())).await.expect("1 ms left");
    assert_eq!(limiter.snapshot().inflight, 0);
}
