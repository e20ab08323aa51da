//! Overload simulations over `rampart-fault`'s `SimBackend`, on paused time: offered load
//! ramps from half the backend's capacity to three times it, and the limiter must keep goodput
//! and latency where an unprotected server collapses.
//!
//! Backend: 8 workers, log-normal service time (median 10 ms, p99 19.5 ms), a queue of 1 000.
//! Clients: Poisson arrivals, 0.5× capacity for 10 s, ramping to 3× over 10 s, held for 30 s;
//! each gives up after 200 ms. Goodput counts successes within that deadline.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::TokioClock;
use rampart_fault::{Distribution, SimBackend, SimConfig};
use rampart_ratelimit::{
    BbrConfig, BbrLimitLayer, CpuUsage, Gate, ManualCpu, Overloaded, spawn_sampler,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const DEADLINE: Duration = Duration::from_millis(200);
const LOW: Duration = Duration::from_secs(10);
const RAMP: Duration = Duration::from_secs(10);
const HIGH: Duration = Duration::from_secs(30);

/// What stands in front of the backend.
#[derive(Debug, Clone, Copy)]
enum Protection {
    None,
    /// BBR with the given gate; the CPU signal is the backend's utilisation smoothed with
    /// `decay` every `interval`, or pinned at a constant (an I/O-bound backend).
    Bbr {
        gate: Gate,
        cpu: Cpu,
    },
}

#[derive(Debug, Clone, Copy)]
enum Cpu {
    Smoothed { decay: f64, interval: Duration },
    Pinned(f64),
}

const OURS: Cpu = Cpu::Smoothed {
    decay: 0.8,
    interval: Duration::from_millis(250),
};
const KRATOS: Cpu = Cpu::Smoothed {
    decay: 0.95,
    interval: Duration::from_millis(500),
};
const IO_BOUND: Cpu = Cpu::Pinned(0.3);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Served(Duration),
    TimedOut,
    Shed,
    Rejected,
}

#[derive(Debug)]
struct Report {
    /// Successes within the deadline per second in the 3× phase, as a share of capacity.
    goodput: f64,
    /// p99 latency of the requests the limiter admitted in the 3× phase (a timeout counts as
    /// the deadline).
    p99: Duration,
    /// p99 latency in the 0.5× phase.
    unloaded_p99: Duration,
    /// Share of 3× phase requests shed by the limiter.
    shed: f64,
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default()
}

async fn run(protection: Protection, seed: u64) -> Report {
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
    let limiter = match protection {
        Protection::None => None,
        Protection::Bbr { gate, cpu } => {
            let signal: Arc<dyn CpuUsage> = match cpu {
                Cpu::Smoothed { decay, interval } => {
                    let sim = backend.clone();
                    Arc::new(
                        spawn_sampler(move || sim.utilization(), interval, decay).expect("valid"),
                    )
                }
                Cpu::Pinned(usage) => Arc::new(ManualCpu::new(usage)),
            };
            let config = BbrConfig::default().with_gate(gate);
            Some(BbrLimitLayer::from_limiter(Arc::new(
                config.build_with(TokioClock::new(), signal).expect("valid"),
            )))
        }
    };

    let start = Instant::now();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut arrivals = fastrand::Rng::with_seed(seed);
    let mut at = Duration::ZERO;
    let mut tasks = Vec::new();
    while at < LOW + RAMP + HIGH {
        tokio::time::sleep_until(start + at).await;
        let call = match &limiter {
            Some(layer) => layer.layer(backend.clone()).oneshot(()).await_boxed(),
            None => backend.clone().oneshot(()).await_boxed(),
        };
        let outcomes = Arc::clone(&outcomes);
        tasks.push(tokio::spawn(async move {
            let outcome = match tokio::time::timeout(DEADLINE, call).await {
                Ok(Ok(())) => Outcome::Served(start.elapsed().saturating_sub(at)),
                Ok(Err(err)) if err.is::<Overloaded>() => Outcome::Shed,
                Ok(Err(_)) => Outcome::Rejected,
                Err(_) => Outcome::TimedOut,
            };
            outcomes.lock().push((at, outcome));
        }));
        let load = if at < LOW {
            0.5
        } else if at < LOW + RAMP {
            0.5 + 2.5 * at.saturating_sub(LOW).as_secs_f64() / RAMP.as_secs_f64()
        } else {
            3.0
        };
        at += Duration::from_secs_f64(-(1.0 - arrivals.f64()).ln() / (load * capacity));
    }
    for task in tasks {
        task.await.expect("no panic");
    }

    let outcomes = outcomes.lock();
    let phase = |from: Duration, to: Duration| {
        outcomes
            .iter()
            .filter(move |(at, _)| *at >= from && *at < to)
            .map(|(_, o)| *o)
    };
    let high = || phase(LOW + RAMP, LOW + RAMP + HIGH);
    let served = high().filter(|o| matches!(o, Outcome::Served(_))).count();
    let requests = high().count();
    let admitted: Vec<Duration> = high()
        .filter_map(|o| match o {
            Outcome::Served(latency) => Some(latency),
            Outcome::TimedOut => Some(DEADLINE),
            Outcome::Shed | Outcome::Rejected => None,
        })
        .collect();
    let unloaded: Vec<Duration> = phase(Duration::ZERO, LOW)
        .filter_map(|o| {
            if let Outcome::Served(l) = o {
                Some(l)
            } else {
                None
            }
        })
        .collect();
    Report {
        goodput: served as f64 / HIGH.as_secs_f64() / capacity,
        p99: p99(admitted),
        unloaded_p99: p99(unloaded),
        shed: high().filter(|o| *o == Outcome::Shed).count() as f64 / requests as f64,
    }
}

/// Boxes a response future so that both arms of a match have one type.
trait AwaitBoxed {
    fn await_boxed(
        self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), tower::BoxError>> + Send>>;
}

impl<F, T, E> AwaitBoxed for F
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<tower::BoxError>,
{
    fn await_boxed(
        self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), tower::BoxError>> + Send>> {
        Box::pin(async move { self.await.map(drop).map_err(Into::into) })
    }
}

/// Two seeds: different arrivals and service times, the same conclusions.
const SEEDS: [u64; 2] = [1, 2];

fn assert_holds(report: &Report, what: &str) {
    assert!(
        report.goodput >= 0.9,
        "{what}: goodput {:.3} of capacity",
        report.goodput
    );
    let bound = report.unloaded_p99.mul_f64(1.5);
    assert!(
        report.p99 <= bound,
        "{what}: p99 {:?} above 1.5 × {:?}",
        report.p99,
        report.unloaded_p99
    );
}

fn assert_collapses(report: &Report, what: &str) {
    assert!(
        report.goodput < 0.1,
        "{what}: goodput {:.3} of capacity",
        report.goodput
    );
}

/// Far below what the limiter holds with its own smoothing (`assert_holds`: 90 %).
fn assert_falls_short(report: &Report, what: &str) {
    assert!(
        report.goodput < 0.5,
        "{what}: goodput {:.3} of capacity",
        report.goodput
    );
}

#[tokio::test(start_paused = true)]
async fn at_3x_capacity_bbr_keeps_goodput_and_latency_where_an_unprotected_server_collapses() {
    for seed in SEEDS {
        assert_collapses(
            &run(Protection::None, seed).await,
            &format!("unprotected, seed {seed}"),
        );
        let bbr = run(
            Protection::Bbr {
                gate: Gate::Cpu,
                cpu: OURS,
            },
            seed,
        )
        .await;
        assert_holds(&bbr, &format!("BBR, seed {seed}"));
        assert!(
            bbr.shed > 0.5,
            "at 3× about two thirds must be shed: {:.3}",
            bbr.shed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn kratos_cpu_smoothing_reacts_too_late_and_the_server_falls_short() {
    // Decay 0.95 every 500 ms: the CPU signal needs ~16 s to cross 80 %, and the queue fills
    // first (10–11 % of capacity in the 3× phase, against 99.7–100 % with our smoothing).
    for seed in SEEDS {
        let report = run(
            Protection::Bbr {
                gate: Gate::Cpu,
                cpu: KRATOS,
            },
            seed,
        )
        .await;
        assert_falls_short(&report, &format!("Kratos smoothing, seed {seed}"));
    }
}

#[tokio::test(start_paused = true)]
async fn an_io_bound_overload_needs_the_latency_gate() {
    // The CPU stays at 30 %: the CPU gate never opens; the latency gate sees the queue.
    for seed in SEEDS {
        let cpu_gate = run(
            Protection::Bbr {
                gate: Gate::Cpu,
                cpu: IO_BOUND,
            },
            seed,
        )
        .await;
        assert_collapses(&cpu_gate, &format!("CPU gate, seed {seed}"));
        assert_eq!(cpu_gate.shed, 0.0, "the CPU gate never sheds");
        for (name, gate) in [("Latency", Gate::LATENCY), ("Either", Gate::EITHER)] {
            let report = run(
                Protection::Bbr {
                    gate,
                    cpu: IO_BOUND,
                },
                seed,
            )
            .await;
            assert_holds(&report, &format!("{name} gate, seed {seed}"));
        }
    }
}
