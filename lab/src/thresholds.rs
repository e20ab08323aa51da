//! Every threshold the lab holds rampart's stacks to, in one place. The tables print each one
//! beside the figure it bounds; `rampart-lab` exits non-zero if one is missed.

/// overload: BBR's goodput in the 3× phase, as a share of capacity.
pub const OVERLOAD_GOODPUT: f64 = 0.90;
/// overload and overload-io: p99 of successes in the 3× phase, as a multiple of the unloaded p99.
pub const OVERLOAD_P99_RATIO: f64 = 1.5;
/// overload-io: the `Latency` gate's goodput in the 3× phase, as a share of capacity.
pub const OVERLOAD_IO_GOODPUT: f64 = 0.90;
/// overload-runtime: the `Latency` gate's goodput in the 3× phase, as a share of capacity.
pub const RUNTIME_LATENCY_GOODPUT: f64 = 0.90;
/// overload-runtime: the default stack's (the delay signal's) goodput in the 3× phase, as a
/// share of capacity.
pub const RUNTIME_DEFAULT_GOODPUT: f64 = 0.90;
/// overload-runtime: the default stack's p99 of successes in the 3× phase, as a multiple of the
/// unloaded p99.
pub const RUNTIME_DEFAULT_P99_RATIO: f64 = 1.5;
/// overload-runtime-blocking (a handler that never yields): the default stack's goodput in the
/// 3× phase, as a share of capacity.
pub const RUNTIME_BLOCKING_GOODPUT: f64 = 0.70;
/// overload-runtime-blocking: the default stack's p99 of successes in the 3× phase, as a
/// multiple of the unloaded p99.
pub const RUNTIME_BLOCKING_P99_RATIO: f64 = 3.0;
/// outage (`Adaptive`): backend calls per client request during the outage, after its first
/// window.
pub const OUTAGE_LEAK: f64 = 0.01;
/// outage (`Adaptive`): seconds from recovery until ≥ 99 % of requests are admitted again.
pub const OUTAGE_RECOVERY_S: f64 = 3.0;
/// retry-storm (`RatioBudget`): backend calls per client request in the 100 % phase, before the
/// `min_per_sec / rate` allowance is added.
pub const STORM_AMPLIFICATION: f64 = 1.25;
/// retry-storm (`RatioBudget`): success rate in the 10 % phase.
pub const STORM_SUCCESS: f64 = 0.99;
/// slow-endpoint (`PeakSuccess`): the slow endpoint's share of requests.
pub const SLOW_SHARE: f64 = 0.01;
/// slow-endpoint (`PeakSuccess`): p99 as a multiple of tower P2C + `PeakEwma`'s.
pub const SLOW_P99_RATIO: f64 = 1.2;
/// black-hole (`PeakSuccess`): the error rate clients see.
pub const BLACK_HOLE_ERRORS: f64 = 0.01;
/// full-stack: rampart's goodput in the overload phase, as a share of the fleet's capacity.
pub const FULL_STACK_GOODPUT: f64 = 0.70;
/// full-stack: rampart's goodput as a multiple of the unprotected stack's.
pub const FULL_STACK_VS_NONE: f64 = 2.0;

/// live (`rampart-lab live`): the default stack's goodput at 2× and 3× capacity, as a share of
/// capacity, on a real server.
pub const LIVE_GOODPUT: f64 = 0.90;
/// live: the default stack's p99 of successes at 2× and 3×, as a multiple of its p99 at 0.5×.
pub const LIVE_P99_RATIO: f64 = 3.0;
/// live `--check` (CI, on shared machines): the default stack's goodput at 2× capacity.
pub const LIVE_CHECK_GOODPUT: f64 = 0.80;
/// live `--check`: the default stack's p99 at 2×, as a multiple of its p99 at 0.5×.
pub const LIVE_CHECK_P99_RATIO: f64 = 10.0;
/// live `--check`: the default stack's goodput at 2× as a multiple of the unprotected one's.
pub const LIVE_CHECK_VS_NONE: f64 = 5.0;

/// priority-overload (`rampart BBR + criticality`): the critical-plus and the critical class's
/// goodput as a share of their demand, at every step.
pub const PRIORITY_CRITICAL_SERVED: f64 = 0.99;
/// priority-overload: the worst p99 of successes of critical-plus and critical over the steps,
/// as a multiple of the unloaded p99 (all classes' p99 at 0.8× capacity).
pub const PRIORITY_P99_RATIO: f64 = 1.5;
/// priority-overload: goodput of all classes at 5× capacity and during the sheddable spike, as a
/// share of capacity.
pub const PRIORITY_GOODPUT: f64 = 0.90;
/// priority-overload: priority inversions (an admission in a 100 ms bin in which a more critical
/// class had a refusal) as a share of all decisions.
pub const PRIORITY_INVERSIONS: f64 = 0.01;
/// priority-overload: the largest distance of a class's goodput from its ideal strict-priority
/// allocation over the steps, in units of capacity, measured from 2 s into each step.
pub const PRIORITY_IDEAL_DISTANCE: f64 = 0.1;
/// priority-overload (`rampart breaker → BBR + criticality`): the share of critical-plus and
/// critical requests the clients' breakers refuse locally, over the seconds in which the server
/// sheds at least half of what reaches it.
pub const PRIORITY_CLIENT_REFUSED: f64 = 0.01;

/// deadline-chain (`propagated deadline`): end-to-end goodput before the client's deadline in
/// the 3× phase, as a share of C's capacity.
pub const DEADLINE_CHAIN_GOODPUT: f64 = 0.90;
/// deadline-chain: the propagated deadline's end-to-end goodput as a multiple of the per-hop
/// fixed timeouts'.
pub const DEADLINE_CHAIN_VS_FIXED: f64 = 2.0;

/// deadline-overload (`rampart BBR with deadline-aware admission`): completions before their
/// deadline in the 3× phase, as a share of capacity.
pub const DEADLINE_OVERLOAD_GOODPUT: f64 = 0.95;
/// deadline-overload: the server's busy time in the 3× phase spent on requests that finished
/// after their deadline, as a share of its busy time.
pub const DEADLINE_OVERLOAD_WASTED: f64 = 0.02;
/// deadline-overload: requests of the 0.5× phases refused as unable to finish
/// (`WouldMissDeadline`) although their deadline was at least twice the unloaded p99, as a share
/// of the 0.5× phases' requests.
pub const DEADLINE_OVERLOAD_FALSE_REFUSALS: f64 = 0.005;
/// deadline-overload: p99 of the time a refused request waited for its refusal, in milliseconds.
pub const DEADLINE_OVERLOAD_REFUSE_P99_MS: f64 = 1.0;

/// fleet-layers (`rampart + don't retry`): calls reaching C per user request while C fails
/// every call, three attempts at each of the chain's hops (naive: 27).
pub const FLEET_LAYERS_AMPLIFICATION: f64 = 1.5;

/// hedge-tail (`rampart hedge`): p99.9 of successes as a multiple of the unhedged stack's.
pub const HEDGE_TAIL_P999_RATIO: f64 = 0.25;
/// hedge-tail: copies beyond the first, per request.
pub const HEDGE_TAIL_EXTRA_LOAD: f64 = 0.05;
/// hedge-shift (`rampart hedge`): copies beyond the first per request in every second, above
/// the hedge budget's ratio.
pub const HEDGE_SHIFT_OVER_BUDGET: f64 = 0.01;
/// hedge-shift: the share of requests served within their deadline from the slowdown on, as a
/// multiple of the unhedged stack's.
pub const HEDGE_SHIFT_GOODPUT_VS_UNHEDGED: f64 = 0.98;
/// hedge-heavy (`rampart hedge`): the heavy requests' p99.9 of successes as a multiple of the
/// unhedged stack's.
pub const HEDGE_HEAVY_P999_RATIO: f64 = 1.0;

/// fleet-storm (rampart pushback + fleet floor): backend calls per client request while the
/// backends are down.
pub const FLEET_AMPLIFICATION: f64 = 1.2;
/// fleet-storm: retries as a share of first attempts among the calls clients made less than a
/// second after they received a pushback.
pub const FLEET_PUSHBACK_RETRIES: f64 = 0.05;
/// fleet-storm: seconds from the return of full capacity until every second's success rate is
/// at least 99 %.
pub const FLEET_RECOVERY_S: f64 = 5.0;
