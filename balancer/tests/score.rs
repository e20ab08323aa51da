//! The costs against Kratos's reference weights, and the weights' effect on picks.

use rampart_balancer::{Kratos, Load, PeakEwma, PeakSuccess, Score};

fn load(lag_ms: f64, inflight: u64) -> Load {
    Load {
        lag_ms,
        inflight,
        success: 1.0,
        weight: 1.0,
    }
}

/// Kratos's weights (health 1000) for warm endpoints: `health × 10⁴ / (floor(sqrt(lag + 5 ms
/// in ns)) × (inflight + 1))`, from its `node.go`, at in-flight 0 and 1.
const KRATOS_WEIGHTS: [(f64, f64, f64); 7] = [
    // (lag ms, weight idle, weight with one in flight)
    (0.0, 4472.0, 2236.0),
    (1.0, 4083.0, 2042.0),
    (5.0, 3163.0, 1581.0),
    (10.0, 2583.0, 1291.0),
    (20.0, 2000.0, 1000.0),
    (50.0, 1348.0, 674.0),
    (100.0, 976.0, 488.0),
];

#[test]
fn the_kratos_cost_is_the_inverse_of_kratoss_weight() {
    // Weight = 10⁷ / (1 000 × sqrt(lag_ms + 5) × (inflight + 1)) = 10⁴ / our cost, up to
    // Kratos's integer square root and truncation (well under 0.1 %).
    for (lag, idle, busy) in KRATOS_WEIGHTS {
        for (inflight, weight) in [(0, idle), (1, busy)] {
            let ours = Kratos.cost(&load(lag, inflight));
            let theirs = 1e4 / weight;
            assert!(
                (ours - theirs).abs() / theirs < 1e-3,
                "lag {lag} ms, {inflight} in flight: {ours} vs {theirs}"
            );
        }
    }
    // Kratos's new endpoint (no data) weighs 100, i.e. costs 100: worse than any warm endpoint
    // under 1 s, so it is starved until a force pick. Ours start at their warm peers' median.
    assert!(Kratos.cost(&load(1_000.0, 0)) < 1e4 / 100.0);
}

#[test]
fn the_peak_success_cost_is_linear_in_latency_and_load() {
    for (lag, _, _) in KRATOS_WEIGHTS {
        assert_eq!(PeakSuccess.cost(&load(lag, 0)), lag + 5.0);
        assert_eq!(PeakSuccess.cost(&load(lag, 1)), 2.0 * (lag + 5.0));
    }
    // A 10× slower endpoint costs 10× (almost) with PeakSuccess, only ~2.8× with Kratos.
    let ratio = |score: &dyn Score| score.cost(&load(100.0, 0)) / score.cost(&load(10.0, 0));
    assert!((ratio(&PeakSuccess) - 7.0).abs() < 1e-9);
    assert!((ratio(&Kratos) - (105.0_f64 / 15.0).sqrt()).abs() < 1e-9);
}

#[test]
fn only_peak_ewma_ignores_failures() {
    let failing = Load {
        success: 0.0,
        ..load(1.0, 0)
    };
    let healthy = load(10.0, 0);
    assert!(PeakSuccess.cost(&failing) > PeakSuccess.cost(&healthy));
    assert!(Kratos.cost(&failing) > Kratos.cost(&healthy));
    assert!(
        PeakEwma.cost(&failing) < PeakEwma.cost(&healthy),
        "the black hole"
    );
}
