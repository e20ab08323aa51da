//! `hedge-heavy`: 5 % of requests cost 50× the others, wherever they go. They are the latency
//! tail, so a hedge delay read from it sends them a copy, and the copy costs as much and ends no
//! sooner: the heavy work is done twice while the stalled light requests wait as before.
//! rampart's stack marks the heavy requests as not to be hedged (its filter); its delay is then
//! read from the light requests' latencies alone, and their stalls are hedged. tower's policy
//! copies every request, as a policy that tells only whether a request is safe to copy does.

use std::time::Duration;

use super::figures::{BIN, Run};
use super::replicas::{self, Request};
use super::stacks::{self, RAMPART, STACKS, Traffic, simulate_stack};
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
    for (name, stack) in stacks::NAMES.iter().zip(STACKS) {
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
