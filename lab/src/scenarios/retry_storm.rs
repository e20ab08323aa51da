//! `retry-storm`: a backend fails every call for 30 s, then 10 % of them for 30 s; naive
//! retries against tower's and rampart's budgets.

use std::convert::Infallible;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::TokioClock;
use rampart_fault::{FaultConfig, FaultLayer};
use rampart_retry::{RatioConfig, RetryConfig, RetryLayer, TokenConfig, Unlimited};
use tower::retry::budget::TpsBudget;
use tower::{Layer, service_fn};

use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Call, Record, Sampler, Samples, arrivals, between, drive, simulate};
use crate::thresholds;

const DOWN: Duration = Duration::from_secs(30);
const PARTIAL: Duration = Duration::from_secs(30);
const RATE: f64 = 1_000.0;
const DEADLINE: Duration = Duration::from_secs(2);
const BIN: Duration = Duration::from_secs(1);
/// rampart's default budget's `min_per_sec`.
const MIN_PER_SEC: f64 = 10.0;

pub(super) const RETRY_STORM: Scenario = Scenario {
    name: "retry-storm",
    description: "a backend fails 100 % for 30 s, then 10 % for 30 s; 1 000 requests per second, 3 attempts each",
    duration: Duration::from_secs(60),
    stacks: &[
        "naive 3 attempts",
        "tower Retry+TpsBudget",
        "rampart RatioBudget",
        "rampart TokenBudget",
    ],
    run,
};

#[derive(Debug, Clone, Copy)]
enum Stack {
    Naive,
    Tower,
    Ratio,
    Token,
}

/// tower's usual policy: deposit on success, withdraw before each retry, three attempts,
/// waiting 25 ms before a retry (rampart's backoff averages about that).
#[derive(Clone)]
pub(super) struct TowerPolicy {
    budget: Arc<TpsBudget>,
    attempts: u32,
}

impl TowerPolicy {
    /// The policy of a client whose retries draw on `budget`.
    pub(super) fn new(budget: Arc<TpsBudget>) -> Self {
        Self {
            budget,
            attempts: 1,
        }
    }
}

impl<Req: Clone, E> tower::retry::Policy<Req, (), E> for TowerPolicy {
    type Future = Pin<Box<tokio::time::Sleep>>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<(), E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget as _;
        match result {
            Ok(()) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts < 3 && self.budget.withdraw() => {
                self.attempts += 1;
                Some(Box::pin(tokio::time::sleep(Duration::from_millis(25))))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let (down, partial) = (options.scaled(DOWN), options.scaled(PARTIAL));
    let duration = down + partial;
    let arrivals = arrivals(options.seed, duration, |_| RATE);
    let mut reports = Vec::new();
    for (name, stack) in
        RETRY_STORM
            .stacks
            .iter()
            .zip([Stack::Naive, Stack::Tower, Stack::Ratio, Stack::Token])
    {
        progress(name);
        let (records, calls) = simulate(run_stack(stack, options.seed, &arrivals, down, duration));
        let amplification = |span: Range<Duration>, requests: usize| {
            calls.rise(0, span) as f64 / (requests as f64).max(1.0)
        };
        let in_down = between(&records, Duration::ZERO, down).count();
        let in_partial: Vec<&Record> = between(&records, down, duration).collect();
        reports.push(
            StackReport::new(*name)
                .figure(
                    "amplification_down",
                    amplification(Duration::ZERO..down, in_down),
                )
                .figure(
                    "amplification_partial",
                    amplification(down..duration, in_partial.len()),
                )
                .figure("success_partial", sim::share(&in_partial, Record::is_good))
                .series(
                    "amplification",
                    sim::series(&records, duration, BIN, |span, bin| {
                        amplification(span, bin.len())
                    }),
                )
                .series(
                    "success",
                    sim::series(&records, duration, BIN, |_, bin| {
                        sim::share(bin, Record::is_good)
                    }),
                ),
        );
    }
    let ratio = "rampart RatioBudget";
    let checks = vec![
        Check::at_most(
            &reports,
            ratio,
            "amplification_down",
            thresholds::STORM_AMPLIFICATION + MIN_PER_SEC / RATE,
        ),
        Check::at_least(
            &reports,
            ratio,
            "success_partial",
            thresholds::STORM_SUCCESS,
        ),
    ];
    RETRY_STORM.report(
        duration,
        BIN,
        vec![
            Chart::new("amplification", "backend calls per client request"),
            Chart::new("success", "requests that succeeded (share)"),
        ],
        reports,
        checks,
    )
}

/// Runs one stack; returns the records and the backend's call count each second.
async fn run_stack(
    stack: Stack,
    seed: u64,
    arrivals: &[Duration],
    down: Duration,
    duration: Duration,
) -> (Vec<Record>, Samples) {
    let faults = FaultConfig::default()
        .with_delay(Duration::from_millis(1))
        .with_error_rate(1.0)
        .with_seed(seed);
    let (faults, handle) = FaultLayer::pair(faults).expect("valid faults");
    let backend = faults.layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    let config = RetryConfig::default().with_seed(seed);
    let next_call: Box<dyn Fn() -> Call> = match stack {
        Stack::Naive => sim::caller(
            RetryLayer::new(config, Unlimited)
                .expect("valid")
                .layer(backend),
        ),
        Stack::Ratio => {
            let budget = RatioConfig::default()
                .build_with(TokioClock::new())
                .expect("valid");
            sim::caller(
                RetryLayer::new(config, budget)
                    .expect("valid")
                    .layer(backend),
            )
        }
        Stack::Token => sim::caller(
            RetryLayer::new(config, TokenConfig::default().build().expect("valid"))
                .expect("valid")
                .layer(backend),
        ),
        Stack::Tower => {
            let policy = TowerPolicy::new(Arc::new(TpsBudget::default()));
            sim::caller(tower::retry::RetryLayer::new(policy).layer(backend))
        }
    };
    let samples = Samples::default();
    // Counts at every bin and when the backend recovers (`down` need not be a whole second).
    let mut times = sim::bin_starts(duration, BIN);
    times.push(down);
    let (mut counter, mut partial) = (Sampler::new(samples.clone(), times), false);
    let records = drive(
        arrivals,
        DEADLINE,
        async |_| next_call(),
        |at| {
            counter.tick(at, || vec![handle.stats().requests]);
            if at >= down && !partial {
                partial = true;
                handle
                    .update(|config| config.error_rate = 0.1)
                    .expect("a valid rate");
            }
        },
    )
    .await;
    // The last count, once every retry has been made, closes the run.
    samples.take(duration, vec![handle.stats().requests]);
    (records, samples)
}
