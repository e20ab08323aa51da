//! `full-stack`: ten clients, each retry → breaker → P2C, in front of three servers guarded by
//! BBR; the offered load exceeds the fleet and one server degrades. Against the same fleet with
//! no protection at all.

use std::sync::Arc;
use std::time::Duration;

use rampart_balancer::{P2cConfig, PeakSuccess, SharedP2c};
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_core::TokioClock;
use rampart_fault::{Distribution, FaultConfig, FaultHandle, FaultLayer, SimBackend, SimConfig};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, spawn_sampler};
use rampart_retry::{RatioConfig, RetryConfig, RetryLayer};
use tower::Layer;
use tower::discover::Change;

use super::{Options, Scenario};
use crate::report::{self, Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Record, arrivals, between, drive, simulate};
use crate::thresholds;

const CALM: Duration = Duration::from_secs(20);
/// The overload phase: the server degrades this far into it.
const OVERLOAD: Duration = Duration::from_secs(30);
const DEGRADE_AFTER: Duration = Duration::from_secs(10);
const COOL: Duration = Duration::from_secs(10);
const SERVERS: usize = 3;
const DEGRADED: usize = 2;
/// How many times slower the degraded server's requests become.
const SLOWDOWN: u32 = 3;
const CLIENTS: usize = 10;
const WORKERS: usize = 8;
const CALM_LOAD: f64 = 0.6;
const OVERLOAD_LOAD: f64 = 1.5;
/// 10× the unloaded p99 (20 ms).
const DEADLINE: Duration = Duration::from_millis(200);
const BIN: Duration = Duration::from_secs(1);
const NONE: &str = "none";
const RAMPART: &str = "rampart";

pub(super) const FULL_STACK: Scenario = Scenario {
    name: "full-stack",
    description: "10 clients → 3 servers (8 workers, 10 ms); load 0.6× → 1.5× the fleet for 30 s, one server 3× slower from 10 s into it",
    duration: Duration::from_secs(60),
    stacks: &[NONE, RAMPART],
    run,
};

/// The phases, scaled.
#[derive(Debug, Clone, Copy)]
struct Phases {
    overload_start: Duration,
    degrade_at: Duration,
    overload_end: Duration,
    end: Duration,
}

fn service_time(slowdown: u32) -> Distribution {
    Distribution::log_normal_p99(
        Duration::from_millis(10) * slowdown,
        Duration::from_micros(19_500) * slowdown,
    )
}

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let overload_start = options.scaled(CALM);
    let phases = Phases {
        overload_start,
        degrade_at: overload_start + options.scaled(DEGRADE_AFTER),
        overload_end: overload_start + options.scaled(OVERLOAD),
        end: overload_start + options.scaled(OVERLOAD) + options.scaled(COOL),
    };
    let server = SimConfig::default()
        .with_workers(WORKERS)
        .with_service_time(service_time(1))
        .with_queue_capacity(1_000);
    let healthy = server.capacity();
    let degraded = server
        .clone()
        .with_service_time(service_time(SLOWDOWN))
        .capacity();
    let fleet = healthy * SERVERS as f64;
    let capacity_at = move |at: Duration| {
        if at < phases.degrade_at {
            fleet
        } else {
            fleet - healthy + degraded
        }
    };
    let load = move |at: Duration| {
        let factor = if at >= phases.overload_start && at < phases.overload_end {
            OVERLOAD_LOAD
        } else {
            CALM_LOAD
        };
        factor * fleet
    };
    let arrivals = arrivals(options.seed, phases.end, load);

    let mut reports = Vec::new();
    for &name in FULL_STACK.stacks {
        progress(name);
        let (records, attempts) = simulate(run_stack(
            name == RAMPART,
            options.seed,
            &server,
            &arrivals,
            phases,
        ));
        let in_overload: Vec<&Record> =
            between(&records, phases.overload_start, phases.overload_end).collect();
        let overload_capacity = integrate(capacity_at, phases.overload_start, phases.overload_end);
        let good = in_overload.iter().filter(|r| r.is_good()).count() as f64;
        let bin_s = BIN.as_secs_f64();
        reports.push(
            StackReport::new(name)
                .figure("goodput", good / overload_capacity)
                .figure("success", sim::share(&in_overload, Record::is_good))
                .figure("p50_ms", sim::success_quantile_ms(&in_overload, 0.5))
                .figure("p99_ms", sim::success_quantile_ms(&in_overload, 0.99))
                .figure(
                    "attempts_per_request",
                    attempts as f64 / (records.len() as f64).max(1.0),
                )
                .series(
                    "goodput",
                    sim::series(&records, phases.end, BIN, |span, bin| {
                        bin.iter().filter(|r| r.is_good()).count() as f64
                            / bin_s
                            / capacity_at(span.start)
                    }),
                )
                .series("p99_ms", sim::p99_series(&records, phases.end, BIN)),
        );
    }
    let none = report::figure(&reports, NONE, "goodput");
    if let Some(rampart) = reports.iter_mut().find(|r| r.name == RAMPART) {
        let vs_none = rampart.get("goodput") / none.max(1e-9);
        rampart.set("vs_none", vs_none);
    }
    let checks = vec![
        Check::at_least(&reports, RAMPART, "goodput", thresholds::FULL_STACK_GOODPUT),
        Check::at_least(&reports, RAMPART, "vs_none", thresholds::FULL_STACK_VS_NONE),
    ];
    FULL_STACK.report(
        phases.end,
        BIN,
        vec![
            Chart::new("goodput", "goodput (share of the fleet's current capacity)"),
            Chart::p99(),
        ],
        reports,
        checks,
    )
}

/// ∫ `capacity` over `[from, to)`, in requests, by 10 ms steps.
fn integrate(capacity: impl Fn(Duration) -> f64, from: Duration, to: Duration) -> f64 {
    let step = Duration::from_millis(10);
    let mut at = from;
    let mut total = 0.0;
    while at < to {
        total += capacity(at) * step.min(to.saturating_sub(at)).as_secs_f64();
        at += step;
    }
    total
}

/// Runs one stack; returns the records and the attempts the servers received.
async fn run_stack(
    protected: bool,
    seed: u64,
    server: &SimConfig,
    arrivals: &[Duration],
    phases: Phases,
) -> (Vec<Record>, u64) {
    let backends: Vec<SimBackend> = (0..SERVERS)
        .map(|i| {
            SimBackend::new(server.clone().with_seed(seed.wrapping_add(200 + i as u64)))
                .expect("a valid server")
        })
        .collect();
    // A fault layer with no faults counts what reaches each server.
    let (counters, handles): (Vec<FaultLayer>, Vec<FaultHandle>) = (0..SERVERS)
        .map(|_| FaultLayer::pair(FaultConfig::default()).expect("no faults"))
        .unzip();
    let degraded = backends[DEGRADED].clone();
    let mut degrade = Some(phases.degrade_at);
    let tick = move |at: Duration| {
        if degrade.is_some_and(|when| at >= when) {
            degrade = None;
            degraded
                .set_service_time(service_time(SLOWDOWN))
                .expect("a valid service time");
        }
    };
    let records = if protected {
        let servers: Vec<_> = backends
            .iter()
            .zip(&counters)
            .map(|(backend, counter)| {
                let utilisation = backend.clone();
                let cpu = spawn_sampler(
                    move || utilisation.utilization(),
                    Duration::from_millis(250),
                    0.8,
                )
                .expect("valid sampling");
                let limiter = BbrConfig::default()
                    .build_with(TokioClock::new(), Arc::new(cpu))
                    .expect("a valid limiter");
                counter.layer(BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(backend.clone()))
            })
            .collect();
        let clients: Vec<_> = (0..CLIENTS as u64)
            .map(|client| {
                let seed = seed.wrapping_add(300 + client);
                let discover = tokio_stream::iter(servers.clone().into_iter().enumerate().map(
                    |(key, server)| Ok::<_, std::convert::Infallible>(Change::Insert(key, server)),
                ));
                let balancer = SharedP2c::new_with(
                    discover,
                    P2cConfig::default().with_seed(seed),
                    TokioClock::new(),
                    PeakSuccess,
                )
                .expect("a valid balancer");
                let breaker = BreakerConfig::default()
                    .with_seed(seed)
                    .build_with(TokioClock::new())
                    .expect("a valid breaker");
                let budget = RatioConfig::default()
                    .build_with(TokioClock::new())
                    .expect("a valid budget");
                let retry = RetryLayer::new(RetryConfig::default().with_seed(seed), budget)
                    .expect("a valid retry layer");
                retry.layer(BreakerLayer::from_breaker(Arc::new(breaker)).layer(balancer))
            })
            .collect();
        drive(
            arrivals,
            DEADLINE,
            async |n| sim::call(&clients[n % CLIENTS]),
            tick,
        )
        .await
    } else {
        let servers: Vec<_> = backends
            .iter()
            .zip(&counters)
            .map(|(backend, counter)| counter.layer(backend.clone()))
            .collect();
        drive(
            arrivals,
            DEADLINE,
            async |n| sim::call(&servers[n % SERVERS]),
            tick,
        )
        .await
    };
    (
        records,
        handles.iter().map(|handle| handle.stats().requests).sum(),
    )
}
