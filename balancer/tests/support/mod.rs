//! What the owned and the shared balancer's metrics tests both check.

use metrics_util::debugging::{DebugValue, Snapshotter};
use rampart_testkit::recorded;

/// Checks the metrics of a balancer over endpoints `"0"` and `"1"`, which succeed, and `"2"`,
/// which fails every call, after a few hundred requests: the failing endpoint was picked
/// rarely, after its first failures, yet its score gauge follows it, far above both healthy
/// ones (not the cost it had when first, and last, picked).
pub(crate) fn assert_the_failing_endpoint_is_shunned_and_scored_highest(snapshotter: &Snapshotter) {
    let metrics = recorded::take(snapshotter);
    let gauge =
        |name: &str, endpoint: &str| recorded::value(&metrics, name, &[("endpoint", endpoint)]);
    let picks = |endpoint| match gauge("rampart_balancer_picks_total", endpoint) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("picks of {endpoint}: {other:?}"),
    };
    let score = |endpoint| match gauge("rampart_balancer_endpoint_score", endpoint) {
        Some(DebugValue::Gauge(cost)) => cost.into_inner(),
        other => panic!("score of {endpoint}: {other:?}"),
    };
    assert!(
        picks("2") < 10,
        "the failing endpoint was picked {}",
        picks("2")
    );
    for healthy in ["0", "1"] {
        assert!(
            score("2") > 10.0 * score(healthy),
            "endpoint 2 costs {} against endpoint {healthy}'s {}",
            score("2"),
            score(healthy)
        );
    }
}

/// Three endpoint services: `"0"` and `"1"` answer each request with itself, `"2"` fails every
/// call.
pub(crate) fn two_answer_and_the_third_fails() -> impl Iterator<
    Item = impl tower::Service<u32, Response = u32, Error = tower::BoxError, Future: Send>
           + Clone
           + Send
           + Sync
           + 'static,
> {
    (0..3).map(|at| {
        tower::service_fn(move |n: u32| async move {
            if at == 2 {
                Err::<u32, tower::BoxError>("refused".into())
            } else {
                Ok(n)
            }
        })
    })
}
