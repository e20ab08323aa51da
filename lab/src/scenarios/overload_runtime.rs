//! `overload-runtime` and `overload-runtime-blocking`: the `overload` ramp (0.5× → 3× capacity)
//! on a server whose middleware runs on the same runtime worker as its handler, as on tokio.
//!
//! One worker runs a handler that burns about 2 ms of CPU per request. A request waits in the
//! runtime's run queue before the limiter sees it, so the limiter's in-flight count misses the
//! queue: with a handler that never yields (`-blocking`) it counts one request in flight
//! whatever waits in front of it; with one that yields three times it sees the requests it
//! admitted, but not the arrivals queued behind them. Stacks: none; BBR with the CPU gate as
//! deployed before the delay signal (no `max_delay`), once reading the worker's own CPU (a
//! correct reading of a 1-CPU cgroup) and once the CPU of the two-CPU host (what the live
//! server's default read: at most 50 % for one worker); BBR with the latency gate; and BBR's
//! default, which reads its own CPU and also the runtime's scheduling delay (its heartbeat).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_fault::{Distribution, RuntimeConfig, SimRuntime};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, Gate, spawn_sampler};
use tower::Layer;

use super::overload::{FALL, HIGH, LOW, RAMP};
use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Record, Sampler, Samples, arrivals, drive, simulate};
use crate::thresholds;

/// The handler's CPU time: a median of 2 ms, p99 3 ms (a busy loop varies little).
const CPU_MEDIAN: Duration = Duration::from_millis(2);
const CPU_P99: Duration = Duration::from_millis(3);
/// The clients' deadline, as the live runs' load generator's.
const DEADLINE: Duration = Duration::from_millis(200);
const BIN: Duration = Duration::from_secs(1);
/// The CPUs of the host, for the stack whose CPU gauge reads the whole host.
const HOST_CPUS: usize = 2;

/// The heartbeat's interval: that of the probe `BbrConfig::build` starts for the default
/// `max_delay`.
fn heartbeat() -> Duration {
    let max_delay = BbrConfig::default()
        .max_delay
        .unwrap_or(Duration::from_millis(10));
    rampart_ratelimit::delay::probe_interval(max_delay)
}

const NONE: &str = "none";
const CPU_OWN: &str = "rampart BBR Cpu";
const CPU_HOST: &str = "rampart BBR Cpu (host)";
const LATENCY: &str = "rampart BBR Latency";
/// The default as deployed now: its own CPU (the cgroup that limits it) and the runtime's
/// scheduling delay, whose limit applies while the CPU gate is open.
const DEFAULT: &str = "rampart BBR default";
const STACKS: &[&str] = &[NONE, CPU_OWN, CPU_HOST, LATENCY, DEFAULT];

pub(super) const OVERLOAD_RUNTIME: Scenario = Scenario {
    name: "overload-runtime",
    description: "the overload ramp on one runtime worker that also runs the middleware; a 2 ms handler that yields 3 times",
    duration: Duration::from_secs(60),
    stacks: STACKS,
    run: |options, progress| run(options, progress, 4),
};

pub(super) const OVERLOAD_RUNTIME_BLOCKING: Scenario = Scenario {
    name: "overload-runtime-blocking",
    description: "the same, with a handler that never yields",
    run: |options, progress| run(options, progress, 1),
    ..OVERLOAD_RUNTIME
};

/// A stack in front of the simulated runtime's handler. The limiters' CPU is the runtime's
/// smoothed CPU meter over `cpus` CPUs (`None`: the worker's own).
#[derive(Debug, Clone, Copy)]
enum Stack {
    None,
    /// BBR with this gate, and no delay signal: as deployed before it.
    Bbr {
        gate: Gate,
        cpus: Option<usize>,
    },
    /// `BbrConfig::default()`, reading the runtime's scheduling delay.
    Default {
        cpus: Option<usize>,
    },
}

/// The stacks, in the order of [`STACKS`].
const STACK_SHAPES: [Stack; 5] = [
    Stack::None,
    Stack::Bbr {
        gate: Gate::Cpu,
        cpus: None,
    },
    Stack::Bbr {
        gate: Gate::Cpu,
        cpus: Some(HOST_CPUS),
    },
    Stack::Bbr {
        gate: Gate::LATENCY,
        cpus: None,
    },
    Stack::Default { cpus: None },
];

/// The phases, scaled.
#[derive(Debug, Clone, Copy)]
struct Phases {
    ramp_start: Duration,
    high_start: Duration,
    high: Duration,
    end: Duration,
}

fn run(options: &Options, progress: &mut dyn FnMut(&str), slices: u32) -> ScenarioReport {
    let phases = Phases {
        ramp_start: options.scaled(LOW),
        high_start: options.scaled(LOW + RAMP),
        high: options.scaled(HIGH),
        end: options.scaled(LOW + RAMP + HIGH + FALL),
    };
    let config = RuntimeConfig::default()
        .with_service_time(Distribution::log_normal_p99(CPU_MEDIAN, CPU_P99))
        .with_slices(slices)
        .with_heartbeat(heartbeat())
        .with_seed(options.seed);
    let capacity = config.capacity();
    let (low, ramp, high) = (phases.ramp_start, options.scaled(RAMP), phases.high);
    let load = super::overload::ramp_load(low, ramp, high, capacity);
    let arrivals = arrivals(options.seed, phases.end, load);
    let scenario = if slices == 1 {
        OVERLOAD_RUNTIME_BLOCKING
    } else {
        OVERLOAD_RUNTIME
    };
    let mut reports = Vec::new();
    for (name, stack) in scenario.stacks.iter().zip(STACK_SHAPES) {
        progress(name);
        let run = simulate(run_stack(stack, config.clone(), &arrivals, phases));
        reports.push(summarise(name, &run, phases, capacity));
    }
    let checks = checks(&reports, slices);
    scenario.report(
        phases.end,
        BIN,
        vec![
            Chart::new("goodput", "goodput (share of capacity)"),
            Chart::p99(),
            Chart::new("shed", "requests shed (share)"),
            Chart::new("delay_ms", "scheduling delay, mean (ms)"),
        ],
        reports,
        checks,
    )
}

/// The thresholds: the latency gate (with a yielding handler) and the default stack's.
fn checks(reports: &[StackReport], slices: u32) -> Vec<Check> {
    if slices == 1 {
        vec![
            Check::at_least(
                reports,
                DEFAULT,
                "goodput",
                thresholds::RUNTIME_BLOCKING_GOODPUT,
            ),
            Check::at_most(
                reports,
                DEFAULT,
                "p99_vs_unloaded",
                thresholds::RUNTIME_BLOCKING_P99_RATIO,
            ),
        ]
    } else {
        vec![
            Check::at_least(
                reports,
                LATENCY,
                "goodput",
                thresholds::RUNTIME_LATENCY_GOODPUT,
            ),
            Check::at_least(
                reports,
                DEFAULT,
                "goodput",
                thresholds::RUNTIME_DEFAULT_GOODPUT,
            ),
            Check::at_most(
                reports,
                DEFAULT,
                "p99_vs_unloaded",
                thresholds::RUNTIME_DEFAULT_P99_RATIO,
            ),
        ]
    }
}

/// What one stack's run measured.
#[derive(Debug)]
struct Run {
    records: Vec<Record>,
    /// The runtime's `[served, abandoned]` counts, taken at bin starts and phase edges.
    counts: Samples,
    /// The scheduling delay as each request arrived.
    delays: Vec<(Duration, Duration)>,
}

async fn run_stack(
    stack: Stack,
    config: RuntimeConfig,
    arrivals: &[Duration],
    phases: Phases,
) -> Run {
    let (cpus, limiter) = match stack {
        Stack::None => (None, None),
        Stack::Bbr { gate, cpus } => (
            cpus,
            Some(BbrConfig::default().with_gate(gate).with_max_delay(None)),
        ),
        Stack::Default { cpus } => (cpus, Some(BbrConfig::default())),
    };
    let config = match cpus {
        Some(cpus) => config.with_cpus(cpus),
        None => config,
    };
    let runtime = SimRuntime::new(config).expect("a valid simulated runtime");
    let send = match limiter {
        None => sim::caller(runtime.serve(runtime.handler())),
        Some(config) => {
            let meter = runtime.clone();
            let cpu = spawn_sampler(move || meter.utilization(), Duration::from_millis(250), 0.8)
                .expect("valid sampling");
            let reads_delay = config.max_delay.is_some();
            let mut limiter = config
                .build_with(runtime.clock(), cpu)
                .expect("a valid limiter");
            if reads_delay {
                let heartbeat = runtime.clone();
                limiter = limiter.with_delay(move |now| heartbeat.scheduling_delay_at(now));
            }
            let layer = BbrLimitLayer::from_limiter(Arc::new(limiter));
            sim::caller(runtime.serve(layer.layer(runtime.handler())))
        }
    };
    let counts = Samples::default();
    let mut times = sim::bin_starts(phases.end, BIN);
    times.extend([phases.high_start, phases.high_start + phases.high]);
    let mut sampler = Sampler::new(counts.clone(), times);
    let delays = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let records = drive(
        arrivals,
        DEADLINE,
        async |_| send(),
        |at| {
            sampler.tick(at, || {
                let stats = runtime.stats();
                vec![stats.served, stats.abandoned]
            });
            delays.lock().push((at, runtime.scheduling_delay()));
        },
    )
    .await;
    let delays = std::mem::take(&mut *delays.lock());
    Run {
        records,
        counts,
        delays,
    }
}

fn summarise(name: &str, run: &Run, phases: Phases, capacity: f64) -> StackReport {
    let high_end = phases.high_start + phases.high;
    let report = super::overload::summarise(
        name,
        &run.records,
        phases.ramp_start,
        phases.high_start,
        phases.high,
        phases.end,
        capacity,
    );
    // The handler's work in the 3× phase spent on requests whose clients had gone.
    let served = run.counts.rise(0, phases.high_start..high_end) as f64;
    let abandoned = run.counts.rise(1, phases.high_start..high_end) as f64;
    let mean_delay_ms = |span: Range<Duration>| {
        let delays: Vec<f64> = run
            .delays
            .iter()
            .filter(|(at, _)| span.contains(at))
            .map(|(_, delay)| delay.as_secs_f64() * 1e3)
            .collect();
        mean(&delays)
    };
    let delay_series = sim::bin_starts(phases.end, BIN)
        .windows(2)
        .map(|bin| mean_delay_ms(bin[0]..bin[1]))
        .collect();
    report
        .figure("wasted", abandoned / (served + abandoned).max(1.0))
        .figure("delay_ms", mean_delay_ms(phases.high_start..high_end))
        .series("delay_ms", delay_series)
}

/// The mean of `values`; NaN when there are none.
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}
