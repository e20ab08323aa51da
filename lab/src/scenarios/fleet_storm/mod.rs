//! `fleet-storm`: a thousand client processes, each sending 5 requests a second through its
//! own retry layer, toward ten backends of 6 000 requests a second in all. The backends go
//! down for 30 s (every call refused), come back at half capacity for 60 s, then at full.
//!
//! Every client is a process of its own: its own retry layer, its own budget, its own jitter.
//! A backend admits up to its capacity (a token bucket at its share of the fleet's rate, 50 ms
//! of burst) and serves in 5 ms; past it, it sheds at once with "overloaded, retry after 1 s"
//! (gRPC's `UNAVAILABLE` with `grpc-retry-pushback-ms: 1000`, what `rampart::grpc::GrpcStatus`
//! answers for a limiter's refusal); down, it refuses every call after 1 ms. Calls go to the
//! backends in turn. Each client waits up to 2 s for an answer.
//!
//! Four stacks, on the same arrivals (clients drawn uniformly for each request of a merged
//! Poisson stream of 5 000 a second):
//!
//! - **naive 3 attempts**: no budget.
//! - **per-client `RatioBudget`**: rampart's `RatioBudget` with its defaults (20 % of the client's
//!   requests, a floor of 10 retries a second) in each client, as a single service would
//!   configure it. A thousand floors are 10 000 retries a second, twice the fleet's traffic.
//! - **tower `TpsBudget`**: tower's `Retry` with `TpsBudget`'s defaults (20 %, 10 a second), per
//!   client: the same multiplication.
//! - **rampart pushback + fleet floor**: `RatioBudget` at 10 % with
//!   [`with_fleet_floor`](rampart_retry::RatioBudget::with_fleet_floor)`(10, 1 000)`: the floor
//!   is stated for the fleet and each client keeps a thousandth of it; and the backends'
//!   pushback read (`Policy::with_pushback`), which delays the pushed-back request's retry and
//!   holds the client's other retries for its delay (`PushbackHold`): under sustained shedding
//!   the clients stop retrying, as the servers asked.
//!
//! Figures: `amplification_*`, backend calls per client request in each phase (down, half,
//! recovered); `success_*`, the share of requests answered successfully in time;
//! `pushback_retries`, retries as a share of first attempts among the calls clients made less
//! than a second after they received a pushback; `offered_half` and `accepted_half`, the calls
//! per second reaching the backends and those they served at half capacity (3 000 a second);
//! `recovery_s`, the seconds from the return of full capacity to the first second from which
//! every second's success rate is at least 99 %.
//!
//! What they show: during the outage, per-client floors let every failed request retry twice
//! (3 calls per request, like no budget at all), while the fleet floor keeps the fleet near its
//! ratio. At half capacity retries cannot add goodput (the backends serve all they can); the
//! clients that retry anyway offer four times the load the backends can serve, to be shed,
//! while pushback stops the retries: honouring each pushback only for its own request (gRPC
//! A6, `hold_on_pushback` off) still leaves about 9 % of retries within a second of one; the
//! hold leaves none. Every stack recovers within the second capacity returns: these backends
//! shed at once and queue nothing, so nothing left over keeps them busy.
//!
//! The simulator carries the thousand clients on one paused tokio runtime: a task per
//! request, a retry layer and a budget per client. A stack's 110 simulated seconds (550 000
//! requests and their retries) take about 1.3 s of one core in a release build: some 12 µs per
//! simulated client-second, about 2.4 µs per request.

mod clients;
mod fleet;

use std::time::Duration;

use tower::ServiceExt;

use self::clients::{Stack, clients};
use self::fleet::{BIN, Counts, Fleet, Phase, total};
use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Call, Record, arrivals, drive_each, simulate};
use crate::thresholds;

/// Client processes.
const CLIENTS: usize = 1_000;
/// Requests per second from each.
const RATE_PER_CLIENT: f64 = 5.0;
/// Before the outage.
const WARM: Duration = Duration::from_secs(5);
/// The outage.
const DOWN: Duration = Duration::from_secs(30);
/// Half capacity.
const HALF: Duration = Duration::from_secs(60);
/// Full capacity again.
const RECOVERED: Duration = Duration::from_secs(15);
/// How long a client waits for an answer.
const DEADLINE: Duration = Duration::from_secs(2);

pub(super) const FLEET_STORM: Scenario = Scenario {
    name: "fleet-storm",
    description: "1 000 clients × 5 req/s toward 10 backends of 6 000 req/s in all: down 30 s, half capacity 60 s, then full",
    duration: Duration::from_secs(110),
    stacks: &[
        "naive 3 attempts",
        "per-client RatioBudget",
        "tower TpsBudget",
        "rampart pushback + fleet floor",
    ],
    run,
};

const RAMPART: &str = "rampart pushback + fleet floor";

/// The phases' edges, scaled.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    down: Duration,
    half: Duration,
    full: Duration,
    end: Duration,
}

impl Timeline {
    fn new(options: &Options) -> Self {
        let down = options.scaled(WARM);
        let half = down + options.scaled(DOWN);
        let full = half + options.scaled(HALF);
        Self {
            down,
            half,
            full,
            end: full + options.scaled(RECOVERED),
        }
    }

    fn phase(&self, at: Duration) -> Phase {
        if at < self.down || at >= self.full {
            Phase::Full
        } else if at < self.half {
            Phase::Down
        } else {
            Phase::Half
        }
    }
}

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let timeline = Timeline::new(options);
    let duration = timeline.end;
    let arrivals = arrivals(options.seed, duration, |_| RATE_PER_CLIENT * CLIENTS as f64);
    let mut rng = fastrand::Rng::with_seed(options.seed ^ 0x0C11_E475);
    let senders: Vec<u32> = arrivals.iter().map(|_| rng.u32(..CLIENTS as u32)).collect();
    let mut reports = Vec::new();
    for (name, stack) in FLEET_STORM.stacks.iter().zip([
        Stack::Naive,
        Stack::RatioPerClient,
        Stack::Tower,
        Stack::Rampart,
    ]) {
        progress(name);
        let (records, bins) = simulate(run_stack(
            stack,
            options.seed,
            &arrivals,
            &senders,
            timeline,
        ));
        reports.push(report(name, &records, &bins, timeline));
    }
    let checks = vec![
        Check::at_most(
            &reports,
            RAMPART,
            "amplification_down",
            thresholds::FLEET_AMPLIFICATION,
        ),
        Check::at_most(
            &reports,
            RAMPART,
            "pushback_retries",
            thresholds::FLEET_PUSHBACK_RETRIES,
        ),
        Check::at_most(
            &reports,
            RAMPART,
            "recovery_s",
            thresholds::FLEET_RECOVERY_S,
        ),
    ];
    FLEET_STORM.report(
        duration,
        BIN,
        vec![
            Chart::new("amplification", "backend calls per client request"),
            Chart::new("offered", "calls reaching the backends (per second)"),
            Chart::new("accepted", "calls the backends served (per second)"),
            Chart::new("success", "requests that succeeded in time (share)"),
        ],
        reports,
        checks,
    )
}

/// Runs one stack; returns the clients' records and the backends' counts per bin.
async fn run_stack(
    stack: Stack,
    seed: u64,
    arrivals: &[Duration],
    senders: &[u32],
    timeline: Timeline,
) -> (Vec<Record>, Vec<Counts>) {
    let fleet = Fleet::new(CLIENTS, timeline.end);
    let clients = clients(stack, &fleet, CLIENTS, seed);
    let mut phase = Phase::Full;
    let records = drive_each(
        arrivals,
        |_| DEADLINE,
        async |n| {
            let sender = senders[n];
            let call = clients[sender as usize]
                .clone()
                .oneshot(fleet::request(sender));
            Call::new(async move { sim::outcome(&call.await) })
        },
        |at| {
            let now = timeline.phase(at);
            if now != phase {
                phase = now;
                fleet.set_phase(now);
            }
        },
    )
    .await;
    (records, fleet.bins())
}

/// A stack's figures and series.
fn report(name: &str, records: &[Record], bins: &[Counts], timeline: Timeline) -> StackReport {
    let bin_of = |at: Duration| (at.as_secs_f64() / BIN.as_secs_f64()).round() as usize;
    let span = |from: Duration, to: Duration| &bins[bin_of(from)..bin_of(to).min(bins.len())];
    let requests = |from, to| sim::between(records, from, to).count() as f64;
    let amplification =
        |from, to| total(span(from, to)).calls() as f64 / requests(from, to).max(1.0);
    let success = |from, to| {
        let phase: Vec<&Record> = sim::between(records, from, to).collect();
        sim::share(&phase, Record::is_good)
    };
    let all = total(bins);
    let half_seconds = timeline.full.saturating_sub(timeline.half).as_secs_f64();
    let half = total(span(timeline.half, timeline.full));
    let success_series = sim::series(records, timeline.end, BIN, |_, bin| {
        sim::share(bin, Record::is_good)
    });
    StackReport::new(name)
        .figure(
            "amplification_down",
            amplification(timeline.down, timeline.half),
        )
        .figure(
            "amplification_half",
            amplification(timeline.half, timeline.full),
        )
        .figure(
            "amplification_recovered",
            amplification(timeline.full, timeline.end),
        )
        .figure("success_down", success(timeline.down, timeline.half))
        .figure("success_half", success(timeline.half, timeline.full))
        .figure("success_recovered", success(timeline.full, timeline.end))
        .figure(
            "pushback_retries",
            all.retries_after_pushback as f64 / (all.first_after_pushback as f64).max(1.0),
        )
        .figure("offered_half", half.calls() as f64 / half_seconds)
        .figure("accepted_half", half.accepted as f64 / half_seconds)
        .figure(
            "recovery_s",
            recovery_s(&success_series, bin_of(timeline.full)),
        )
        .series(
            "amplification",
            bins.iter()
                .zip(sim::series(records, timeline.end, BIN, |_, bin| {
                    bin.len() as f64
                }))
                .map(|(counts, sent)| counts.calls() as f64 / sent.max(1.0))
                .collect(),
        )
        .series(
            "offered",
            bins.iter().map(|counts| counts.calls() as f64).collect(),
        )
        .series(
            "accepted",
            bins.iter().map(|counts| counts.accepted as f64).collect(),
        )
        .series("success", success_series)
}

/// Seconds from bin `from` to the first bin from which every bin's success rate is at least
/// 99 %; infinite if the run ends before.
fn recovery_s(success: &[f64], from: usize) -> f64 {
    let good_from = success
        .iter()
        .rposition(|&share| share < 0.99)
        .map_or(0, |bad| bad + 1)
        .max(from);
    if good_from >= success.len() {
        return f64::INFINITY;
    }
    ((good_from - from) as f64) * BIN.as_secs_f64()
}
