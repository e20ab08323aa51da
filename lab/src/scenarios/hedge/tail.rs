//! `hedge-tail`: half the fleet's capacity; each replica paused 1 % of its time, the responses
//! it finishes in a pause stalled 200 ms. Without hedging the stalls are the p99.9; a copy sent
//! after the 97th percentile of latency to another replica is rarely stalled too, and answers
//! in a few milliseconds; one sent to the paused replica stalls with the first if the pause
//! has not ended (the figure `hedges_elsewhere`: the share of copies sent to another replica).

use std::time::Duration;

use super::figures::{BIN, Run};
use super::replicas::{self, Request};
use super::stacks::{self, RAMPART, STACKS, Traffic, simulate_stack};
use super::{HEDGE_TAIL, arrivals};
use crate::report::{self, Chart, Check, ScenarioReport};
use crate::scenarios::Options;
use crate::thresholds;

/// The offered load, as a share of the fleet's capacity.
const LOAD: f64 = 0.5;
/// The clients' deadline: long enough that every stalled request is still served.
const DEADLINE: Duration = Duration::from_secs(1);

pub(super) fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let duration = options.scaled(HEDGE_TAIL.duration);
    let rate = LOAD * replicas::capacity(0.0);
    let arrivals = arrivals(options.seed, duration, |_| rate);
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
        let (records, fleet) = simulate_stack(stack, traffic, |_, _| {});
        let (sent, hedged_at) = (fleet.sent(), fleet.hedged_at());
        let run = Run {
            records: &records,
            sent: &sent,
            requests: &requests,
            hedged_at: &hedged_at,
        };
        reports.push(run.summary(name, 0..requests.len(), duration));
    }
    let unhedged = report::figure(&reports, stacks::NONE, "p999_ms");
    for report in &mut reports {
        let ratio = report.get("p999_ms") / unhedged;
        report.set("p999_vs_unhedged", ratio);
    }
    let checks = vec![
        Check::at_most(
            &reports,
            RAMPART,
            "p999_vs_unhedged",
            thresholds::HEDGE_TAIL_P999_RATIO,
        ),
        Check::at_most(
            &reports,
            RAMPART,
            "extra_load",
            thresholds::HEDGE_TAIL_EXTRA_LOAD,
        ),
    ];
    let charts = vec![
        Chart::new("p999_ms", "p99.9 of successes (ms)"),
        Chart::p99(),
        Chart::new("extra_load", "copies beyond the first, per request"),
    ];
    HEDGE_TAIL.report(duration, BIN, charts, reports, checks)
}
