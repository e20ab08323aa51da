//! `slow-endpoint` and `black-hole`: five endpoints, one of which turns bad half way; how much
//! traffic each balancer still sends it, and what clients see.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_balancer::{Kratos, P2c, P2cConfig, PeakSuccess, Score};
use rampart_core::TokioClock;
use rampart_fault::{Distribution, Fault, FaultConfig, FaultHandle, FaultLayer};
use tower::discover::Change;
use tower::util::ServiceFn;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::{Options, Scenario};
use crate::report::{self, Chart, Check, ScenarioReport, StackReport};
use crate::sim::{
    self, Call, Fate, Record, Sampler, Samples, arrivals, between, drive, outcome, simulate,
};
use crate::thresholds;

const BEFORE: Duration = Duration::from_secs(20);
const AFTER: Duration = Duration::from_secs(20);
/// Measured from this long after the change: the time any balancer needs to notice.
const SETTLE: Duration = Duration::from_secs(2);
const ENDPOINTS: usize = 5;
const BAD: usize = 4;
const RATE: f64 = 1_000.0;
/// 10× the healthy p99 (20 ms) would cut the slow endpoint's whole tail; clients here wait 1 s
/// so its latency shows in the p99 rather than as timeouts.
const DEADLINE: Duration = Duration::from_secs(1);
const BIN: Duration = Duration::from_secs(1);

const STACKS: &[&str] = &[
    "round robin",
    "tower P2C+PeakEwma",
    "rampart P2C PeakSuccess",
    "rampart P2C Kratos",
];
const RAMPART: &str = "rampart P2C PeakSuccess";
const TOWER: &str = "tower P2C+PeakEwma";

pub(super) const SLOW_ENDPOINT: Scenario = Scenario {
    name: "slow-endpoint",
    description: "5 endpoints (10 ms median, 20 ms p99); at 20 s one turns 10× slow; 1 000 requests per second",
    duration: Duration::from_secs(40),
    stacks: STACKS,
    run: |options, progress| run(options, progress, Misbehaviour::Slow),
};

pub(super) const BLACK_HOLE: Scenario = Scenario {
    name: "black-hole",
    description: "5 endpoints (10 ms median, 20 ms p99); at 20 s one starts failing every call in 1 ms; 1 000 requests per second",
    run: |options, progress| run(options, progress, Misbehaviour::BlackHole),
    ..SLOW_ENDPOINT
};

#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    Slow,
    BlackHole,
}

impl Misbehaviour {
    fn config(self) -> FaultConfig {
        match self {
            Self::Slow => FaultConfig::default().with_latency(Distribution::log_normal_p99(
                Duration::from_millis(100),
                Duration::from_millis(200),
            )),
            Self::BlackHole => FaultConfig::default()
                .with_delay(Duration::from_millis(1))
                .with_error_rate(1.0),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stack {
    RoundRobin,
    Tower,
    PeakSuccess,
    Kratos,
}

/// When the endpoint turns bad, when measuring starts, when the run ends.
#[derive(Debug, Clone, Copy)]
struct Phases {
    before: Duration,
    from: Duration,
    duration: Duration,
}

type Answer = fn(()) -> std::future::Ready<Result<(), Infallible>>;
type Endpoint = Fault<ServiceFn<Answer>>;

fn run(
    options: &Options,
    progress: &mut dyn FnMut(&str),
    misbehaviour: Misbehaviour,
) -> ScenarioReport {
    let (before, after) = (options.scaled(BEFORE), options.scaled(AFTER));
    let duration = before + after;
    let arrivals = arrivals(options.seed, duration, |_| RATE);
    let scenario = match misbehaviour {
        Misbehaviour::Slow => SLOW_ENDPOINT,
        Misbehaviour::BlackHole => BLACK_HOLE,
    };
    let mut reports = Vec::new();
    for (name, stack) in STACKS.iter().zip([
        Stack::RoundRobin,
        Stack::Tower,
        Stack::PeakSuccess,
        Stack::Kratos,
    ]) {
        progress(name);
        let phases = Phases {
            before,
            from: before + SETTLE.min(after),
            duration,
        };
        let (records, counts) = simulate(run_stack(
            stack,
            options.seed,
            &arrivals,
            phases,
            misbehaviour.config(),
        ));
        reports.push(summarise(name, &records, &counts, phases.from, duration));
    }
    let checks = match misbehaviour {
        Misbehaviour::Slow => {
            let towers = report::figure(&reports, TOWER, "p99_ms");
            vec![
                Check::at_most(&reports, RAMPART, "share", thresholds::SLOW_SHARE),
                Check::at_most(
                    &reports,
                    RAMPART,
                    "p99_ms",
                    thresholds::SLOW_P99_RATIO * towers,
                ),
            ]
        }
        Misbehaviour::BlackHole => vec![Check::at_most(
            &reports,
            RAMPART,
            "error_rate",
            thresholds::BLACK_HOLE_ERRORS,
        )],
    };
    scenario.report(
        duration,
        BIN,
        vec![
            Chart::new("share", "the bad endpoint's share of requests"),
            match misbehaviour {
                Misbehaviour::Slow => Chart::p99(),
                Misbehaviour::BlackHole => {
                    Chart::new("error_rate", "errors seen by clients (share)")
                }
            },
        ],
        reports,
        checks,
    )
}

fn summarise(
    name: &str,
    records: &[Record],
    counts: &Samples,
    from: Duration,
    duration: Duration,
) -> StackReport {
    let measured: Vec<&Record> = between(records, from, duration).collect();
    let bad_calls = counts.rise(BAD, from..duration) as f64;
    let failed = |records: &[&Record]| sim::share(records, |r| r.fate != Fate::Served);
    StackReport::new(name)
        .figure("share", bad_calls / (measured.len() as f64).max(1.0))
        .figure("p50_ms", sim::success_quantile_ms(&measured, 0.5))
        .figure("p99_ms", sim::success_quantile_ms(&measured, 0.99))
        .figure("error_rate", failed(&measured))
        .series(
            "share",
            sim::series(records, duration, BIN, |span, bin| {
                counts.rise(BAD, span) as f64 / (bin.len() as f64).max(1.0)
            }),
        )
        .series("p99_ms", sim::p99_series(records, duration, BIN))
        .series(
            "error_rate",
            sim::series(records, duration, BIN, |_, bin| failed(bin)),
        )
}

/// Five healthy endpoints, each with its own seed, and their handles.
fn endpoints(seed: u64) -> (Vec<(usize, Endpoint)>, Vec<FaultHandle>) {
    let healthy =
        Distribution::log_normal_p99(Duration::from_millis(10), Duration::from_millis(20));
    (0..ENDPOINTS)
        .map(|i| {
            let config = FaultConfig::default()
                .with_latency(healthy)
                .with_seed(seed.wrapping_add(100 + i as u64));
            let (layer, handle) = FaultLayer::pair(config).expect("valid faults");
            let answer: Answer = |()| std::future::ready(Ok(()));
            ((i, layer.layer(service_fn(answer))), handle)
        })
        .unzip()
}

/// Runs one stack; returns the records and every endpoint's request count each second.
async fn run_stack(
    stack: Stack,
    seed: u64,
    arrivals: &[Duration],
    phases: Phases,
    bad: FaultConfig,
) -> (Vec<Record>, Samples) {
    let Phases {
        before,
        from,
        duration,
    } = phases;
    let (endpoints, handles) = endpoints(seed);
    let samples = Samples::default();
    let bad = bad.with_seed(seed.wrapping_add(100 + BAD as u64));
    let mut changed = false;
    let mut times = sim::bin_starts(duration, BIN);
    times.push(from);
    let mut counter = Sampler::new(samples.clone(), times);
    let final_handles = handles.clone();
    let tick = move |at: Duration| {
        if at >= before && !changed {
            changed = true;
            handles[BAD].set(bad.clone()).expect("valid faults");
        }
        counter.tick(at, || handles.iter().map(|h| h.stats().requests).collect());
    };
    let records = match stack {
        Stack::RoundRobin => {
            run_balancer(
                RoundRobin::new(endpoints.into_iter().map(|(_, e)| e).collect()),
                arrivals,
                tick,
            )
            .await
        }
        Stack::Tower => run_balancer(tower_peak_ewma(endpoints, seed), arrivals, tick).await,
        Stack::PeakSuccess => {
            run_balancer(rampart(endpoints, seed, PeakSuccess), arrivals, tick).await
        }
        Stack::Kratos => run_balancer(rampart(endpoints, seed, Kratos), arrivals, tick).await,
    };
    // Every request has reached its endpoint: the last count closes the run.
    samples.take(
        duration,
        final_handles.iter().map(|h| h.stats().requests).collect(),
    );
    (records, samples)
}

#[allow(
    clippy::async_yields_async,
    reason = "the driver awaits each call in a task of its own"
)]
async fn run_balancer<B>(
    mut balancer: B,
    arrivals: &[Duration],
    tick: impl FnMut(Duration),
) -> Vec<Record>
where
    B: Service<(), Response = (), Error = BoxError>,
    B::Future: Send + 'static,
{
    drive(
        arrivals,
        DEADLINE,
        async |_| -> Call {
            match balancer.ready().await {
                Ok(ready) => {
                    let call = ready.call(());
                    Call::new(async move { outcome(&call.await) })
                }
                Err(error) => {
                    let outcome = outcome::<()>(&Err(error));
                    Call::new(async move { outcome })
                }
            }
        },
        tick,
    )
    .await
}

fn discover(
    endpoints: Vec<(usize, Endpoint)>,
) -> impl tower::discover::Discover<Key = usize, Service = Endpoint, Error = Infallible> {
    tokio_stream::iter(
        endpoints
            .into_iter()
            .map(|(key, endpoint)| Ok::<_, Infallible>(Change::Insert(key, endpoint))),
    )
}

fn rampart<S: Score>(
    endpoints: Vec<(usize, Endpoint)>,
    seed: u64,
    score: S,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send + 'static> {
    P2c::new_with(
        discover(endpoints),
        P2cConfig::default().with_seed(seed),
        TokioClock::new(),
        score,
    )
    .expect("a valid balancer")
}

/// A seeded generator for tower's `Balance`, so its picks repeat with the seed.
struct Seeded(fastrand::Rng);

impl tower::util::rng::Rng for Seeded {
    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

/// tower's `Balance` over `PeakEwma`, its usual pairing: a 10 ms prior RTT (the healthy
/// median) and the 600 ms decay of its examples.
fn tower_peak_ewma(
    endpoints: Vec<(usize, Endpoint)>,
    seed: u64,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send + 'static> {
    let load = tower::load::PeakEwmaDiscover::new(
        discover(endpoints),
        Duration::from_millis(10),
        Duration::from_millis(600),
        tower::load::CompleteOnResponse::default(),
    );
    tower::balance::p2c::Balance::from_rng(load, Seeded(fastrand::Rng::with_seed(seed)))
}

/// The simplest balancer: each endpoint in turn, whatever its health.
struct RoundRobin<S> {
    endpoints: Vec<S>,
    next: usize,
}

impl<S> RoundRobin<S> {
    fn new(endpoints: Vec<S>) -> Self {
        Self { endpoints, next: 0 }
    }
}

impl<S, Req> Service<Req> for RoundRobin<S>
where
    S: Service<Req, Error = BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.endpoints[self.next].poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let future = self.endpoints[self.next].call(request);
        self.next = (self.next + 1) % self.endpoints.len();
        future
    }
}
