//! `hedge-tail`, `hedge-shift` and `hedge-heavy`: ten replicas behind rampart's P2C balancer,
//! each request sent through no hedging, tower's `Hedge`, or rampart's hedge layer, on the same
//! arrivals with the same requests.
//!
//! "The Tail at Scale" (Dean and Barroso, 2013) cuts a service's tail by sending a second copy
//! of a request that is slower than most; the three scenarios show when that works and when the
//! copies become the load:
//!
//! - `hedge-tail`: each replica pauses 1 % of its time, 20 ms at a time, and holds every
//!   response it finishes in a pause back 200 ms: about 1 % of requests stalled (0.6 % to 0.9 %
//!   behind P2C, which steers new requests away from a paused replica). A copy sent after the
//!   97th percentile of latency cuts the p99.9 for a few percent more requests, if it goes to
//!   another replica: one sent to the paused replica still in its pause stalls as well.
//! - `hedge-shift`: at 0.9× capacity every response turns 4× slower for 30 s while everything
//!   still succeeds. A hedge delay read from past latencies lags behind rising ones (the
//!   slowdown, or a burst of queueing, which at 0.9× comes on its own) and then fires for
//!   almost every request: without a budget the copies nearly double the work of a fleet that
//!   had 10 % to spare, its queues grow, latencies rise further, and the copies keep coming.
//! - `hedge-heavy`: 5 % of requests cost 50× the others. They fill the latency tail, so a hedge
//!   delay taken from it copies them, and a copy of an expensive request is as expensive. Both
//!   hedging stacks are told never to copy a heavy request (tower's policy through
//!   `can_retry`, rampart's layer through its filter); a third hedges without the filter,
//!   within the budget alone.
//!
//! The fleet and its requests are in `replicas.rs` (a request's cost is the same in each of its
//! copies, in every stack; a replica's pauses are the same in every stack, and a response
//! stalls if it ends in one), the stacks in `stacks.rs`, the
//! figures every scenario shares in `figures.rs`, and each scenario's run, figures and checks
//! in its own file.

mod figures;
mod heavy;
mod replicas;
mod shift;
mod stacks;
mod tail;

use std::time::Duration;

use super::Scenario;

pub(super) const HEDGE_TAIL: Scenario = Scenario {
    name: "hedge-tail",
    description: "10 replicas (4 workers, log-normal 5 ms median, 15 ms p99), each paused 1 % of its time (20 ms pauses), stalling the responses it finishes in a pause for 200 ms; 0.5× capacity",
    duration: Duration::from_secs(30),
    stacks: stacks::NAMES,
    run: tail::run,
};

pub(super) const HEDGE_SHIFT: Scenario = Scenario {
    name: "hedge-shift",
    description: "the hedge-tail fleet at 0.9× capacity; from 10 s every response takes 4× longer for 30 s (no worker held longer, nothing fails)",
    duration: Duration::from_secs(50),
    stacks: stacks::NAMES,
    run: shift::run,
};

pub(super) const HEDGE_HEAVY: Scenario = Scenario {
    name: "hedge-heavy",
    description: "the hedge-tail fleet at 0.5× capacity; 5 % of requests cost 50× the others, in every copy; tower and rampart told not to hedge them, rampart also without that filter",
    duration: Duration::from_secs(60),
    stacks: stacks::HEAVY_NAMES,
    run: heavy::run,
};

/// Poisson arrivals at `rate(t)`, strictly increasing (two requests never share an instant), so
/// that the `n`th record of a run, in sending order, is request `n`'s.
fn arrivals(seed: u64, duration: Duration, rate: impl Fn(Duration) -> f64) -> Vec<Duration> {
    let mut arrivals = crate::sim::arrivals(seed, duration, rate);
    for n in 1..arrivals.len() {
        if arrivals[n] <= arrivals[n - 1] {
            arrivals[n] = arrivals[n - 1] + Duration::from_nanos(1);
        }
    }
    arrivals
}
