//! `overload` and `overload-io`: offered load ramps from half a server's capacity to three
//! times it, holds, and falls back.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::TokioClock;
use rampart_fault::{Distribution, SimBackend, SimConfig};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, CpuUsage, Gate, ManualCpu, spawn_sampler};
use tower::{Layer, ServiceBuilder};

use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Call, Fate, Record, arrivals, between, drive, simulate};
use crate::thresholds;

/// The ramp's phases: low load, the rise, the high load held, and the fall back (the
/// overload-runtime scenarios ramp the same way).
pub(super) const LOW: Duration = Duration::from_secs(10);
pub(super) const RAMP: Duration = Duration::from_secs(10);
pub(super) const HIGH: Duration = Duration::from_secs(30);
pub(super) const FALL: Duration = Duration::from_secs(10);
pub(super) const WORKERS: usize = 8;
/// The clients' deadline: 10× the unloaded p99 (20 ms).
const DEADLINE: Duration = Duration::from_millis(200);
const BIN: Duration = Duration::from_secs(1);

pub(super) const OVERLOAD: Scenario = Scenario {
    name: "overload",
    description: "offered load ramps 0.5× → 3× a server's capacity (8 workers, 10 ms), holds 30 s, falls back",
    duration: Duration::from_secs(60),
    stacks: &[
        "none",
        "tower CL+LS W/2",
        "tower CL+LS 2W",
        "tower CL+LS 10W",
        "rampart BBR",
    ],
    run: |options, progress| run(options, progress, false),
};

pub(super) const OVERLOAD_IO: Scenario = Scenario {
    name: "overload-io",
    description: "the same ramp on an I/O-bound server whose CPU stays at 30 %",
    duration: Duration::from_secs(60),
    stacks: &[
        "none",
        "rampart BBR Cpu",
        "rampart BBR Latency",
        "rampart BBR Either",
    ],
    run: |options, progress| run(options, progress, true),
};

/// A stack in front of the simulated server.
#[derive(Debug, Clone, Copy)]
enum Stack {
    None,
    /// tower's `LoadShed` over `ConcurrencyLimit` at this limit.
    Tower(usize),
    /// rampart's BBR with this gate; the CPU is the server's smoothed utilisation, or pinned.
    Bbr(Gate, Option<f64>),
}

fn run(options: &Options, progress: &mut dyn FnMut(&str), io_bound: bool) -> ScenarioReport {
    let (low, ramp, high, fall) = (
        options.scaled(LOW),
        options.scaled(RAMP),
        options.scaled(HIGH),
        options.scaled(FALL),
    );
    let duration = low + ramp + high + fall;
    let config = server(options.seed);
    let capacity = config.capacity();
    let arrivals = arrivals(options.seed, duration, ramp_load(low, ramp, high, capacity));
    let scenario = if io_bound { OVERLOAD_IO } else { OVERLOAD };
    let stacks: Vec<Stack> = if io_bound {
        vec![
            Stack::None,
            Stack::Bbr(Gate::Cpu, Some(0.3)),
            Stack::Bbr(Gate::LATENCY, Some(0.3)),
            Stack::Bbr(Gate::EITHER, Some(0.3)),
        ]
    } else {
        vec![
            Stack::None,
            Stack::Tower(WORKERS / 2),
            Stack::Tower(2 * WORKERS),
            Stack::Tower(10 * WORKERS),
            Stack::Bbr(Gate::Cpu, None),
        ]
    };

    let mut reports = Vec::new();
    for (name, stack) in scenario.stacks.iter().zip(stacks) {
        progress(name);
        let records = simulate(run_stack(stack, config.clone(), &arrivals));
        reports.push(summarise(
            name,
            &records,
            low,
            low + ramp,
            high,
            duration,
            capacity,
        ));
    }

    let (held, goodput) = if io_bound {
        ("rampart BBR Latency", thresholds::OVERLOAD_IO_GOODPUT)
    } else {
        ("rampart BBR", thresholds::OVERLOAD_GOODPUT)
    };
    let checks = vec![
        Check::at_least(&reports, held, "goodput", goodput),
        Check::at_most(
            &reports,
            held,
            "p99_vs_unloaded",
            thresholds::OVERLOAD_P99_RATIO,
        ),
    ];
    scenario.report(
        duration,
        BIN,
        vec![
            Chart::new("goodput", "goodput (share of capacity)"),
            Chart::p99(),
            Chart::new("shed", "requests shed (share)"),
        ],
        reports,
        checks,
    )
}

/// The server of the overload scenarios: `WORKERS` workers, a log-normal service time (median
/// 10 ms, p99 19.5 ms) and a queue of 1 000, drawing its service times from `seed`.
pub(super) fn server(seed: u64) -> SimConfig {
    SimConfig::default()
        .with_workers(WORKERS)
        .with_service_time(Distribution::log_normal_p99(
            Duration::from_millis(10),
            Duration::from_micros(19_500),
        ))
        .with_queue_capacity(1_000)
        .with_seed(seed)
}

/// The CPU signal BBR reads from a simulated server: its utilisation, sampled every 250 ms
/// and smoothed with decay 0.8 (the limiter's default sampling).
pub(super) fn sampled_cpu(backend: &SimBackend) -> Arc<dyn CpuUsage> {
    let server = backend.clone();
    Arc::new(
        spawn_sampler(
            move || server.utilization(),
            Duration::from_millis(250),
            0.8,
        )
        .expect("valid sampling"),
    )
}

/// The offered load of the overload ramp, in requests per second: half of `capacity` for
/// `low`, rising linearly to three times it over `ramp`, held for `high`, then half again.
pub(super) fn ramp_load(
    low: Duration,
    ramp: Duration,
    high: Duration,
    capacity: f64,
) -> impl Fn(Duration) -> f64 {
    move |at: Duration| {
        let factor = if at < low {
            0.5
        } else if at < low + ramp {
            0.5 + 2.5 * at.saturating_sub(low).as_secs_f64() / ramp.as_secs_f64()
        } else if at < low + ramp + high {
            3.0
        } else {
            0.5
        };
        factor * capacity
    }
}

async fn run_stack(stack: Stack, config: SimConfig, arrivals: &[Duration]) -> Vec<Record> {
    let backend = SimBackend::new(config).expect("a valid simulated server");
    let send: Box<dyn Fn() -> Call> = match stack {
        Stack::None => sim::caller(backend),
        Stack::Tower(limit) => {
            let service = ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(limit)
                .service(backend);
            sim::caller(service)
        }
        Stack::Bbr(gate, pinned) => {
            let cpu: Arc<dyn CpuUsage> = if let Some(usage) = pinned {
                Arc::new(ManualCpu::new(usage))
            } else {
                sampled_cpu(&backend)
            };
            let limiter = BbrConfig::default()
                .with_gate(gate)
                .build_with(TokioClock::new(), cpu)
                .expect("a valid limiter");
            let service = BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(backend);
            sim::caller(service)
        }
    };
    drive(arrivals, DEADLINE, async |_| send(), |_| {}).await
}

#[allow(clippy::too_many_arguments)]
pub(super) fn summarise(
    name: &str,
    records: &[Record],
    ramp_start: Duration,
    high_start: Duration,
    high: Duration,
    duration: Duration,
    capacity: f64,
) -> StackReport {
    let before_ramp: Vec<&Record> = between(records, Duration::ZERO, ramp_start).collect();
    let unloaded_p99 = sim::success_quantile_ms(&before_ramp, 0.99);
    let in_high: Vec<&Record> = between(records, high_start, high_start + high).collect();
    let served = in_high.iter().filter(|r| r.is_good()).count() as f64;
    let p99 = sim::success_quantile_ms(&in_high, 0.99);
    let shed = |records: &[&Record]| sim::share(records, |r| r.fate == Fate::Refused);
    let bin_s = BIN.as_secs_f64();
    StackReport::new(name)
        .figure("goodput", served / high.as_secs_f64() / capacity)
        .figure("p50_ms", sim::success_quantile_ms(&in_high, 0.5))
        .figure("p99_ms", p99)
        .figure("unloaded_p99_ms", unloaded_p99)
        .figure("p99_vs_unloaded", p99 / unloaded_p99)
        .figure("shed", shed(&in_high))
        .series(
            "goodput",
            sim::series(records, duration, BIN, |_, bin| {
                bin.iter().filter(|r| r.is_good()).count() as f64 / bin_s / capacity
            }),
        )
        .series("p99_ms", sim::p99_series(records, duration, BIN))
        .series(
            "shed",
            sim::series(records, duration, BIN, |_, bin| shed(bin)),
        )
}
