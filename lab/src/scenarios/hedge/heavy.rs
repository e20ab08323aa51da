//! `hedge-heavy`: 5 % of requests cost 50× the others, wherever they go. They are the latency
//! tail, so a hedge delay read from it sends them a copy, and the copy costs as much and ends no
//! sooner: the heavy work is done twice while the stalled light requests wait as before.
//!
//! Both hedging stacks are told the same: a heavy request is never copied (tower's policy
//! answers `can_retry` with false for it, rampart's layer is given the filter). Neither copies
//! one; what differs is the delay. tower times every request, so its 97th percentile lies among
//! the heavy requests' latencies and it hardly hedges the light ones: their stalls stay. rampart
//! times only the requests it may hedge, and hedges the stalled light ones. A third stack,
//! rampart's layer without the filter, shows what the budget alone does: 5 % of requests are
//! heavy and the budget is 5 %, so it copies about half of them, and the light requests queue
//! behind the copies.

use std::time::Duration;

use super::figures::{BIN, Run};
use super::replicas::{self, Request};
use super::stacks::{self, HEAVY_STACKS, RAMPART, Traffic, simulate_stack};
use super::{HEDGE_HEAVY, arrivals};
use crate::report::{self, Chart, Check, ScenarioReport};
use crate::scenarios::Options;
use crate::thresholds;

/// The offered load, as a share of the fleet's capacity (with the heavy requests' cost).
const LOAD: f64 = 0.5;
/// The share of heavy requests.
const HEAVY: f64 = 0.05;
/// The clients' deadline: long enough that every heavy request is served.
const DEADLINE: Duration = Duration::from_secs(5);

pub(super) fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let duration = options.scaled(HEDGE_HEAVY.duration);
    let rate = LOAD * replicas::capacity(HEAVY);
    let arrivals = arrivals(options.seed, duration, |_| rate);
    let mut rng = fastrand::Rng::with_seed(options.seed.wrapping_add(0x0048_4541_5659));
    let requests: Vec<Request> = (0..arrivals.len() as u32)
        .map(|id| Request {
            id,
            heavy: rng.f64() < HEAVY,
        })
        .collect();
    let traffic = Traffic {
        seed: options.seed,
        arrivals: &arrivals,
        requests: &requests,
        deadline: DEADLINE,
    };
    let (light, heavy) = (|r: &Request| !r.heavy, |r: &Request| r.heavy);
    let mut reports = Vec::new();
    for (name, stack) in stacks::HEAVY_NAMES.iter().zip(HEAVY_STACKS.iter().copied()) {
        progress(name);
        let (records, fleet) = simulate_stack(stack, traffic, |_, _| {});
        let (sent, hedged_at) = (fleet.sent(), fleet.hedged_at());
        let run = Run {
            records: &records,
            sent: &sent,
            requests: &requests,
            hedged_at: &hedged_at,
        };
        let all = 0..requests.len();
        let report = run
            .summary(name, all.clone(), duration)
            .figure("p999_light_ms", run.quantile_ms(all.clone(), 0.999, light))
            .figure("p999_heavy_ms", run.quantile_ms(all.clone(), 0.999, heavy))
            .figure("extra_load_light", run.extra_load(all.clone(), light))
            .figure("extra_load_heavy", run.extra_load(all, heavy))
            .series(
                "p999_heavy_ms",
                run.per_bin(duration, |bin| run.quantile_ms(bin, 0.999, heavy)),
            );
        reports.push(report);
    }
    let unhedged = report::figure(&reports, stacks::NONE, "p999_heavy_ms");
    for report in &mut reports {
        let ratio = report.get("p999_heavy_ms") / unhedged;
        report.set("p999_heavy_vs_unhedged", ratio);
    }
    let checks = vec![Check::at_most(
        &reports,
        RAMPART,
        "p999_heavy_vs_unhedged",
        thresholds::HEDGE_HEAVY_P999_RATIO,
    )];
    let charts = vec![
        Chart::new("extra_load", "copies beyond the first, per request"),
        Chart::new("p999_heavy_ms", "p99.9 of heavy requests' successes (ms)"),
        Chart::new("p999_ms", "p99.9 of successes (ms)"),
    ];
    HEDGE_HEAVY.report(duration, BIN, charts, reports, checks)
}
