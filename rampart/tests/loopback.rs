//! The client and server stacks on real sockets: three servers on 127.0.0.1 (one failing half
//! its requests slowly), a bounded burst of HTTP requests through rampart's client stack, and
//! the metrics the servers expose.

#[path = "../examples/support/mod.rs"]
mod support;

use rampart_testkit::exposition::Exposition;
use support::chaos::{Fleet, Tally, compare, scrape};

const REQUESTS: u64 = 1_000;
const RATE: f64 = 500.0;

/// Every metric rampart reports (the README lists them), with the labels each must carry.
const METRICS: &[(&str, &[&str])] = &[
    ("rampart_breaker_requests_total", &["name", "outcome"]),
    ("rampart_breaker_drop_probability", &["name"]),
    ("rampart_ratelimit_requests_total", &["name", "outcome"]),
    ("rampart_ratelimit_inflight", &["name"]),
    ("rampart_ratelimit_max_inflight", &["name"]),
    ("rampart_ratelimit_cpu_ratio", &["name"]),
    ("rampart_retry_attempts_total", &["name", "kind"]),
    ("rampart_retry_budget_exhausted_total", &["name"]),
    ("rampart_balancer_endpoints", &["name"]),
    ("rampart_balancer_picks_total", &["name", "endpoint"]),
    ("rampart_balancer_endpoint_score", &["name", "endpoint"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_stack_avoids_the_failing_server_and_accounts_for_every_request() {
    let fleet = Fleet::start().await.expect("servers start");
    let [unprotected, protected] = compare(&fleet, REQUESTS, RATE).await.expect("valid stacks");
    println!(
        "{}",
        support::chaos::table(&[unprotected.clone(), protected.clone()])
    );

    for tally in [&unprotected, &protected] {
        assert_eq!(
            tally.succeeded + tally.rejected + tally.failed,
            tally.sent,
            "{}: a request is unaccounted for",
            tally.stack
        );
    }
    // Round robin feeds the failing server its third and loses half of that.
    assert!(
        (0.30..0.37).contains(&unprotected.bad_share.1),
        "{:?}",
        unprotected.bad_share
    );
    assert!(unprotected.success_rate() < 0.9);
    // rampart's balancer learns to avoid it: a shrinking share, and nearly every request served.
    let (early, late) = protected.bad_share;
    assert!(
        late < early && late <= 0.01,
        "the failing server's share went {early} → {late}"
    );
    assert!(
        protected.success_rate() >= 0.99,
        "success {}",
        protected.success_rate()
    );

    let samples = scrape_first(&fleet).await;
    assert_every_metric_is_exposed(&samples);
    assert_the_layers_agree(&samples, &fleet, &unprotected, &protected);
}

/// The first server's `/metrics`, scraped over HTTP as Prometheus would.
async fn scrape_first(fleet: &Fleet) -> Exposition {
    Exposition::parse(&scrape(fleet.addrs()[0]).await.expect("scraped"))
}

fn assert_every_metric_is_exposed(samples: &Exposition) {
    for (name, labels) in METRICS {
        assert!(
            samples.exposes(name, labels),
            "{name} with labels {labels:?} is not exposed"
        );
    }
}

fn assert_the_layers_agree(
    samples: &Exposition,
    fleet: &Fleet,
    unprotected: &Tally,
    protected: &Tally,
) {
    let addrs = fleet.addrs();
    // The layers' counts agree: every request made a first attempt; every attempt was judged
    // by the breaker; every attempt it let through reached exactly one server's limiter, as
    // did each of round robin's requests (a limiter on a busy machine may shed some: the
    // client then retries them elsewhere).
    let client = [("name", "client")];
    let first = samples.sum(
        "rampart_retry_attempts_total",
        &[("name", "client"), ("kind", "first")],
    );
    let retries = samples.sum(
        "rampart_retry_attempts_total",
        &[("name", "client"), ("kind", "retry")],
    );
    let judged = samples.sum("rampart_breaker_requests_total", &client);
    let rejected = samples.sum(
        "rampart_breaker_requests_total",
        &[("name", "client"), ("outcome", "rejected")],
    );
    let picks = samples.sum("rampart_balancer_picks_total", &client);
    assert_eq!(first, REQUESTS as f64);
    assert_eq!(judged, first + retries);
    assert_eq!(picks, judged - rejected);
    let arrived: f64 = (0..addrs.len())
        .map(|at| {
            samples.sum(
                "rampart_ratelimit_requests_total",
                &[("name", &format!("server-{at}"))],
            )
        })
        .sum();
    assert_eq!(arrived, unprotected.sent as f64 + picks);
    let shed: f64 = (0..addrs.len())
        .map(|at| {
            samples.sum(
                "rampart_ratelimit_requests_total",
                &[("name", &format!("server-{at}")), ("outcome", "shed")],
            )
        })
        .sum();
    let handled: u64 = unprotected.received.iter().chain(&protected.received).sum();
    assert_eq!(
        handled as f64,
        arrived - shed,
        "what the limiters admitted reached the handlers"
    );
}
