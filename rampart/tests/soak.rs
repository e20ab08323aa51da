//! The soak: rampart's full client stack (retry → breaker → P2C) against three servers behind
//! the BBR limiter, over real sockets on 127.0.0.1, at 2 000 requests per second (open loop,
//! at most 8 192 outstanding), while faults switch every few seconds: a server failing half
//! its requests, a server slowed down, a server stopped and back, calm.
//!
//! It asserts exact accounting only, never timing: every request sent has one fate
//! (succeeded, refused by a layer, or failed); each layer's counts agree with the next one's,
//! down to what each server received; the metrics scraped at the end say the same; nothing is
//! left in flight. On runs of 30 s or more, the process's resident memory must not grow over
//! the second half.
//!
//! `RAMPART_SOAK_SECS` sets the duration: 5 s by default, 60 s in CI, ten minutes or more to
//! look for slow leaks (build with `--release` for those).

#[path = "../examples/support/mod.rs"]
mod support;

#[allow(unreachable_pub)]
mod soak {
    pub mod faults;
    pub mod memory;
    pub mod probe;
    pub mod server;
    pub mod tally;
}

use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use rampart::retry::RetryConfig;
use rampart_testkit::exposition::Exposition;
use soak::faults::Phase;
use soak::memory::Samples;
use soak::probe::{Attempts, EndpointTally, probes};
use soak::server::Server;
use soak::tally::{Fate, Tally};
use support::client::{Body, rampart_stack_over};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

/// Requests per second.
const RATE: f64 = 2_000.0;
/// The duration without `RAMPART_SOAK_SECS`.
const DEFAULT_SECS: u64 = 5;
/// Requests in flight at most: the generator skips (and counts) a request beyond it.
const MAX_OUTSTANDING: u32 = 8_192;
/// How long the requests still in flight when sending stops may take to finish: far more
/// than any can (three attempts, a second of backoff, 120 ms of injected latency); if one has
/// not finished by then, it is lost, and the soak fails.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Runs at least this long judge memory growth.
const MEMORY_JUDGED_FROM: u64 = 30;
/// The client stack's name in the metrics.
const CLIENT: &str = "soak-client";
const SERVERS: usize = 3;

fn server_name(at: usize) -> String {
    format!("soak-server-{at}")
}

/// How many requests server `at`'s limiter admitted and shed, as scraped.
fn limiter_judged(scraped: &Exposition, at: usize) -> (u64, u64) {
    let name = server_name(at);
    let limiter = |outcome| {
        scraped.count(
            "rampart_ratelimit_requests_total",
            &[("name", &name), ("outcome", outcome)],
        )
    };
    (limiter("admitted"), limiter("shed"))
}

/// What a run sent, and what became of it.
struct Run {
    secs: u64,
    phase_length: Duration,
    sent: u64,
    skipped: u64,
    phases: Vec<Phase>,
    tally: Arc<Tally>,
    endpoints: Vec<EndpointTally>,
    memory: Samples,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_switching_faults_every_request_is_accounted_for_and_memory_stays_flat() {
    let secs = std::env::var("RAMPART_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(DEFAULT_SECS)
        .max(1);
    let metrics = support::server::metrics();
    let mut servers = Vec::new();
    for at in 0..SERVERS {
        let server = Server::start(&server_name(at), metrics.clone()).await;
        servers.push(server.expect("a server starts"));
    }
    let run = drive(&servers, secs).await;
    Phase::Calm.apply(&servers).expect("valid faults");
    // Every gauge read after the last request finished (the background refresher could
    // otherwise publish a value it read just before).
    rampart::core::gauges::publish_all();
    let text = support::chaos::scrape(servers[0].addr)
        .await
        .expect("the metrics are served");
    let scraped = Exposition::parse(&text);
    report(&run, &servers, &scraped);
    assert_every_request_has_one_fate(&run);
    assert_the_client_layers_agree(&run, &scraped);
    assert_the_servers_agree(&run, &servers, &scraped);
    assert_memory_stays_flat(&run);
}

/// Sends requests at `RATE` for `secs` seconds through the client stack, switching faults
/// every phase and sampling memory every second; then waits for every request to finish.
async fn drive(servers: &[Server], secs: u64) -> Run {
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let (endpoints, counts) = probes(&addrs);
    let stack = rampart_stack_over(endpoints, CLIENT).expect("a valid stack");
    let max_attempts = RetryConfig::default().max_attempts;
    let phase_length = Duration::from_secs(3).min(Duration::from_secs(secs) / 3);
    let outstanding = Arc::new(Semaphore::new(MAX_OUTSTANDING as usize));
    let tally = Arc::new(Tally::default());
    let mut run = Run {
        secs,
        phase_length,
        sent: 0,
        skipped: 0,
        phases: vec![Phase::nth(0, SERVERS)],
        tally: Arc::clone(&tally),
        endpoints: Vec::new(),
        memory: Samples::default(),
    };
    run.phases[0].apply(servers).expect("valid faults");
    let start = Instant::now();
    let (end, mut next_phase, mut next_sample) = (
        start + Duration::from_secs(secs),
        start + phase_length,
        start,
    );
    for n in 0_u64.. {
        let due = start + Duration::from_secs_f64(n as f64 / RATE);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        if now >= next_phase && next_phase < end {
            let phase = Phase::nth(run.phases.len(), SERVERS);
            phase.apply(servers).expect("valid faults");
            run.phases.push(phase);
            next_phase += phase_length;
        }
        if now >= next_sample {
            run.memory.take((now - start).as_secs_f64());
            next_sample += Duration::from_secs(1);
        }
        let Ok(permit) = Arc::clone(&outstanding).try_acquire_owned() else {
            run.skipped += 1;
            continue;
        };
        run.sent += 1;
        let (stack, tally) = (stack.clone(), Arc::clone(&tally));
        tokio::spawn(async move {
            let attempts = Attempts::default();
            let mut request = Request::get("/work")
                .body(Body::default())
                .expect("a valid request");
            request.extensions_mut().insert(attempts.clone());
            let result = stack.oneshot(request).await;
            let (fate, made) = Fate::of(&result, attempts.count(), max_attempts);
            tally.record(fate, made);
            drop(permit);
        });
    }
    run.memory.take(secs as f64);
    let drained =
        tokio::time::timeout(DRAIN_LIMIT, outstanding.acquire_many(MAX_OUTSTANDING)).await;
    assert!(
        drained.is_ok(),
        "{} requests never finished",
        MAX_OUTSTANDING as usize - outstanding.available_permits()
    );
    run.endpoints = counts.iter().map(|c| c.tally()).collect();
    run
}

/// Prints the run's figures.
fn report(run: &Run, servers: &[Server], scraped: &Exposition) {
    let tally = &run.tally;
    println!(
        "soak: {} s at {RATE} req/s: {} requests sent, {} skipped (over {MAX_OUTSTANDING} outstanding), {} attempts",
        run.secs,
        run.sent,
        run.skipped,
        tally.attempts()
    );
    println!("phases: {:?}", run.phases);
    for fate in Fate::ALL {
        let kind = if fate == Fate::Succeeded {
            "succeeded"
        } else if fate.is_refusal() {
            "refused"
        } else {
            "failed"
        };
        println!(
            "  {kind:>9} {:<16} {:>9}",
            format!("{fate:?}"),
            tally.count(fate)
        );
    }
    for (at, (server, endpoint)) in servers.iter().zip(&run.endpoints).enumerate() {
        let (admitted, shed) = limiter_judged(scraped, at);
        println!(
            "  server {at}: {} attempts sent ({} answered 2xx, {} 503, {} 500, {} unanswered); \
             {} arrived; limiter admitted {}, shed {}; {} injected errors",
            endpoint.calls,
            endpoint.ok,
            endpoint.shed,
            endpoint.errors,
            endpoint.transport,
            server.arrivals(),
            admitted,
            shed,
            server.faults.stats().errors,
        );
    }
    let half = run.secs as f64 / 2.0;
    let kib = |at| {
        run.memory
            .at(at)
            .map_or("?".into(), |kib: u64| kib.to_string())
    };
    println!(
        "resident memory (KiB): start {}, middle {}, end {}",
        kib(0.0),
        kib(half),
        kib(run.secs as f64)
    );
}

fn assert_every_request_has_one_fate(run: &Run) {
    assert_eq!(
        run.tally.total(),
        run.sent,
        "every request sent ended exactly once"
    );
    assert_eq!(
        run.tally.count(Fate::Unexpected),
        0,
        "no server answers anything but 200, 500 or 503"
    );
}

/// Retry → breaker → balancer → endpoints: each layer's counts are the next one's.
fn assert_the_client_layers_agree(run: &Run, scraped: &Exposition) {
    let client = |name: &str, label: Option<(&str, &str)>| {
        let mut labels = vec![("name", CLIENT)];
        labels.extend(label);
        scraped.count(name, &labels)
    };
    let tally = &run.tally;
    let first = client("rampart_retry_attempts_total", Some(("kind", "first")));
    let retries = client("rampart_retry_attempts_total", Some(("kind", "retry")));
    assert_eq!(first, run.sent, "one first attempt per request");
    assert_eq!(
        first + retries,
        tally.attempts(),
        "the attempts the requests made"
    );
    assert_eq!(
        client("rampart_retry_budget_exhausted_total", None),
        tally.count(Fate::BudgetExhausted),
        "each refusal of the budget ended a request that had attempts left"
    );
    let breaker = |outcome| client("rampart_breaker_requests_total", Some(("outcome", outcome)));
    let (successes, failures, rejected) =
        (breaker("success"), breaker("failure"), breaker("rejected"));
    assert_eq!(
        successes + failures + rejected,
        first + retries,
        "the breaker judged every attempt"
    );
    assert_eq!(
        rejected,
        tally.count(Fate::BreakerRejected),
        "a rejection ends its request"
    );
    let picks = client("rampart_balancer_picks_total", None);
    assert_eq!(
        picks + tally.count(Fate::NoEndpoints),
        successes + failures,
        "every attempt the breaker let through was placed, or found no endpoint"
    );
    let sum = |of: fn(&EndpointTally) -> u64| run.endpoints.iter().map(of).sum::<u64>();
    for (at, endpoint) in run.endpoints.iter().enumerate() {
        let label = at.to_string();
        assert_eq!(
            client("rampart_balancer_picks_total", Some(("endpoint", &label))),
            endpoint.calls,
            "the balancer's picks of endpoint {at} were sent to it"
        );
        assert_eq!(
            endpoint.answered() + endpoint.transport,
            endpoint.calls,
            "every attempt sent to endpoint {at} ended"
        );
    }
    assert_eq!(
        successes,
        sum(|e| e.ok),
        "the breaker's successes are the 2xx answers"
    );
    assert_eq!(
        tally.count(Fate::Succeeded),
        sum(|e| e.ok),
        "a 2xx answer ends its request"
    );
    assert_eq!(
        client("rampart_balancer_endpoints", None),
        SERVERS as u64,
        "the balancer holds every server"
    );
}

/// What each server received is what its limiter judged, what the client got back, and what
/// the fault layer behind the limiter saw.
fn assert_the_servers_agree(run: &Run, servers: &[Server], scraped: &Exposition) {
    for (at, (server, endpoint)) in servers.iter().zip(&run.endpoints).enumerate() {
        let name = server_name(at);
        let (admitted, shed) = limiter_judged(scraped, at);
        let faults = server.faults.stats();
        assert_eq!(
            admitted + shed,
            server.arrivals(),
            "server {at}'s limiter judged every request that arrived"
        );
        assert_eq!(
            server.arrivals(),
            endpoint.answered(),
            "every request server {at} received was answered, and nothing else was"
        );
        assert_eq!(
            shed, endpoint.shed,
            "server {at}'s 503s are its limiter's sheds"
        );
        assert_eq!(
            faults.requests, admitted,
            "what server {at}'s limiter admitted reached its fault layer"
        );
        assert_eq!(
            (faults.errors, admitted - faults.errors),
            (endpoint.errors, endpoint.ok),
            "server {at}'s 500s are its injected errors, its 200s the rest"
        );
        assert_eq!(
            scraped.count("rampart_ratelimit_inflight", &[("name", &name)]),
            0,
            "server {at} has nothing left in flight"
        );
    }
}

/// On long runs, the peak resident memory of the second half stays within 10 % (and 2 MiB)
/// of the first half's, its first phase (warm-up) left out. Both halves go through every
/// kind of phase, so they hold as many requests in flight at their worst.
fn assert_memory_stays_flat(run: &Run) {
    if run.secs < MEMORY_JUDGED_FROM {
        return;
    }
    let (warm, half, end) = (
        run.phase_length.as_secs_f64(),
        run.secs as f64 / 2.0,
        run.secs as f64,
    );
    let (Some(first), Some(second)) = (run.memory.peak(warm, half), run.memory.peak(half, end))
    else {
        println!("resident memory: not readable here, not judged");
        return;
    };
    println!("resident memory peaks (KiB): first half {first}, second half {second}");
    let allowed = first + (first / 10).max(2 * 1_024);
    assert!(
        second <= allowed,
        "resident memory grew over the second half: peak {second} KiB, against {first} KiB \
         in the first half"
    );
}
