//! Lower classes stop retrying first as a budget runs low, and critical work keeps a share of
//! it: each budget kind, and the layer reading the request's context.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{Criticality, CriticalityClass, ManualClock, Outcome, RequestContext};
use rampart_retry::{
    Backoff, Budget, RatioConfig, RetryConfig, RetryLayer, TokenConfig, Unlimited, kept_back,
};
use rampart_testkit::recorded;
use tower::{BoxError, Layer, ServiceExt, service_fn};

/// Withdrawals of `criticality` granted until the first refusal.
fn drain(budget: &impl Budget, criticality: Criticality) -> usize {
    (0..10_000)
        .take_while(|_| budget.withdraw_for(criticality))
        .count()
}

#[test]
fn a_ratio_budget_drained_by_sheddable_retries_still_grants_critical_ones() {
    // Ratio 1, no reserve: 100 requests earn 100 retries.
    let budget = RatioConfig {
        ratio: 1.0,
        min_per_sec: 0,
        ..RatioConfig::default()
    }
    .build_with(ManualClock::new())
    .expect("valid");
    for _ in 0..100 {
        budget.deposit();
    }
    // Sheddable retries spend down to the half kept back: 50 of them.
    assert_eq!(drain(&budget, Criticality::SHEDDABLE), 50);
    assert!(!budget.withdraw_for(Criticality::SHEDDABLE));
    // Sheddable-plus ones down to the quarter kept back for critical work: 25 more.
    assert_eq!(
        drain(
            &budget,
            Criticality::with_level(CriticalityClass::SheddablePlus, 90)
        ),
        25
    );
    assert!(!budget.withdraw_for(Criticality::SHEDDABLE));
    // The critical ones spend the rest, as every retry did before criticalities.
    assert_eq!(drain(&budget, Criticality::CRITICAL), 25);
    assert!(!budget.withdraw_for(Criticality::CRITICAL_PLUS));
    assert!(!budget.withdraw(), "empty");
    assert_eq!(budget.snapshot().remaining, 0.0);
}

#[test]
fn as_a_ratio_budget_runs_low_sheddable_stops_first_then_sheddable_plus_then_critical() {
    // 100 retries earned and `spent` of them spent: does a retry of each class get through?
    let grants = |spent: u32, class: CriticalityClass| {
        let budget = RatioConfig {
            ratio: 1.0,
            min_per_sec: 0,
            ..RatioConfig::default()
        }
        .build_with(ManualClock::new())
        .expect("valid");
        for _ in 0..100 {
            budget.deposit();
        }
        for _ in 0..spent {
            assert!(budget.withdraw());
        }
        budget.withdraw_for(class.into())
    };
    // Each class's last retry: the one that leaves its kept-back share.
    let last = CriticalityClass::ALL
        .map(|class| (0..100).take_while(|&spent| grants(spent, class)).last());
    assert_eq!(last, [Some(49), Some(74), Some(99), Some(99)]);
    for class in CriticalityClass::ALL {
        let kept = kept_back(class) * 100.0;
        assert_eq!(
            f64::from(last[class.index()].expect("granted") + 1),
            100.0 - kept
        );
    }
}

#[test]
fn a_token_budget_stops_sheddable_retries_first_as_failures_drain_it() {
    // gRPC's defaults: 10 tokens, retries stop at 5. Sheddable keeps half of the 5 above the
    // threshold back (stops at 7.5), sheddable-plus a quarter (at 6.25).
    let budget = TokenConfig::default().build().expect("valid");
    let mut allowed = Vec::new();
    for _ in 0..6 {
        allowed.push(CriticalityClass::ALL.map(|class| budget.withdraw_for(class.into())));
        budget.record(Outcome::Failure);
    }
    let [sheddable, sheddable_plus, critical, critical_plus] =
        [0, 1, 2, 3].map(|class| allowed.iter().filter(|row| row[class]).count());
    // Tokens 10, 9, 8 (sheddable), 7 (sheddable-plus), 6 (critical), then 5: none.
    assert_eq!((sheddable, sheddable_plus, critical), (3, 4, 5));
    assert_eq!(critical_plus, critical);
    assert_eq!(budget.tokens(), 4.0);
    for class in CriticalityClass::ALL {
        assert_eq!(budget.withdraw_for(class.into()), budget.withdraw());
    }
    // Critical retries keep going while sheddable ones stay stopped on the way back up.
    let budget = TokenConfig::default().build().expect("valid");
    for _ in 0..3 {
        budget.record(Outcome::Failure); // 7 tokens
    }
    assert!(!budget.withdraw_for(Criticality::SHEDDABLE));
    assert!(budget.withdraw_for(Criticality::SHEDDABLE_PLUS));
    assert!(budget.withdraw_for(Criticality::CRITICAL));
    assert_eq!(
        budget.withdraw_for(Criticality::CRITICAL),
        budget.withdraw(),
        "critical is the default"
    );
}

#[test]
fn unlimited_grants_every_class() {
    for class in CriticalityClass::ALL {
        assert_eq!(drain(&Unlimited, class.into()), 10_000);
    }
}

/// A backend whose every call fails, counting its calls.
fn failing(
    calls: &Arc<AtomicU64>,
) -> impl tower::Service<
    (),
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    let calls = Arc::clone(calls);
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), BoxError>("down".into()) }
    })
}

#[tokio::test(start_paused = true)]
async fn the_layer_retries_by_the_requests_context_and_counts_each_class() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Ratio 0.5, no reserve: 20 requests earn 10 retries, 5 of them for sheddable ones.
    let budget = RatioConfig {
        ratio: 0.5,
        min_per_sec: 0,
        ..RatioConfig::default()
    }
    .build()
    .expect("valid");
    let config = RetryConfig::default()
        .with_name("feed")
        .with_max_attempts(2)
        .with_backoff(Backoff::Constant(Duration::ZERO));
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::new(config, budget).expect("valid")
    });
    let calls = Arc::new(AtomicU64::new(0));
    let client = layer.layer(failing(&calls));
    let batch = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    for _ in 0..20 {
        batch.scope(client.clone().oneshot(())).await.unwrap_err();
    }
    let sheddable_calls = calls.swap(0, Ordering::Relaxed);
    // Each of the 20 made one attempt; their retries spent only half of what they earned.
    // The n-th request may retry while 0.5 n - retries so far ≥ 1 + 0.5 n / 2: after the 4th,
    // 8th, 12th, 16th and 20th.
    let sheddable_retries = sheddable_calls - 20;
    assert_eq!(sheddable_retries, 5);
    // The budget still holds retries for critical work: a request outside any scope (the
    // default, critical) is retried.
    client.clone().oneshot(()).await.unwrap_err();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "the critical request was retried"
    );

    let metrics = recorded::take(&snapshotter);
    let count = |name: &str, labels: &[(&str, &str)]| {
        let mut labels = labels.to_vec();
        labels.push(("name", "feed"));
        match recorded::value(&metrics, name, &labels) {
            Some(DebugValue::Counter(count)) => *count,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    };
    let attempts = |kind, criticality| {
        count(
            "rampart_retry_attempts_total",
            &[("kind", kind), ("criticality", criticality)],
        )
    };
    let exhausted = |criticality| {
        count(
            "rampart_retry_budget_exhausted_total",
            &[("criticality", criticality)],
        )
    };
    assert_eq!(attempts("first", "sheddable"), 20);
    assert_eq!(attempts("retry", "sheddable"), sheddable_retries);
    assert_eq!(exhausted("sheddable"), 20 - sheddable_retries);
    assert_eq!(attempts("first", "critical"), 1);
    assert_eq!(attempts("retry", "critical"), 1);
    assert_eq!(exhausted("critical"), 0);
    assert_eq!(
        attempts("first", "critical-plus"),
        0,
        "registered, never counted"
    );
    assert_eq!(exhausted("sheddable-plus"), 0, "registered, never counted");
}
