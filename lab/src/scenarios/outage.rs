//! `outage`: a backend fails every call for 20 s, then recovers; the breaker's rejection modes
//! against no breaker.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use rampart_breaker::{BreakerConfig, BreakerLayer, Rejections};
use rampart_core::TokioClock;
use rampart_fault::{FaultConfig, FaultLayer};
use tower::{Layer, service_fn};

use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Call, Fate, Record, Sampler, Samples, arrivals, between, drive, simulate};
use crate::thresholds;

const HEALTHY: Duration = Duration::from_secs(10);
const DOWN: Duration = Duration::from_secs(20);
const AFTER: Duration = Duration::from_secs(30);
const RATE: f64 = 1_000.0;
const DEADLINE: Duration = Duration::from_millis(200);
const BIN: Duration = Duration::from_millis(500);

pub(super) const OUTAGE: Scenario = Scenario {
    name: "outage",
    description: "a backend fails every call for 20 s, then recovers; 1 000 requests per second",
    duration: Duration::from_secs(60),
    stacks: &[
        "none",
        "rampart breaker Sre",
        "rampart breaker Ignore",
        "rampart breaker Adaptive",
    ],
    run,
};

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let (healthy, down, after) = (
        options.scaled(HEALTHY),
        options.scaled(DOWN),
        options.scaled(AFTER),
    );
    let duration = healthy + down + after;
    let arrivals = arrivals(options.seed, duration, |_| RATE);
    let modes = [
        None,
        Some(Rejections::Sre),
        Some(Rejections::Ignore),
        Some(Rejections::Adaptive),
    ];
    let window = BreakerConfig::default().window;
    let mut reports = Vec::new();
    for (name, mode) in OUTAGE.stacks.iter().zip(modes) {
        progress(name);
        let (records, backend_calls) =
            simulate(run_stack(mode, options.seed, &arrivals, healthy, down));
        let leak = healthy + window..healthy + down;
        let requests_in_leak = between(&records, leak.start, leak.end).count() as f64;
        let calls_in_leak = backend_calls.rise(0, leak) as f64;
        let recovery = recovery_time(&records, healthy + down, duration);
        let all: Vec<&Record> = records.iter().collect();
        reports.push(
            StackReport::new(*name)
                .figure("leak", calls_in_leak / requests_in_leak.max(1.0))
                .figure("recovery_s", recovery.as_secs_f64())
                .figure("success", sim::share(&all, Record::is_good))
                .series(
                    "admitted",
                    sim::series(&records, duration, BIN, |_, bin| sim::share(bin, admitted)),
                ),
        );
    }
    let adaptive = "rampart breaker Adaptive";
    let checks = vec![
        Check::at_most(&reports, adaptive, "leak", thresholds::OUTAGE_LEAK),
        Check::at_most(
            &reports,
            adaptive,
            "recovery_s",
            thresholds::OUTAGE_RECOVERY_S,
        ),
    ];
    OUTAGE.report(
        duration,
        BIN,
        vec![Chart::new("admitted", "requests admitted (share)")],
        reports,
        checks,
    )
}

/// Runs one stack; returns the records and the backend's call count at every phase edge.
async fn run_stack(
    mode: Option<Rejections>,
    seed: u64,
    arrivals: &[Duration],
    healthy: Duration,
    down: Duration,
) -> (Vec<Record>, Samples) {
    let (faults, handle) = FaultLayer::pair(
        FaultConfig::default()
            .with_delay(Duration::from_millis(2))
            .with_seed(seed),
    )
    .expect("valid faults");
    let backend = faults.layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    let breaker = mode.map(|rejections| {
        let config = BreakerConfig::default()
            .with_rejections(rejections)
            .with_seed(seed);
        BreakerLayer::from_breaker(Arc::new(
            config
                .build_with(TokioClock::new())
                .expect("a valid breaker"),
        ))
    });
    let next_call: Box<dyn Fn() -> Call> = match breaker {
        None => sim::caller(backend),
        Some(layer) => {
            let service = layer.layer(backend);
            sim::caller(service)
        }
    };
    let samples = Samples::default();
    let window = BreakerConfig::default().window;
    let edges = vec![healthy + window, healthy + down];
    let (mut counter, mut failing) = (Sampler::new(samples.clone(), edges), false);
    let records = drive(
        arrivals,
        DEADLINE,
        async |_| next_call(),
        |at| {
            let should_fail = at >= healthy && at < healthy + down;
            if should_fail != failing {
                failing = should_fail;
                handle
                    .update(|config| config.error_rate = if failing { 1.0 } else { 0.0 })
                    .expect("a valid rate");
            }
            counter.tick(at, || vec![handle.stats().requests]);
        },
    )
    .await;
    (records, samples)
}

/// Whether a request was let through to the backend (a failure was, too).
fn admitted(record: &Record) -> bool {
    record.fate != Fate::Refused
}

/// Time from `recovered` until every following one-second span admits ≥ 99 % of requests.
fn recovery_time(records: &[Record], recovered: Duration, end: Duration) -> Duration {
    let step = Duration::from_millis(100);
    let span_ok = |from: Duration| {
        let span: Vec<&Record> = between(records, from, from + Duration::from_secs(1)).collect();
        let passed = span.iter().filter(|r| admitted(r)).count();
        passed as f64 >= 0.99 * span.len() as f64
    };
    let mut candidate = recovered;
    let mut from = recovered;
    while from + Duration::from_secs(1) <= end {
        if !span_ok(from) {
            candidate = from + step;
        }
        from += step;
    }
    candidate.saturating_sub(recovered)
}
