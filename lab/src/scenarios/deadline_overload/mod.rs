//! `deadline-overload`: clients whose deadlines are spread over 50–500 ms offer half a server's
//! capacity, then three times it, then half again; the stacks that keep the server from working
//! on answers nobody waits for any more (a queue dropping the expired, `CoDel`, adaptive LIFO, BBR
//! without and with the requests' deadlines) on the same arrivals with the same deadlines.
//!
//! Each request's deadline is current (in its request context) while the stack handles it,
//! except for the limiter that is shown without deadlines; the server is told every request's
//! deadline where it takes the request, so that it can tell the work spent on answers that came
//! too late (it counts each request's worker time when it finishes, against its deadline). A
//! client gives up at its deadline: a late answer is not goodput.

mod stacks;

use std::time::Duration;

use self::stacks::{Refusal, Run, Stack, run_stack};
use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Fate, Record, Sampler, Samples, arrivals, between, simulate};
use crate::thresholds;

/// The phases: half the capacity, three times it, half again.
const LOW: Duration = Duration::from_secs(10);
const HIGH: Duration = Duration::from_secs(60);
const AFTER: Duration = Duration::from_secs(10);
/// The clients' deadlines, drawn uniformly in this range (in microseconds) for each request.
const DEADLINES_US: std::ops::RangeInclusive<u64> = 50_000..=500_000;
const BIN: Duration = Duration::from_millis(500);
/// A refusal as unable to finish is false when the deadline was at least this many times the
/// unloaded p99.
const FALSE_REFUSAL_MARGIN: f64 = 2.0;

const FIFO: &str = "none (FIFO)";
const EXPIRED_ONLY: &str = "expired only";
const CODEL: &str = "CoDel (5 ms / 100 ms)";
const LIFO: &str = "adaptive LIFO";
const BBR_BLIND: &str = "rampart BBR without deadlines";
const BBR_DEADLINE: &str = "rampart BBR with deadline-aware admission";

pub(super) const DEADLINE_OVERLOAD: Scenario = Scenario {
    name: "deadline-overload",
    description: "clients with deadlines uniform in 50–500 ms offer 0.5× a server's capacity (8 workers, 10 ms) for 10 s, 3× for 60 s, 0.5× for 10 s",
    duration: Duration::from_secs(80),
    stacks: &[FIFO, EXPIRED_ONLY, CODEL, LIFO, BBR_BLIND, BBR_DEADLINE],
    run,
};

/// The run's phases, scaled.
#[derive(Debug, Clone, Copy)]
struct Phases {
    low: Duration,
    high: Duration,
    duration: Duration,
}

impl Phases {
    fn high_end(&self) -> Duration {
        self.low + self.high
    }

    /// Whether a request sent at `at` falls in a 0.5× phase.
    fn in_low(&self, at: Duration) -> bool {
        at < self.low || at >= self.high_end()
    }
}

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let phases = Phases {
        low: options.scaled(LOW),
        high: options.scaled(HIGH),
        duration: options.scaled(LOW + HIGH + AFTER),
    };
    let config = super::overload::server(options.seed);
    let capacity = config.capacity();
    let arrivals = arrivals(options.seed, phases.duration, |at| {
        let factor = if at >= phases.low && at < phases.high_end() {
            3.0
        } else {
            0.5
        };
        factor * capacity
    });
    let mut draws = fastrand::Rng::with_seed(options.seed ^ 0xdead_11e5);
    let deadlines: Vec<Duration> = arrivals
        .iter()
        .map(|_| Duration::from_micros(draws.u64(DEADLINES_US)))
        .collect();
    let stacks = [
        Stack::Fifo,
        Stack::ExpiredOnly,
        Stack::CoDel,
        Stack::AdaptiveLifo,
        Stack::BbrBlind,
        Stack::BbrDeadline,
    ];
    let mut reports = Vec::new();
    for (name, stack) in DEADLINE_OVERLOAD.stacks.iter().zip(stacks) {
        progress(name);
        let samples = Samples::default();
        let mut times = sim::bin_starts(phases.duration, BIN);
        times.extend([phases.low, phases.high_end()]);
        let work = Sampler::new(samples.clone(), times);
        let run = simulate(run_stack(
            stack,
            config.clone(),
            &arrivals,
            &deadlines,
            work,
        ));
        reports.push(summarise(
            name, &run, &arrivals, &deadlines, &samples, phases, capacity,
        ));
    }
    let checks = vec![
        Check::at_least(
            &reports,
            BBR_DEADLINE,
            "useful_goodput",
            thresholds::DEADLINE_OVERLOAD_GOODPUT,
        ),
        Check::at_most(
            &reports,
            BBR_DEADLINE,
            "wasted",
            thresholds::DEADLINE_OVERLOAD_WASTED,
        ),
        Check::at_most(
            &reports,
            BBR_DEADLINE,
            "false_early_refusals",
            thresholds::DEADLINE_OVERLOAD_FALSE_REFUSALS,
        ),
        Check::at_most(
            &reports,
            BBR_DEADLINE,
            "refuse_p99_ms",
            thresholds::DEADLINE_OVERLOAD_REFUSE_P99_MS,
        ),
    ];
    DEADLINE_OVERLOAD.report(
        phases.duration,
        BIN,
        vec![
            Chart::new("goodput", "useful goodput (share of capacity)"),
            Chart::new(
                "wasted",
                "busy time on answers after their deadline (share)",
            ),
            Chart::p99(),
        ],
        reports,
        checks,
    )
}

/// A stack's figures: useful goodput in the 3× phase, the server's busy time spent on answers
/// after their deadline over it, refusals as unable to finish in the 0.5× phases of requests
/// whose deadline was ample, and how long a refusal took.
fn summarise(
    name: &str,
    run: &Run,
    arrivals: &[std::time::Duration],
    deadlines: &[Duration],
    samples: &Samples,
    phases: Phases,
    capacity: f64,
) -> StackReport {
    let records = &run.records;
    let before: Vec<&Record> = between(records, Duration::ZERO, phases.low).collect();
    let unloaded_p99 = sim::success_quantile_ms(&before, 0.99);
    let in_high: Vec<&Record> = between(records, phases.low, phases.high_end()).collect();
    let served = in_high.iter().filter(|r| r.is_good()).count() as f64;

    let wasted = |span: std::ops::Range<Duration>| {
        let busy = samples.rise(0, span.clone()) as f64;
        let late = samples.rise(1, span) as f64;
        if busy > 0.0 { late / busy } else { 0.0 }
    };

    let ample = Duration::from_secs_f64(FALSE_REFUSAL_MARGIN * unloaded_p99.max(0.0) / 1e3);
    let (mut low_requests, mut false_refusals) = (0_usize, 0_usize);
    for ((&at, &deadline), refusal) in arrivals.iter().zip(deadlines).zip(&run.refusals) {
        if !phases.in_low(at) {
            continue;
        }
        low_requests += 1;
        if matches!(refusal, Some((Refusal::WouldMiss, _))) && deadline >= ample {
            false_refusals += 1;
        }
    }
    let refusal_times: Vec<Duration> = run.refusals.iter().flatten().map(|r| r.1).collect();
    let refusals = |kind: Refusal| {
        let of_kind = run.refusals.iter().flatten().filter(|r| r.0 == kind);
        of_kind.count() as f64
    };
    let requests = arrivals.len() as f64;
    let share = |records: &[&Record], fate: Fate| sim::share(records, |r| r.fate == fate);
    let bin_s = BIN.as_secs_f64();
    StackReport::new(name)
        .figure(
            "useful_goodput",
            served / phases.high.as_secs_f64() / capacity,
        )
        .figure("wasted", wasted(phases.low..phases.high_end()))
        .figure(
            "false_early_refusals",
            false_refusals as f64 / (low_requests as f64).max(1.0),
        )
        .figure("refuse_p99_ms", sim::quantile_ms(refusal_times, 0.99))
        .figure("unloaded_p99_ms", unloaded_p99)
        .figure("p99_ms", sim::success_quantile_ms(&in_high, 0.99))
        .figure("refused", share(&in_high, Fate::Refused))
        .figure("timed_out", share(&in_high, Fate::TimedOut))
        .figure("would_miss", refusals(Refusal::WouldMiss) / requests)
        .figure("overloaded", refusals(Refusal::Overloaded) / requests)
        .series(
            "goodput",
            sim::series(records, phases.duration, BIN, |_, bin| {
                bin.iter().filter(|r| r.is_good()).count() as f64 / bin_s / capacity
            }),
        )
        .series(
            "wasted",
            sim::series(records, phases.duration, BIN, |span, _| wasted(span)),
        )
        .series("p99_ms", sim::p99_series(records, phases.duration, BIN))
}
