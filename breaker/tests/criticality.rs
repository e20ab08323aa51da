//! The breaker's rejections fall on the least critical calls first: a backend shedding the
//! sheddable calls of a client, the same traffic without criticalities, one band alone, and the
//! layer reading the request's context.

use std::sync::Arc;
use std::time::Duration;

use rampart_breaker::{BreakerConfig, BreakerLayer, Rejected, Rejections, SreBreaker};
use rampart_core::{Clock, Criticality, CriticalityClass, ManualClock, Outcome, RequestContext};
use tower::{BoxError, Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// Calls refused locally and calls made, of one class.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    refused: u64,
    calls: u64,
}

impl Tally {
    fn refusal_rate(self) -> f64 {
        self.refused as f64 / self.calls as f64
    }
}

/// What a run of [`shedding_backend`] saw.
#[derive(Debug)]
struct Run {
    sheddable: Tally,
    critical: Tally,
    /// Calls that reached the backend, and those it refused.
    admitted: u64,
    failed: u64,
}

/// 1 000 calls per second for 60 s, 60 % of them sheddable and 40 % critical, at a backend
/// that sheds every sheddable call (fails it at once) and serves every critical one. With
/// `classes`, each call says its class; without, every call is the default (critical) and the
/// breaker cannot tell them apart. The breaker draws from `seed`.
fn shedding_backend(classes: bool, seed: u64) -> Run {
    let clock = ManualClock::new();
    let breaker = BreakerConfig::default()
        .with_seed(seed)
        .build_with(clock.clone())
        .expect("valid");
    let mut run = Run {
        sheddable: Tally::default(),
        critical: Tally::default(),
        admitted: 0,
        failed: 0,
    };
    for call in 0..60_000_u64 {
        clock.advance(MS);
        let now = clock.now();
        let sheddable = call % 5 < 3;
        let criticality = if sheddable {
            Criticality::SHEDDABLE
        } else {
            Criticality::CRITICAL
        };
        let verdict = if classes {
            breaker.allow_for_at(now, criticality)
        } else {
            breaker.allow_at(now)
        };
        let tally = if sheddable {
            &mut run.sheddable
        } else {
            &mut run.critical
        };
        tally.calls += 1;
        if verdict.is_err() {
            tally.refused += 1;
            continue;
        }
        run.admitted += 1;
        let outcome = if sheddable {
            run.failed += 1;
            Outcome::Failure
        } else {
            Outcome::Success
        };
        breaker.record_for_at(now, criticality, outcome);
    }
    run
}

#[test]
fn critical_calls_are_almost_never_refused_while_the_backend_sheds_half_of_what_it_gets() {
    for seed in 1..=3 {
        let run = shedding_backend(true, seed);
        let shed_share = run.failed as f64 / run.admitted as f64;
        println!(
            "seed {seed}, with classes: critical refused {:.3} %, sheddable {:.1} %, the \
             backend shed {:.1} % of what it got",
            run.critical.refusal_rate() * 100.0,
            run.sheddable.refusal_rate() * 100.0,
            shed_share * 100.0
        );
        // The breaker throttles to k = 2 calls per accept: p ≈ 0.2 of all calls, which is a
        // third of the sheddable ones; the backend then sheds half of what reaches it.
        assert!((0.45..=0.55).contains(&shed_share), "{shed_share}");
        assert!(
            run.critical.refusal_rate() <= 0.01,
            "seed {seed}: critical calls refused locally: {:?}",
            run.critical
        );
        assert!(
            run.sheddable.refusal_rate() >= 0.25,
            "seed {seed}: sheddable calls refused locally: {:?}",
            run.sheddable
        );
    }
}

#[test]
fn without_classes_the_same_traffic_loses_critical_calls_as_often_as_any() {
    // The same run with every call the default: the rejections fall on all calls alike, and
    // since they also cut the critical calls' accepts, the backend looks as if it served less
    // than 1/k of its calls and the breaker refuses nearly everything.
    let run = shedding_backend(false, 1);
    println!(
        "without classes: critical refused {:.1} %, sheddable {:.1} %",
        run.critical.refusal_rate() * 100.0,
        run.sheddable.refusal_rate() * 100.0
    );
    assert!(run.critical.refusal_rate() >= 0.5, "{:?}", run.critical);
    let gap = (run.critical.refusal_rate() - run.sheddable.refusal_rate()).abs();
    assert!(gap < 0.02, "{run:?}");
}

/// A breaker whose backend fails 70 % of calls, every 1 ms for 20 s: each call asked with
/// `ask`, the decisions returned.
fn decisions(ask: impl Fn(&SreBreaker<ManualClock>, Duration) -> bool) -> Vec<bool> {
    let clock = ManualClock::new();
    let breaker = BreakerConfig::default()
        .with_seed(5)
        .build_with(clock.clone())
        .expect("valid");
    (0..20_000_u64)
        .map(|call| {
            clock.advance(MS);
            let now = clock.now();
            let allowed = ask(&breaker, now);
            if allowed {
                let outcome = if call % 10 < 7 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                breaker.record_at(now, outcome);
            }
            allowed
        })
        .collect()
}

#[test]
fn calls_all_of_one_band_are_throttled_exactly_as_calls_without_a_criticality() {
    let blind = decisions(|breaker, now| breaker.allow_at(now).is_ok());
    assert!(
        blind.iter().filter(|allowed| !**allowed).count() > 1_000,
        "the breaker throttles"
    );
    for criticality in [
        Criticality::SHEDDABLE,
        Criticality::with_level(CriticalityClass::SheddablePlus, 100),
        Criticality::CRITICAL_PLUS,
    ] {
        let one_band = decisions(|breaker, now| breaker.allow_for_at(now, criticality).is_ok());
        assert!(
            one_band == blind,
            "{criticality}: the same draws, the same decisions"
        );
    }
}

#[test]
fn the_drop_probability_is_allocated_from_the_lowest_band_upward() {
    let clock = ManualClock::new();
    // A dry run: decisions are computed and counted, none applied, so the window keeps the
    // outcomes below and the calls below all reach the decision.
    let breaker = BreakerConfig::default()
        .with_enforce(false)
        .build_with(clock.clone())
        .expect("valid");
    let bucket = breaker.config().window_config().bucket_duration;
    for _ in 0..60 {
        breaker.record(Outcome::Failure);
    }
    for _ in 0..40 {
        breaker.record(Outcome::Success);
    }
    let now = clock.now();
    let total = breaker.drop_probability_at(now);
    assert!((total - 20.0 / 101.0).abs() < 1e-12, "{total}");
    // No bucket has ended: no rates to allocate by, every band gets the total.
    for class in CriticalityClass::ALL {
        assert_eq!(
            breaker.drop_probability_for_at(now, class.into()),
            total,
            "{class}"
        );
    }
    // 30 sheddable, 10 sheddable-plus and 60 critical calls, then the bucket ends.
    for (criticality, calls) in [
        (Criticality::SHEDDABLE, 30),
        (Criticality::SHEDDABLE_PLUS, 10),
        (Criticality::CRITICAL, 60),
    ] {
        for _ in 0..calls {
            assert_eq!(breaker.allow_for_at(now, criticality), Ok(()), "a dry run");
        }
    }
    clock.advance(bucket);
    let now = clock.now();
    assert_eq!(breaker.drop_probability_at(now), total, "the same window");
    let of = |criticality| breaker.drop_probability_for_at(now, criticality);
    // Shares 0.3, 0.1 and 0.6: the sheddable band takes all of p ≈ 0.198, p / 0.3 of it.
    assert!((of(Criticality::SHEDDABLE) - total / 0.3).abs() < 1e-9);
    assert_eq!(of(Criticality::SHEDDABLE_PLUS), 0.0);
    assert_eq!(of(Criticality::CRITICAL), 0.0);
    assert_eq!(of(Criticality::CRITICAL_PLUS), 0.0, "above every call");
    // The expected share of rejections is still the total.
    let expected = 0.3 * of(Criticality::SHEDDABLE)
        + 0.1 * of(Criticality::SHEDDABLE_PLUS)
        + 0.6 * of(Criticality::CRITICAL);
    assert!((expected - total).abs() < 1e-12, "{expected} vs {total}");
}

#[tokio::test]
async fn the_layer_rejects_by_the_requests_context_and_says_its_class() {
    let clock = ManualClock::new();
    let breaker = Arc::new(
        BreakerConfig::default()
            .with_rejections(Rejections::Sre)
            .with_seed(3)
            .build_with(clock.clone())
            .expect("valid"),
    );
    for _ in 0..200 {
        breaker.record(Outcome::Failure);
    }
    let client = BreakerLayer::from_breaker(Arc::clone(&breaker))
        .layer(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    let batch = RequestContext::new().with_criticality(Criticality::SHEDDABLE);

    let mut scoped = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..50 {
        if let Err(err) = batch.scope(client.clone().oneshot(())).await {
            scoped.push(err);
        }
        if let Err(err) = client.clone().oneshot(()).await {
            plain.push(err);
        }
    }
    assert!(scoped.len() > 40 && plain.len() > 40, "p = 200/201");
    for err in &scoped {
        let rejected = err.downcast_ref::<Rejected>().expect("a local rejection");
        assert_eq!(rejected.criticality(), Some(Criticality::SHEDDABLE));
        assert_eq!(
            err.to_string(),
            "rejected by the adaptive breaker (sheddable)"
        );
    }
    for err in &plain {
        assert_eq!(err.downcast_ref::<Rejected>(), Some(&Rejected::new()));
    }
}
