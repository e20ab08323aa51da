//! `hedge-shift`: 0.9× the fleet's capacity; for 30 s every response takes 4× longer (the
//! replicas wait on something slower after their work: no worker is held longer, nothing
//! fails, so nothing that counts failures sees it). A hedge delay read from the latencies
//! before the change fires for almost every request until it catches up, and each copy takes a
//! worker: the copies are the load.

use std::time::Duration;

use super::figures::{BIN, Run};
use super::replicas::{self, Request};
use super::stacks::{self, BUDGET, RAMPART, STACKS, Traffic, simulate_stack};
use super::{HEDGE_SHIFT, arrivals};
use crate::report::{self, Chart, Check, ScenarioReport};
use crate::scenarios::Options;
use crate::thresholds;

/// The offered load, as a share of the fleet's capacity.
const LOAD: f64 = 0.9;
/// Before the slowdown.
const CALM: Duration = Duration::from_secs(10);
/// The slowdown.
const SLOW: Duration = Duration::from_secs(30);
/// How many times its usual latency a response takes during the slowdown.
const SLOWDOWN: u32 = 4;
/// The clients' deadline.
const DEADLINE: Duration = Duration::from_secs(1);

pub(super) fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let duration = options.scaled(HEDGE_SHIFT.duration);
    let (slow_from, slow_until) = (options.scaled(CALM), options.scaled(CALM + SLOW));
    let capacity = replicas::capacity(0.0);
    let arrivals = arrivals(options.seed, duration, |_| LOAD * capacity);
    let requests: Vec<Request> = (0..arrivals.len() as u32)
        .map(|id| Request { id, heavy: false })
        .collect();
    let traffic = Traffic {
        seed: options.seed,
        arrivals: &arrivals,
        requests: &requests,
        deadline: DEADLINE,
    };
    let mut reports = Vec::new();
    for (name, stack) in stacks::NAMES.iter().zip(STACKS.iter().copied()) {
        progress(name);
        let tick = |at: Duration, fleet: &replicas::Fleet| {
            let slow = at >= slow_from && at < slow_until;
            fleet.slow_down(if slow { SLOWDOWN } else { 1 });
        };
        let (records, fleet) = simulate_stack(stack, traffic, tick);
        let (sent, hedged_at) = (fleet.sent(), fleet.hedged_at());
        let run = Run {
            records: &records,
            sent: &sent,
            requests: &requests,
            hedged_at: &hedged_at,
        };
        let all = |_: &Request| true;
        let from_shift = run.sent_in(slow_from..duration);
        let slow = run.sent_in(slow_from..slow_until);
        let worst = run
            .extra_load_series(duration)
            .into_iter()
            .fold(0.0, f64::max);
        let goodput = run.per_bin(duration, |bin| {
            let good = records[bin].iter().filter(|r| r.is_good()).count();
            good as f64 / BIN.as_secs_f64() / capacity
        });
        let report = run
            .summary(name, 0..requests.len(), duration)
            .figure("extra_load_slow", run.extra_load(slow.clone(), all))
            .figure("worst_second_extra_load", worst)
            .figure("p99_slow_ms", run.quantile_ms(slow, 0.99, all))
            .figure("goodput", run.served(from_shift))
            .series("goodput", goodput);
        reports.push(report);
    }
    let unhedged = report::figure(&reports, stacks::NONE, "goodput");
    for report in &mut reports {
        let ratio = report.get("goodput") / unhedged;
        report.set("goodput_vs_unhedged", ratio);
    }
    let checks = vec![
        Check::at_most(
            &reports,
            RAMPART,
            "worst_second_extra_load",
            BUDGET + thresholds::HEDGE_SHIFT_OVER_BUDGET,
        ),
        Check::at_least(
            &reports,
            RAMPART,
            "goodput_vs_unhedged",
            thresholds::HEDGE_SHIFT_GOODPUT_VS_UNHEDGED,
        ),
    ];
    let charts = vec![
        Chart::new("extra_load", "copies beyond the first, per request"),
        Chart::new("goodput", "goodput (share of capacity)"),
        Chart::p99(),
    ];
    HEDGE_SHIFT.report(duration, BIN, charts, reports, checks)
}
