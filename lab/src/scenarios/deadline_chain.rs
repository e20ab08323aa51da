//! `deadline-chain`: a request crosses three services, A → B → C, each a simulated server
//! behind its own rampart BBR limiter. C is the bottleneck: it is offered three times its
//! capacity for 20 s, between two phases at half of it; A and B have eight times C's capacity.
//! Two ways of bounding how long each hop waits, on the same arrivals and client deadlines:
//!
//! - **Per-hop fixed timeouts**: A waits for B at most 500 ms, B for C at most 250 ms: the
//!   usual cascade, each service's client timeout set once, by configuration, shorter than its
//!   caller's. The request carries no deadline, so no hop knows how long its client still waits.
//! - **One propagated deadline**: the client's deadline is made current at A
//!   (`RequestContext::with_deadline`) and every hop calls the next inside that scope, so each
//!   hop's limiter reads the time the client has left. The deadline travels in process here;
//!   between real services the facade's `ClientContextLayer` writes what remains of it on the
//!   outgoing call (`grpc-timeout`) and the next hop's `ServerContextLayer` makes it current
//!   again, on the same clock.
//!
//! A hop is a handler that first does its own work (a service time on its own simulated
//! server) and then calls the next hop and answers with its answer. The limiter in front of a
//! hop counts the whole handling in flight, the wait for the hops behind it included, as a
//! limiter in front of a real handler does; its CPU signal is its own server's utilisation,
//! sampled as in `overload`. Every limiter and every deadline reads one clock (copies of one
//! `TokioClock`).
//!
//! Each client gives up at its deadline, drawn uniform in 100–500 ms. Its request's handling is
//! then dropped at every hop (as a server drops the handler of a request whose caller hung up),
//! but the work a simulated server has already booked is done anyway: that is the waste
//! counted. A success counts only if it reaches the client before its deadline.
//!
//! Figures, over the 3× phase: `goodput`, the answers reaching their client before its
//! deadline, a second, as a share of C's capacity; `refused`, `timed_out` and `failed`, the
//! clients' other fates (a hop's fixed timeout is a failure); `short_entry_bc`, the requests
//! that entered B's or C's server (past its limiter) with less time left than the hop's
//! unloaded p50 (its own median service time and those of the hops behind it), as a share of
//! all that entered; `short_work_c`, the same for the work that began on one of C's workers,
//! after its wait in C's queue; `wasted_c`, the share of C's busy time spent on requests whose
//! client had given up before the work ended; `vs_fixed`, the propagated deadline's goodput
//! over the fixed timeouts'.
//!
//! What they show: without a deadline, C's limiter counts in flight only the requests someone
//! still waits for. A request whose client gave up, or whose caller's timeout fired, leaves the
//! count at once while its work stays queued on C, so the limiter keeps admitting, C's queue
//! stays full of abandoned work, and most of C's time goes to answers that come too late: the
//! fixed timeouts do not cause this (without any timeout at all, seed 1, the chain serves 0.19
//! of C's capacity instead of 0.16) and cannot cure it, since none of them knows how long the
//! client still waits. With the deadline,
//! C's limiter refuses at admission what it predicts cannot finish in time; what it admits
//! finishes, nothing is abandoned in C's queue, and its count stays true.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::{Deadline, DeadlineExceeded, RequestContext, TokioClock};
use rampart_fault::{Distribution, SimBackend, SimConfig};
use rampart_ratelimit::{BbrConfig, BbrLimit, BbrLimitLayer, CpuUsage, WouldMissDeadline};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt as _};

use super::overload::{WORKERS, sampled_cpu, server};
use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::{self, Call, Fate, Outcome, Record, between, simulate};
use crate::thresholds;

/// The phases: half of C's capacity, three times it, half again.
const LOW: Duration = Duration::from_secs(5);
const HIGH: Duration = Duration::from_secs(20);
/// The clients' deadlines, drawn uniformly between these.
const SHORTEST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_millis(500);
/// The fixed timeouts of the first stack: A's call to B, B's call to C.
const A_TO_B: Duration = Duration::from_millis(500);
const B_TO_C: Duration = Duration::from_millis(250);
/// A's and B's median service time (C's is `overload`'s 10 ms).
const FRONT_MEDIAN: Duration = Duration::from_millis(5);
/// C's median service time.
const BACK_MEDIAN: Duration = Duration::from_millis(10);
const BIN: Duration = Duration::from_secs(1);

const FIXED: &str = "fixed timeouts 500/250 ms";
const PROPAGATED: &str = "propagated deadline";

pub(super) const DEADLINE_CHAIN: Scenario = Scenario {
    name: "deadline-chain",
    description: "A → B → C, a BBR limiter at each hop, C (8 workers, 10 ms) offered 0.5 → 3 → 0.5× its capacity (20 s at 3×), client deadlines 100–500 ms; per-hop fixed timeouts against one propagated deadline",
    duration: Duration::from_secs(30),
    stacks: &[FIXED, PROPAGATED],
    run,
};

/// How a hop bounds its wait for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// Each call to the next hop has its own fixed timeout; no deadline travels.
    Fixed,
    /// The client's deadline is current at every hop.
    Propagated,
}

/// The phases, scaled.
#[derive(Debug, Clone, Copy)]
struct Phases {
    high_start: Duration,
    high_end: Duration,
    end: Duration,
}

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let (low, high) = (options.scaled(LOW), options.scaled(HIGH));
    let phases = Phases {
        high_start: low,
        high_end: low + high,
        end: low + high + low,
    };
    let capacity = server(options.seed).capacity();
    let arrivals = sim::arrivals(options.seed, phases.end, |at| {
        let factor = if (phases.high_start..phases.high_end).contains(&at) {
            3.0
        } else {
            0.5
        };
        factor * capacity
    });
    let deadlines = client_deadlines(options.seed, arrivals.len());

    let mut reports = Vec::new();
    for (name, stack) in DEADLINE_CHAIN
        .stacks
        .iter()
        .zip([Stack::Fixed, Stack::Propagated])
    {
        progress(name);
        let (records, logs) = simulate(run_stack(stack, options.seed, &arrivals, &deadlines));
        reports.push(summarise(name, &records, &logs, phases, capacity));
    }
    let vs_fixed = reports[1].get("goodput") / reports[0].get("goodput").max(1e-9);
    reports[1].set("vs_fixed", vs_fixed);
    let checks = vec![
        Check::at_least(
            &reports,
            PROPAGATED,
            "goodput",
            thresholds::DEADLINE_CHAIN_GOODPUT,
        ),
        Check::at_least(
            &reports,
            PROPAGATED,
            "vs_fixed",
            thresholds::DEADLINE_CHAIN_VS_FIXED,
        ),
    ];
    DEADLINE_CHAIN.report(
        phases.end,
        BIN,
        vec![
            Chart::new(
                "goodput",
                "end-to-end goodput before the deadline (share of C's capacity)",
            ),
            Chart::new(
                "wasted_c",
                "C's busy time on requests whose client gave up (share)",
            ),
            Chart::new("refused", "requests refused by a limiter (share)"),
        ],
        reports,
        checks,
    )
}

/// Each request's deadline, uniform in [`SHORTEST`, `LONGEST`], drawn from `seed` apart from
/// the arrivals.
fn client_deadlines(seed: u64, count: usize) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xdead_11e5);
    let span = LONGEST.saturating_sub(SHORTEST).as_micros() as u64;
    (0..count)
        .map(|_| SHORTEST + Duration::from_micros(rng.u64(0..=span)))
        .collect()
}

/// A and B: four times C's workers at half its service time, eight times its capacity.
fn front(seed: u64) -> SimConfig {
    server(seed)
        .with_workers(4 * WORKERS)
        .with_service_time(Distribution::log_normal_p99(
            FRONT_MEDIAN,
            FRONT_MEDIAN.mul_f64(1.95),
        ))
}

/// A request as the hops see it: when its client gives up (known to the simulation, not to a
/// hop of the fixed-timeout stack).
#[derive(Debug, Clone, Copy)]
struct Job {
    given_up: Instant,
}

/// What one hop's server did. "Short" work is work whose client had less time left than the
/// hop's unloaded p50 (its own median service time and those of the hops behind it): work that
/// can hardly be useful.
#[derive(Debug, Default)]
struct HopLog {
    /// Requests that entered the hop's server (admitted past its limiter): when, since the
    /// start of the run, and whether they were short.
    entered: Vec<(Duration, bool)>,
    /// Work done by the hop's server, by request: when it began on a worker (after its wait in
    /// the server's queue), its service time, whether it was short as it began, and whether
    /// its client had given up by the time it ended.
    done: Vec<Done>,
}

/// One request's work on a hop's server.
#[derive(Debug, Clone, Copy)]
struct Done {
    began: Duration,
    service: Duration,
    short: bool,
    late: bool,
}

/// The next hop, behind its limiter.
type Limited = BbrLimit<Hop, TokioClock, Arc<dyn CpuUsage>>;

/// A hop's handler: its own work on its server, then the call to the next hop.
#[derive(Clone)]
struct Hop {
    server: SimBackend,
    next: Option<Box<Limited>>,
    /// The fixed timeout of the call to the next hop, if any.
    timeout: Option<Duration>,
    /// The hop's unloaded p50: the median service time of this hop and every hop behind it.
    p50: Duration,
    log: Arc<Mutex<HopLog>>,
    start: Instant,
}

/// A hop's answer, on its way.
type Answer = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A hop's call to the next one outlived its fixed timeout.
#[derive(Debug)]
struct HopTimedOut;

impl std::fmt::Display for HopTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the next hop did not answer within the timeout")
    }
}

impl std::error::Error for HopTimedOut {}

impl Service<Job> for Hop {
    type Response = ();
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, job: Job) -> Self::Future {
        let hop = self.clone();
        Box::pin(async move {
            let now = Instant::now();
            let left = job.given_up.saturating_duration_since(now);
            hop.log
                .lock()
                .entered
                .push((now.saturating_duration_since(hop.start), left < hop.p50));
            // The work is booked now and done whether or not anyone still waits for it.
            let work = tokio::spawn(work(
                hop.server.clone(),
                job,
                hop.p50,
                Arc::clone(&hop.log),
                hop.start,
            ));
            work.await.map_err(BoxError::from)??;
            let Some(next) = hop.next else {
                return Ok(());
            };
            let answer = forward(*next, job);
            match hop.timeout {
                Some(timeout) => tokio::time::timeout(timeout, answer)
                    .await
                    .map_err(|_| BoxError::from(HopTimedOut))?,
                None => answer.await,
            }
        })
    }
}

/// The answer of `next` to `job`, once ready (its limiter decides when first polled, inside
/// the caller's scope).
fn forward(next: Limited, job: Job) -> Answer {
    Box::pin(next.oneshot(job))
}

/// A hop's own work for `job` on `server`, logged when it ends (short if it began with less
/// than `p50` left).
async fn work(
    server: SimBackend,
    job: Job,
    p50: Duration,
    log: Arc<Mutex<HopLog>>,
    start: Instant,
) -> Result<(), BoxError> {
    let booked = server.oneshot(()).await?;
    let now = Instant::now();
    let began = now.checked_sub(booked.service).unwrap_or(now);
    log.lock().done.push(Done {
        began: began.saturating_duration_since(start),
        service: booked.service,
        short: job.given_up.saturating_duration_since(began) < p50,
        late: now > job.given_up,
    });
    Ok(())
}

/// `hop` behind a BBR limiter on `clock`, reading its server's CPU.
fn limited(hop: Hop, clock: TokioClock, name: &'static str) -> Limited {
    let cpu = sampled_cpu(&hop.server);
    let limiter = BbrConfig::default()
        .with_name(name)
        .build_with(clock, cpu)
        .expect("a valid limiter");
    BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(hop)
}

/// Runs one stack: the clients' records, and the logs of A, B and C.
async fn run_stack(
    stack: Stack,
    seed: u64,
    arrivals: &[Duration],
    deadlines: &[Duration],
) -> (Vec<Record>, [HopLog; 3]) {
    let clock = TokioClock::new();
    let start = Instant::now();
    let logs: [Arc<Mutex<HopLog>>; 3] = Default::default();
    let fixed = |timeout| (stack == Stack::Fixed).then_some(timeout);
    let backend = |config| SimBackend::new(config).expect("a valid simulated server");
    let c = Hop {
        server: backend(server(seed.wrapping_add(2))),
        next: None,
        timeout: None,
        p50: BACK_MEDIAN,
        log: Arc::clone(&logs[2]),
        start,
    };
    let b = Hop {
        server: backend(front(seed.wrapping_add(1))),
        next: Some(Box::new(limited(c, clock, "c"))),
        timeout: fixed(B_TO_C),
        p50: FRONT_MEDIAN + BACK_MEDIAN,
        log: Arc::clone(&logs[1]),
        start,
    };
    let a = Hop {
        server: backend(front(seed)),
        next: Some(Box::new(limited(b, clock, "b"))),
        timeout: fixed(A_TO_B),
        p50: FRONT_MEDIAN * 2 + BACK_MEDIAN,
        log: Arc::clone(&logs[0]),
        start,
    };
    let a = limited(a, clock, "a");

    let call_chain = async |n: usize| {
        let deadline = deadlines[n];
        let job = Job {
            given_up: Instant::now() + deadline,
        };
        let answer = forward(a.clone(), job);
        let answer: Answer = match stack {
            Stack::Fixed => Box::pin(answer),
            Stack::Propagated => {
                let context = RequestContext::new()
                    .with_deadline(Deadline::after(rampart_core::Clock::now(&clock), deadline));
                Box::pin(context.scope(answer))
            }
        };
        Call::new(async move { outcome(&answer.await) })
    };
    let records = sim::drive_each(arrivals, |n| deadlines[n], call_chain, |_| {}).await;
    let logs = logs.map(|log| std::mem::take(&mut *log.lock()));
    (records, logs)
}

/// A client's view of its answer: a limiter's refusal at any hop (shed, would miss the
/// deadline, already expired) is a refusal; any other error (a hop's timeout, a full queue) a
/// failure.
fn outcome(result: &Result<(), BoxError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(error)
            if sim::is_refusal(error)
                || error.is::<WouldMissDeadline>()
                || error.is::<DeadlineExceeded>() =>
        {
            Outcome::Refused
        }
        Err(_) => Outcome::Err,
    }
}

fn summarise(
    name: &str,
    records: &[Record],
    logs: &[HopLog; 3],
    phases: Phases,
    capacity: f64,
) -> StackReport {
    let high = phases.high_start..phases.high_end;
    let in_high: Vec<&Record> = between(records, high.start, high.end).collect();
    let served = in_high.iter().filter(|r| r.is_good()).count() as f64;
    let high_s = high.end.saturating_sub(high.start).as_secs_f64();
    let [_, b, c] = logs;
    // Requests that entered B's or C's server in the 3× phase, and the short ones among them.
    let (short, entered) = [b, c]
        .iter()
        .flat_map(|log| &log.entered)
        .filter(|(at, _)| high.contains(at))
        .fold((0_usize, 0_usize), |(short, all), &(_, is_short)| {
            (short + usize::from(is_short), all + 1)
        });
    // Work C's workers began in the 3× phase, and the short share of it.
    let began_c: Vec<&Done> = c.done.iter().filter(|d| high.contains(&d.began)).collect();
    let short_work_c =
        began_c.iter().filter(|d| d.short).count() as f64 / (began_c.len() as f64).max(1.0);
    let bin_s = BIN.as_secs_f64();
    let refused = |records: &[&Record]| sim::share(records, |r| r.fate == Fate::Refused);
    StackReport::new(name)
        .figure("goodput", served / high_s / capacity)
        .figure("refused", refused(&in_high))
        .figure(
            "timed_out",
            sim::share(&in_high, |r| r.fate == Fate::TimedOut),
        )
        .figure("failed", sim::share(&in_high, |r| r.fate == Fate::Failed))
        .figure("short_entry_bc", short as f64 / (entered as f64).max(1.0))
        .figure("short_work_c", short_work_c)
        .figure("wasted_c", wasted_share(c, high))
        .figure("p99_ms", sim::success_quantile_ms(&in_high, 0.99))
        .series(
            "goodput",
            sim::series(records, phases.end, BIN, |_, bin| {
                bin.iter().filter(|r| r.is_good()).count() as f64 / bin_s / capacity
            }),
        )
        .series(
            "wasted_c",
            sim::series(&[], phases.end, BIN, |span, _| wasted_share(c, span)),
        )
        .series(
            "refused",
            sim::series(records, phases.end, BIN, |_, bin| refused(bin)),
        )
}

/// The share of C's busy time, over work begun in `span`, spent on requests whose client had
/// given up before the work ended (0 when C did nothing).
fn wasted_share(c: &HopLog, span: std::ops::Range<Duration>) -> f64 {
    let (wasted, busy) = c
        .done
        .iter()
        .filter(|done| span.contains(&done.began))
        .fold((Duration::ZERO, Duration::ZERO), |(wasted, busy), done| {
            let lost = if done.late {
                done.service
            } else {
                Duration::ZERO
            };
            (wasted + lost, busy + done.service)
        });
    wasted.as_secs_f64() / busy.as_secs_f64().max(1e-9)
}
