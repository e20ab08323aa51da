//! The SRE algorithm on a manual clock: reference probabilities, the minimum, rejection
//! weighting, expiry, dry runs, and the cached decision against the exact snapshot.

use std::time::Duration;

use rampart_breaker::{BreakerConfig, BreakerState, Rejected, Rejections, SreBreaker};
use rampart_core::{Clock, ManualClock, Outcome};

const MS: Duration = Duration::from_millis(1);

fn breaker(config: BreakerConfig) -> (ManualClock, SreBreaker<ManualClock>) {
    let clock = ManualClock::new();
    let breaker = config
        .with_seed(1)
        .build_with(clock.clone())
        .expect("a valid config");
    (clock, breaker)
}

fn record(breaker: &SreBreaker<ManualClock>, successes: u64, failures: u64) {
    for _ in 0..successes {
        breaker.record(Outcome::Success);
    }
    for _ in 0..failures {
        breaker.record(Outcome::Failure);
    }
}

#[test]
fn reproduces_the_reference_probabilities() {
    // DESIGN.md section 4: (k, accepts, requests, p), no rejections in the window.
    let cases = [
        (2.0, 50, 120, 0.1653),
        (2.0, 10, 21, 0.0455),
        (2.0, 0, 100, 0.9901),
        (5.0 / 3.0, 50, 100, 0.1650),
        (5.0 / 3.0, 50, 120, 0.3030),
        (1.5, 60, 100, 0.0990),
        (2.0, 50, 100, 0.0),
        (1.5, 100, 100, 0.0),
    ];
    for (k, accepts, requests, expected) in cases {
        let (clock, breaker) = breaker(BreakerConfig::default().with_k(k));
        record(&breaker, accepts, requests - accepts);
        let cached = breaker.drop_probability_at(clock.now());
        let exact = breaker.snapshot().drop_probability;
        assert!(
            (cached - expected).abs() < 1e-4,
            "k={k} {accepts}/{requests}: {cached}"
        );
        assert_eq!(
            cached, exact,
            "the cached decision equals the exact snapshot"
        );
    }
}

#[test]
fn below_min_requests_nothing_is_rejected_even_at_total_failure() {
    let (clock, breaker) = breaker(BreakerConfig::default().with_rejections(Rejections::Sre));
    for failures in 1..20 {
        breaker.record(Outcome::Failure);
        // A draw of 0 rejects whenever the probability is above zero.
        assert_eq!(
            breaker.allow_at_with_draw(clock.now(), 0.0),
            Ok(()),
            "{failures} failures"
        );
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The 20th failure reaches the minimum: 20 requests, no accepts, p = 20/21.
    breaker.record(Outcome::Failure);
    let snapshot = breaker.snapshot();
    assert!((snapshot.drop_probability - 20.0 / 21.0).abs() < 1e-12);
    assert_eq!(
        breaker.allow_at_with_draw(clock.now(), 0.0),
        Err(Rejected::new())
    );
    // The draw decides: just above p goes through, just below is rejected.
    let p = breaker.drop_probability_at(clock.now());
    assert_eq!(breaker.allow_at_with_draw(clock.now(), p), Ok(()));
}

#[test]
fn the_minimum_counts_rejected_calls_too() {
    // Kratos v3's vector: 10 successes and 10 failures are allowed (p = 0); one more failure
    // gives p = 1/22 and a zero draw rejects.
    let (clock, breaker) = breaker(BreakerConfig::default().with_rejections(Rejections::Sre));
    record(&breaker, 10, 10);
    assert_eq!(breaker.allow_at_with_draw(clock.now(), 0.0), Ok(()));
    breaker.record(Outcome::Failure);
    assert!((breaker.drop_probability_at(clock.now()) - 1.0 / 22.0).abs() < 1e-12);
    assert_eq!(
        breaker.allow_at_with_draw(clock.now(), 0.0),
        Err(Rejected::new())
    );
    let snapshot = breaker.snapshot();
    assert_eq!(
        (snapshot.admitted, snapshot.accepts, snapshot.rejected),
        (21, 10, 1)
    );
    // Sre counts the rejection as a request: (22 − 20) / 23.
    assert!((snapshot.drop_probability - 2.0 / 23.0).abs() < 1e-12);
}

#[test]
fn each_mode_weighs_rejections_as_specified() {
    // 40 failures, then 50 calls rejected (zero draws), then 60 successes: 100 admitted,
    // 60 accepted (s = 0.6), 50 rejected; k = 2.
    let expected = [
        // (mode, weight, requests, p)
        (Rejections::Sre, 1.0, 150.0, (150.0 - 120.0) / 151.0),
        (Rejections::Ignore, 0.0, 100.0, 0.0),
        // w = (1 − 0.6) / (1 − 1/2)
        (Rejections::Adaptive, 0.8, 140.0, (140.0 - 120.0) / 141.0),
    ];
    for (mode, weight, requests, p) in expected {
        let (clock, breaker) = breaker(BreakerConfig::default().with_rejections(mode));
        record(&breaker, 0, 40);
        if mode == Rejections::Adaptive {
            // The bucket's first would-be rejection goes through as its probe.
            assert_eq!(breaker.allow_at_with_draw(clock.now(), 0.0), Ok(()));
        }
        for _ in 0..50 {
            assert_eq!(
                breaker.allow_at_with_draw(clock.now(), 0.0),
                Err(Rejected::new()),
                "{mode:?}"
            );
        }
        record(&breaker, 60, 0);
        let snapshot = breaker.snapshot();
        assert_eq!(
            (snapshot.admitted, snapshot.accepts, snapshot.rejected),
            (100, 60, 50)
        );
        assert!(
            (snapshot.rejection_weight - weight).abs() < 1e-12,
            "{mode:?}"
        );
        assert!(
            (snapshot.requests - requests).abs() < 1e-9,
            "{mode:?}: {}",
            snapshot.requests
        );
        assert!((snapshot.drop_probability - p).abs() < 1e-12, "{mode:?}");
    }
}

#[test]
fn adaptive_lets_one_probe_per_bucket_through_while_throttling() {
    let (clock, adaptive) = breaker(BreakerConfig::default());
    record(&adaptive, 0, 100);
    for bucket in 0..5 {
        let outcomes: Vec<_> = (0..50)
            .map(|_| adaptive.allow_at_with_draw(clock.now(), 0.0))
            .collect();
        assert_eq!(outcomes[0], Ok(()), "bucket {bucket}: the probe");
        assert!(
            outcomes[1..].iter().all(Result::is_err),
            "bucket {bucket}: only one probe"
        );
        clock.advance(300 * MS);
    }
    // Sre and Ignore have no probes: a zero draw always rejects.
    let (clock, sre) = breaker(BreakerConfig::default().with_rejections(Rejections::Sre));
    record(&sre, 0, 100);
    assert_eq!(
        sre.allow_at_with_draw(clock.now(), 0.0),
        Err(Rejected::new())
    );
}

#[test]
fn adaptive_judges_by_the_newest_buckets_and_reopens_once_they_succeed() {
    let (clock, breaker) = breaker(BreakerConfig::default());
    // An outage: 100 failures and 1 000 rejections spread over the window.
    for _ in 0..10 {
        record(&breaker, 0, 10);
        for _ in 0..100 {
            let _ = breaker.allow_at_with_draw(clock.now(), 0.0);
        }
        clock.advance(300 * MS);
    }
    let throttled = breaker.snapshot();
    assert_eq!(throttled.rejection_weight, 1.0);
    assert!(throttled.drop_probability > 0.99, "{throttled:?}");
    // The backend recovers: the last bucket and the current one hold only successes. The
    // older failures still fill the window, but the rejections no longer count.
    // 70 failures remain in the window; 80 successes outweigh them (150 ≤ 2 × 80).
    clock.advance(300 * MS);
    record(&breaker, 40, 0);
    clock.advance(300 * MS);
    record(&breaker, 40, 0);
    let recovering = breaker.snapshot();
    assert_eq!(recovering.rejection_weight, 0.0, "{recovering:?}");
    assert_eq!(breaker.state(), BreakerState::Closed, "{recovering:?}");
}

#[test]
fn the_observed_rejection_rate_matches_the_probability() {
    // Ignore mode keeps p fixed while rejections accumulate: 1 000 admitted, 343 accepted,
    // k = 2: p = (1000 − 686) / 1001.
    let (clock, breaker) = breaker(BreakerConfig::default().with_rejections(Rejections::Ignore));
    record(&breaker, 343, 657);
    let p = breaker.drop_probability_at(clock.now());
    assert!((p - 314.0 / 1001.0).abs() < 1e-12);
    let rejected = (0..100_000)
        .filter(|_| breaker.allow_at(clock.now()).is_err())
        .count();
    let rate = rejected as f64 / 100_000.0;
    assert!((rate - p).abs() < 0.01 * p, "rate {rate} against p {p}");
    assert_eq!(breaker.snapshot().rejected, rejected as u64);
}

#[test]
fn throttling_ends_when_the_failures_leave_the_window() {
    let (clock, breaker) = breaker(BreakerConfig::default());
    record(&breaker, 0, 100);
    assert!(matches!(breaker.state(), BreakerState::Throttling { .. }));
    clock.advance(2_700 * MS);
    assert!(
        matches!(breaker.state(), BreakerState::Throttling { .. }),
        "2.7 s: still in the window"
    );
    clock.advance(300 * MS);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "3 s: the window has moved past them"
    );
    assert_eq!(breaker.snapshot().admitted, 0);
}

#[test]
fn a_dry_run_rejects_nothing_but_reports_the_same_probability() {
    let (clock, enforcing) = breaker(BreakerConfig::default());
    let (_, dry) = breaker(BreakerConfig::default().with_enforce(false));
    dry.clock().set(clock.now());
    record(&enforcing, 30, 70);
    record(&dry, 30, 70);
    let p = enforcing.drop_probability_at(clock.now());
    assert!(p > 0.0);
    assert_eq!(dry.drop_probability_at(clock.now()), p);
    assert_eq!(dry.snapshot().state, enforcing.snapshot().state);
    for _ in 0..1_000 {
        assert_eq!(dry.allow_at_with_draw(clock.now(), 0.0), Ok(()));
    }
    assert_eq!(
        dry.snapshot().rejected,
        0,
        "a dry run's rejections do not enter the window"
    );
    assert_eq!(dry.drop_probability_at(clock.now()), p);
}

#[test]
fn ignored_outcomes_are_not_counted() {
    let (_, breaker) = breaker(BreakerConfig::default());
    breaker.record(Outcome::Ignore);
    breaker.record(Outcome::Success);
    assert_eq!(breaker.snapshot().admitted, 1);
}

#[test]
fn the_cached_decision_tracks_the_exact_snapshot_through_time() {
    let (clock, breaker) = breaker(BreakerConfig::default().with_window(Duration::from_secs(1), 5));
    let mut draws = fastrand::Rng::with_seed(9);
    for step in 0..5_000_u32 {
        match draws.u8(0..10) {
            0..=3 => breaker.record(Outcome::Failure),
            4..=6 => breaker.record(Outcome::Success),
            7 => {
                let _ = breaker.allow_at_with_draw(clock.now(), draws.f64());
            }
            _ => clock.advance(Duration::from_micros(draws.u64(0..150_000))),
        }
        let now = clock.now();
        let cached = breaker.drop_probability_at(now);
        assert_eq!(
            cached,
            breaker.snapshot_at(now).drop_probability,
            "step {step} at {now:?}"
        );
    }
}

#[test]
fn concurrent_callers_lose_no_count() {
    let (_, breaker) = breaker(BreakerConfig::default().with_rejections(Rejections::Ignore));
    let breaker = std::sync::Arc::new(breaker);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let breaker = std::sync::Arc::clone(&breaker);
            std::thread::spawn(move || {
                for i in 0..25_000 {
                    let outcome = if (i + thread) % 4 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    };
                    breaker.record(outcome);
                    let _ = breaker.allow();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.admitted, snapshot.accepts), (100_000, 25_000));
}
