//! Shedding by criticality, over `rampart-fault`'s `SimBackend` on paused time: under
//! overload the limiter sheds the least important requests first, keeps every critical one,
//! and gives the capacity critical traffic does not use to the rest.
//!
//! Backend: 8 workers, log-normal service time (median 10 ms, p99 19.5 ms), as in
//! `overload.rs`. Clients: Poisson arrivals at 0.8× the capacity for 10 s, then a step to 3×
//! for 20 s, each request critical or sheddable by a seeded draw; each gives up after 200 ms.
//!
//! Measured (seeds 1 and 2, critical a sixth of the load): critical requests served 99.2 %
//! and 99.96 %, goodput 100 % of capacity; priority-blind on the same arrivals, critical
//! requests served 32.7 % and 33.3 %. With the latency gate (seed 1): 99.9 % and 100 %.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::{Criticality, RequestContext, TokioClock};
use rampart_fault::{Distribution, SimBackend, SimConfig};
use rampart_ratelimit::{
    BbrConfig, BbrLimitLayer, CpuUsage, Gate, ManualCpu, Overloaded, spawn_sampler,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

type Call =
    std::pin::Pin<Box<dyn Future<Output = Result<rampart_fault::Served, tower::BoxError>> + Send>>;

const DEADLINE: Duration = Duration::from_millis(200);
const LOW: Duration = Duration::from_secs(10);
const HIGH: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Served,
    Late,
    /// The backend's queue was full.
    Failed,
    Shed(Option<Criticality>),
}

/// What each class got in the 3× phase.
#[derive(Debug, Default)]
struct Class {
    sent: usize,
    served: usize,
    shed: usize,
}

#[derive(Debug)]
struct Report {
    critical: Class,
    sheddable: Class,
    /// Successes within the deadline per second in the 3× phase, as a share of capacity.
    goodput: f64,
}

/// Runs the two phases with `critical` the share of requests that are critical, the rest
/// sheddable; with `classes` false no request carries a criticality (a priority-blind run on
/// the same arrivals).
async fn run(seed: u64, critical: f64, gate: Gate, classes: bool) -> Report {
    let config = SimConfig::default()
        .with_workers(8)
        .with_service_time(Distribution::log_normal_p99(
            Duration::from_millis(10),
            Duration::from_micros(19_500),
        ))
        .with_queue_capacity(1_000)
        .with_seed(seed);
    let capacity = config.capacity();
    let backend = SimBackend::new(config).expect("valid");
    let cpu: Arc<dyn CpuUsage> = if matches!(gate, Gate::Cpu) {
        let sim = backend.clone();
        Arc::new(
            spawn_sampler(move || sim.utilization(), Duration::from_millis(250), 0.8)
                .expect("valid"),
        )
    } else {
        Arc::new(ManualCpu::new(0.3))
    };
    let limiter = BbrConfig::default()
        .with_gate(gate)
        .build_with(TokioClock::new(), cpu)
        .expect("valid");
    let layer = BbrLimitLayer::from_limiter(Arc::new(limiter));

    let start = Instant::now();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut at = Duration::ZERO;
    let mut tasks = Vec::new();
    while at < LOW + HIGH {
        tokio::time::sleep_until(start + at).await;
        let criticality = if rng.f64() < critical {
            Criticality::CRITICAL
        } else {
            Criticality::SHEDDABLE
        };
        let context = if classes {
            RequestContext::new().with_criticality(criticality)
        } else {
            RequestContext::new()
        };
        let call: Call = Box::pin(context.scope(layer.layer(backend.clone()).oneshot(())));
        let outcomes = Arc::clone(&outcomes);
        tasks.push(tokio::spawn(async move {
            let outcome = match tokio::time::timeout(DEADLINE, call).await {
                Ok(Ok(_)) => Outcome::Served,
                Ok(Err(err)) => match err.downcast_ref::<Overloaded>() {
                    Some(refusal) => Outcome::Shed(refusal.criticality()),
                    None => Outcome::Failed,
                },
                Err(_) => Outcome::Late,
            };
            outcomes.lock().push((at, criticality, outcome));
        }));
        let load = if at < LOW { 0.8 } else { 3.0 };
        at += Duration::from_secs_f64(-(1.0 - rng.f64()).ln() / (load * capacity));
    }
    for task in tasks {
        task.await.expect("no panic");
    }

    let mut report = Report {
        critical: Class::default(),
        sheddable: Class::default(),
        goodput: 0.0,
    };
    let mut served = 0_usize;
    for &(at, criticality, outcome) in outcomes.lock().iter() {
        if at < LOW {
            continue;
        }
        let class = if criticality == Criticality::CRITICAL {
            &mut report.critical
        } else {
            &mut report.sheddable
        };
        class.sent += 1;
        match outcome {
            Outcome::Served => {
                class.served += 1;
                served += 1;
            }
            Outcome::Late | Outcome::Failed => {}
            Outcome::Shed(said) => {
                assert_eq!(
                    said,
                    classes.then_some(criticality),
                    "the error says the class"
                );
                class.shed += 1;
            }
        }
    }
    report.goodput = served as f64 / HIGH.as_secs_f64() / capacity;
    report
}

fn share(part: usize, whole: usize) -> f64 {
    part as f64 / whole.max(1) as f64
}

#[tokio::test(start_paused = true)]
async fn at_3x_capacity_every_critical_request_is_served_and_sheddable_ones_take_the_sheds() {
    for seed in [1, 2] {
        // Critical traffic asks for half the capacity (a sixth of 3×).
        let report = run(seed, 1.0 / 6.0, Gate::Cpu, true).await;
        let critical = share(report.critical.served, report.critical.sent);
        assert!(
            critical >= 0.99,
            "seed {seed}: critical served {critical:.4} ({report:?})"
        );
        assert!(
            report.goodput >= 0.9,
            "seed {seed}: goodput {:.3}",
            report.goodput
        );
        let shed = share(report.sheddable.shed, report.sheddable.sent);
        assert!(shed > 0.6, "seed {seed}: sheddable shed {shed:.3}");

        // The same arrivals with no criticality: the limiter sheds both alike.
        let blind = run(seed, 1.0 / 6.0, Gate::Cpu, false).await;
        let blind_critical = share(blind.critical.served, blind.critical.sent);
        assert!(
            blind_critical < 0.5,
            "seed {seed}: blind critical served {blind_critical:.3}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn capacity_critical_traffic_leaves_unused_goes_to_sheddable_traffic() {
    // Critical traffic asks for a tenth of the capacity: sheddable traffic gets the rest.
    let report = run(1, 0.1 / 3.0, Gate::Cpu, true).await;
    assert!(report.goodput >= 0.9, "goodput {:.3}", report.goodput);
    let critical = share(report.critical.served, report.critical.sent);
    assert!(critical >= 0.99, "critical served {critical:.4}");
}

#[tokio::test(start_paused = true)]
async fn the_latency_gate_sheds_by_criticality_too() {
    let report = run(1, 1.0 / 6.0, Gate::LATENCY, true).await;
    let critical = share(report.critical.served, report.critical.sent);
    assert!(
        critical >= 0.99,
        "critical served {critical:.4} ({report:?})"
    );
    assert!(report.goodput >= 0.9, "goodput {:.3}", report.goodput);
}
