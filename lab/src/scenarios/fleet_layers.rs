//! `fleet-layers`: a user request crosses a chain of services, A → B → C, and every call in it
//! goes through a retry layer of three attempts: the user's client retries A, A retries B, B
//! retries C. C fails every call for 20 s, then 20 % of them (each independently) for 20 s;
//! users send 500 requests a second. Four ways of retrying, the same at every hop, on the same
//! arrivals:
//!
//! - **naive 3 attempts**: no budget. Each layer multiplies the calls below it by three while C
//!   is down: 3 × 3 × 3 = 27 calls reach C per user request.
//! - **per-hop `RatioBudget`**: rampart's budget (20 % of requests, 10 a second standing) at each
//!   layer, as before hops passed "don't retry": a hop whose own retries gave up answers its
//!   caller with a plain failure, which the caller's budget retries again.
//! - **tower `Retry` + `TpsBudget`** at each layer, with tower's usual policy (`retry-storm`'s):
//!   a deposit on each success, a withdrawal before each retry, 25 ms before a retry.
//! - **rampart + don't retry**: the same `RatioBudget` at each layer, and the hop-to-hop "don't
//!   retry" signal: a hop whose retries toward its backend gave up (`RetryConfig::with_mark_gave_up`)
//!   tells its caller not to retry, and the caller's policy obeys (`Policy::with_pushback`), so
//!   only the layer next to the failure retries.
//!
//! The hops answer one another as rampart HTTP services do, in process. What travels from a
//! hop to its caller is an `http::Response` (status and headers, no body); every client
//! classifies it with `HttpClassifier` (5xx is a failure). C's failures reach B's client as
//! errors (a refused or reset connection: `FaultLayer`'s injected error), after 1 ms. A hop's
//! server (A's, B's) turns its handler's result into its answer as a rampart server does: a
//! success as 200; an error through `rampart::http::ErrorStatus` (500 for an error it does not
//! know). So when B's retry layer gives up on C's errors, it returns `GaveUp`, which
//! `ErrorStatus` answers with 503 and `rampart-retry: no`; when A's gives up on B's failed
//! answer, the policy marks that answer (`GaveUpMark`) and A's handler fails with a `GaveUp`
//! built from the mark, answered the same way. On the caller's side, the rampart stack's policy
//! reads the answer with `HttpPushback`, which takes `rampart-retry: no` for
//! `Pushback::DontRetry` (a gRPC hop says the same with `grpc-retry-pushback-ms: -1`, which
//! `rampart::grpc::GrpcStatus` writes and `HttpPushback` reads alike). The other stacks neither
//! mark nor read: their hops answer 500, and their callers retry it. Each layer has its own
//! budget (one per process, as deployed), on the simulation's clock.
//!
//! Figures: `c_calls_down` and `c_calls_partial`, calls reaching C per user request while C is
//! down and while it fails 20 %; `success_partial`, the users' success rate in the partial
//! phase, and `p99_ms_partial` the p99 of their successes; `success_gap`, the per-hop budget
//! stack's success rate in the partial phase less the rampart stack's. Each stack's table gives
//! the calls reaching each hop per user request in each phase. The charts give, each second,
//! the calls reaching C per user request and the success rate of every stack, and the calls
//! reaching A, B and C per user request of the per-hop budget stack and of the rampart stack
//! (the naive stack's 27 would flatten the others' lines).
//!
//! What they show: with C down, every budget caps the retries, but per layer: each hop's budget
//! grants 20 % more calls than reach it, so C sees about 1.2³ ≈ 1.8 calls per user request with
//! per-hop budgets, and each hop more multiplies that by 1.2 again. With "don't retry", A and the
//! user's client stop at B's first answer and only B's budget spends: C sees 1.2 calls per user
//! request (1 + 20 % + the floor, 10 a second over 500), at any depth. tower's `TpsBudget`, fed
//! by successes only, has little but its floor left in an outage. With C failing 20 %, the
//! stacks without the signal recover nearly every failure: a request B gives up on is retried
//! from A (and from the user's client), and each of A's retries brings B's budget a fresh
//! deposit. In the rampart stack B alone retries, and its budget (20 % of its requests plus 10
//! a second) is a little short of what three attempts against 20 % failures ask for (20 %
//! second attempts, 4 % third): a few percent of requests fail, the price of the bound that
//! holds in the outage. A hop next to a failure that must ride out frequent failures needs the
//! budget the layers above it no longer spend.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Response, StatusCode};
use rampart::http::{ErrorStatus, Mapped};
use rampart::retry::pushback::HttpPushback;
use rampart::retry::{GaveUp, GaveUpMark, Policy, RatioConfig, RetryConfig, RetryLayer, Unlimited};
use rampart::{Classify as _, HttpClassifier, Outcome as Verdict};
use rampart_core::TokioClock;
use rampart_fault::{FaultConfig, FaultLayer};
use tower::retry::budget::TpsBudget;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt as _, service_fn};

use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport, Table};
use crate::sim::{
    self, Call, Outcome, Record, Sampler, Samples, arrivals, between, drive, simulate,
};
use crate::thresholds;

/// C fails every call for this long, then [`PARTIAL_ERRORS`] of them for [`PARTIAL`].
const DOWN: Duration = Duration::from_secs(20);
const PARTIAL: Duration = Duration::from_secs(20);
/// The share of C's calls that fail in the partial phase, each independently.
const PARTIAL_ERRORS: f64 = 0.2;
/// User requests a second, into A.
const RATE: f64 = 500.0;
/// How long a user waits for A's answer.
const DEADLINE: Duration = Duration::from_secs(2);
/// C's time to answer (or fail) a call.
const C_DELAY: Duration = Duration::from_millis(1);
const BIN: Duration = Duration::from_secs(1);

const NAIVE: &str = "naive 3 attempts";
const PER_HOP: &str = "per-hop RatioBudget";
const TOWER: &str = "tower Retry+TpsBudget";
const RAMPART: &str = "rampart + don't retry";

pub(super) const FLEET_LAYERS: Scenario = Scenario {
    name: "fleet-layers",
    description: "user → A → B → C, 3 attempts at each layer (the user's client, A, B); C fails 100 % for 20 s, then 20 % of calls for 20 s; 500 user requests per second",
    duration: Duration::from_secs(40),
    stacks: &[NAIVE, PER_HOP, TOWER, RAMPART],
    run,
};

/// How each layer (the user's client, A, B) retries its calls to the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// Three attempts, no budget.
    Naive,
    /// Three attempts within a `RatioBudget` per layer; a hop answers a failure it gave up on
    /// as any failure.
    PerHop,
    /// tower's `Retry` with a `TpsBudget` per layer.
    Tower,
    /// Three attempts within a `RatioBudget` per layer, and "don't retry" from hop to hop.
    Rampart,
}

/// What a hop answers: an HTTP response whose status and headers are all that travel.
type Answer = Response<()>;

/// A hop as its caller reaches it: a service answering `()` with an [`Answer`] (or, for C's
/// transport, an error).
type Hop = BoxCloneService<(), Answer, BoxError>;

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let (down, partial) = (options.scaled(DOWN), options.scaled(PARTIAL));
    let duration = down + partial;
    let arrivals = arrivals(options.seed, duration, |_| RATE);
    let mut reports = Vec::new();
    for (name, stack) in
        FLEET_LAYERS
            .stacks
            .iter()
            .zip([Stack::Naive, Stack::PerHop, Stack::Tower, Stack::Rampart])
    {
        progress(name);
        let (records, calls) = simulate(run_stack(stack, options.seed, &arrivals, down, duration));
        reports.push(summarise(name, &records, &calls, down, duration));
    }
    let gap = reports[1].get("success_partial") - reports[3].get("success_partial");
    reports[3].set("success_gap", gap);
    let checks = vec![Check::at_most(
        &reports,
        RAMPART,
        "c_calls_down",
        thresholds::FLEET_LAYERS_AMPLIFICATION,
    )];
    FLEET_LAYERS.report(
        duration,
        BIN,
        vec![
            Chart::new("c_calls", "calls reaching C per user request"),
            Chart::new("success", "user requests that succeeded (share)"),
            Chart::of_stack("hops_per_hop", PER_HOP, HOP_LINES, PER_HOP_Y),
            Chart::of_stack("hops_rampart", RAMPART, HOP_LINES, PER_HOP_Y),
        ],
        reports,
        checks,
    )
}

/// The hops whose calls are counted, in the order of their counts in [`Samples`].
const HOPS: [&str; 3] = ["C", "B", "A"];
/// The lines of a chart of one stack's calls at each hop, and its y axis.
const HOP_LINES: &[(&str, &str)] = &[("A", "a_calls"), ("B", "b_calls"), ("C", "c_calls")];
const PER_HOP_Y: &str = "calls reaching each hop per user request";

/// A stack's figures, series and table; `calls` holds C's, B's and A's call counts over time.
fn summarise(
    name: &str,
    records: &[Record],
    calls: &Samples,
    down: Duration,
    duration: Duration,
) -> StackReport {
    let per_request = |hop: usize, span: Range<Duration>, requests: usize| {
        calls.rise(hop, span) as f64 / (requests as f64).max(1.0)
    };
    let in_down = between(records, Duration::ZERO, down).count();
    let in_partial: Vec<&Record> = between(records, down, duration).collect();
    let down_calls = |hop| per_request(hop, Duration::ZERO..down, in_down);
    let partial_calls = |hop| per_request(hop, down..duration, in_partial.len());
    let series = |hop: usize| {
        sim::series(records, duration, BIN, |span, bin| {
            per_request(hop, span, bin.len())
        })
    };
    let table = Table {
        title: format!("{name}: calls reaching each hop per user request"),
        columns: ["hop", "C down", "C partial"].map(str::to_owned).to_vec(),
        rows: (0..HOPS.len())
            .rev()
            .map(|hop| {
                (
                    HOPS[hop].to_owned(),
                    vec![down_calls(hop), partial_calls(hop)],
                )
            })
            .collect(),
    };
    StackReport::new(name)
        .figure("c_calls_down", down_calls(0))
        .figure("c_calls_partial", partial_calls(0))
        .figure("success_partial", sim::share(&in_partial, Record::is_good))
        .figure(
            "p99_ms_partial",
            sim::success_quantile_ms(&in_partial, 0.99),
        )
        .series("c_calls", series(0))
        .series("b_calls", series(1))
        .series("a_calls", series(2))
        .series(
            "success",
            sim::series(records, duration, BIN, |_, bin| {
                sim::share(bin, Record::is_good)
            }),
        )
        .table(table)
}

/// Runs one stack; returns the users' records and C's, B's and A's call counts at every bin.
async fn run_stack(
    stack: Stack,
    seed: u64,
    arrivals: &[Duration],
    down: Duration,
    duration: Duration,
) -> (Vec<Record>, Samples) {
    let faults = FaultConfig::default()
        .with_delay(C_DELAY)
        .with_error_rate(1.0)
        .with_seed(seed);
    let (faults, handle) = FaultLayer::pair(faults).expect("valid faults");
    let c: Hop = BoxCloneService::new(faults.layer(service_fn(|()| async {
        Ok::<_, BoxError>(Answer::new(()))
    })));
    let (b_calls, a_calls) = (Arc::default(), Arc::default());
    let b = server(client(stack, c, seed.wrapping_add(3)), Arc::clone(&b_calls));
    let a = server(client(stack, b, seed.wrapping_add(2)), Arc::clone(&a_calls));
    let user = client(stack, a, seed.wrapping_add(1));

    let samples = Samples::default();
    // Counts at every bin and when C starts answering (`down` need not be a whole second).
    let mut times = sim::bin_starts(duration, BIN);
    times.push(down);
    let (mut counter, mut partial) = (Sampler::new(samples.clone(), times), false);
    let count = || {
        vec![
            handle.stats().requests,
            b_calls.load(Ordering::Relaxed),
            a_calls.load(Ordering::Relaxed),
        ]
    };
    let records = drive(
        arrivals,
        DEADLINE,
        async |_| {
            let answer = user.clone().oneshot(());
            Call::new(async move { user_outcome(&answer.await) })
        },
        |at| {
            counter.tick(at, count);
            if at >= down && !partial {
                partial = true;
                handle
                    .update(|config| config.error_rate = PARTIAL_ERRORS)
                    .expect("a valid rate");
            }
        },
    )
    .await;
    // The last count, once every retry has been made, closes the run.
    samples.take(duration, count());
    (records, samples)
}

/// How a user sees A's answer: a success, or a failure (nothing refuses locally here).
fn user_outcome(result: &Result<Answer, BoxError>) -> Outcome {
    match result {
        Ok(answer) if succeeded(answer) => Outcome::Ok,
        _ => Outcome::Err,
    }
}

/// Whether an answer is a success, as `HttpClassifier` (every hop's classifier) reads it.
fn succeeded(answer: &Answer) -> bool {
    HttpClassifier.classify(Ok::<_, &BoxError>(answer)) == Verdict::Success
}

/// A hop's server: counts the calls it receives (into `calls`), hands each to its handler, a
/// call to the next hop through `client`, and answers as a rampart HTTP server does
/// ([`answer`]).
fn server(client: Hop, calls: Arc<AtomicU64>) -> Hop {
    BoxCloneService::new(service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        let call = client.clone().oneshot(());
        async move { Ok::<_, BoxError>(answer(call.await)) }
    }))
}

/// The next hop answered with a failure (its status).
#[derive(Debug)]
struct BackendFailed(StatusCode);

impl std::fmt::Display for BackendFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the backend answered {}", self.0)
    }
}

impl std::error::Error for BackendFailed {}

/// A hop's answer to its caller, from its handler's result: a success passed on as 200; a
/// failure as `rampart::http::ErrorStatus` maps it, 500 for an error it does not know. The
/// handler fails with the error its client returned, or, for a failed answer, with
/// [`BackendFailed`], wrapped in a [`GaveUp`] when the client's retry layer marked the answer
/// it gave up on ([`GaveUpMark`]): `ErrorStatus` answers a `GaveUp` that says so with 503 and
/// `rampart-retry: no`.
fn answer(result: Result<Answer, BoxError>) -> Answer {
    let error = match result {
        Ok(answer) if succeeded(&answer) => return Answer::new(()),
        Ok(answer) => {
            let failed: BoxError = BackendFailed(answer.status()).into();
            match answer.extensions().get::<GaveUpMark>() {
                Some(mark) => GaveUp::new(mark.reason, mark.attempts, failed).into(),
                None => failed,
            }
        }
        Err(error) => error,
    };
    let mapped = ErrorStatus::default().of(&*error).unwrap_or(Mapped {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
        dont_retry: false,
    });
    let mut answer = Answer::new(());
    *answer.status_mut() = mapped.status;
    *answer.headers_mut() = mapped.headers();
    answer
}

/// A hop's client toward `next`: its retry layer, seeded with `seed`.
fn client(stack: Stack, next: Hop, seed: u64) -> Hop {
    let config = RetryConfig::default().with_seed(seed);
    let policy = Policy::new().with_classifier(HttpClassifier);
    let ratio = || {
        RatioConfig::default()
            .build_with(TokioClock::new())
            .expect("a valid budget")
    };
    match stack {
        Stack::Naive => BoxCloneService::new(
            RetryLayer::new_with(config, Unlimited, TokioClock::new())
                .expect("a valid retry layer")
                .with_policy(policy)
                .layer(next),
        ),
        Stack::PerHop => BoxCloneService::new(
            RetryLayer::new_with(config, ratio(), TokioClock::new())
                .expect("a valid retry layer")
                .with_policy(policy)
                .layer(next),
        ),
        Stack::Tower => BoxCloneService::new(
            tower::retry::RetryLayer::new(TowerPolicy {
                budget: Arc::new(TpsBudget::default()),
                attempts: 1,
            })
            .layer(next),
        ),
        Stack::Rampart => BoxCloneService::new(
            RetryLayer::new_with(config.with_mark_gave_up(true), ratio(), TokioClock::new())
                .expect("a valid retry layer")
                .with_policy(policy.with_pushback(HttpPushback))
                .layer(next),
        ),
    }
}

/// tower's usual policy, as in `retry-storm`: deposit on success, withdraw before each retry
/// of a failure (as `HttpClassifier` reads it), three attempts, 25 ms before a retry.
#[derive(Clone)]
struct TowerPolicy {
    budget: Arc<TpsBudget>,
    attempts: u32,
}

impl tower::retry::Policy<(), Answer, BoxError> for TowerPolicy {
    type Future = Pin<Box<tokio::time::Sleep>>;

    fn retry(
        &mut self,
        (): &mut (),
        result: &mut Result<Answer, BoxError>,
    ) -> Option<Self::Future> {
        use tower::retry::budget::Budget as _;
        if HttpClassifier.classify(result.as_ref()) == Verdict::Success {
            self.budget.deposit();
            return None;
        }
        if self.attempts < 3 && self.budget.withdraw() {
            self.attempts += 1;
            return Some(Box::pin(tokio::time::sleep(Duration::from_millis(25))));
        }
        None
    }

    fn clone_request(&mut self, (): &()) -> Option<()> {
        Some(())
    }
}
