//! Chaos on the loopback: three servers on 127.0.0.1, one failing half its requests after
//! 20–80 ms, and a burst of real HTTP traffic through an unprotected round robin and through
//! rampart's client stack (retry → breaker → P2C). Prints the outcome table and the scraped
//! metrics; exits non-zero if rampart's success rate is below its bound.
//!
//! ```sh
//! cargo run -p rampart --example loopback_chaos
//! ```

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use support::chaos::{Fleet, burst, table};
use support::client::{Body, Endpoint, RoundRobin, rampart_stack};
use tower::{BoxError, ServiceExt};

const REQUESTS: u64 = 3_000;
const RATE: f64 = 1_000.0;
/// rampart's stack must answer at least this share of requests.
const SUCCESS_BOUND: f64 = 0.99;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fleet = Fleet::start().await?;
    let addrs = fleet.addrs();
    let unprotected = burst(
        &fleet,
        "round robin",
        RoundRobin::new(&addrs),
        REQUESTS,
        RATE,
    )
    .await;
    let protected = burst(
        &fleet,
        "rampart",
        rampart_stack(&addrs, "client")?,
        REQUESTS,
        RATE,
    )
    .await;
    println!(
        "{REQUESTS} requests at {RATE} per second; server 2 fails half its requests after 20–80 ms\n"
    );
    print!("{}", table(&[unprotected, protected.clone()]));

    // The metrics, scraped over HTTP as Prometheus would.
    let request = hyper::Request::get("/metrics").body(Body::default())?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        Endpoint::each(&addrs[..1]).remove(0).oneshot(request),
    )
    .await??;
    let body = response.into_body().collect().await?.to_bytes();
    println!("\nscraped from http://{}/metrics:", addrs[0]);
    for line in String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("rampart_"))
    {
        println!("  {line}");
    }
    if protected.success_rate() < SUCCESS_BOUND {
        return Err(format!(
            "rampart's success rate {:.2} % is below {:.0} %",
            100.0 * protected.success_rate(),
            100.0 * SUCCESS_BOUND
        )
        .into());
    }
    Ok(())
}
