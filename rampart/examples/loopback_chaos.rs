//! Chaos on the loopback: three servers on 127.0.0.1, one failing half its requests after
//! 20–80 ms, and a burst of real HTTP traffic through an unprotected round robin and through
//! rampart's client stack (retry → breaker → P2C). Prints the outcome table and the scraped
//! metrics; exits non-zero if rampart's success rate is below its bound.
//!
//! ```sh
//! cargo run -p rampart --example loopback_chaos
//! ```

mod support;

use support::chaos::{Fleet, compare, scrape, table};
use tower::BoxError;

const REQUESTS: u64 = 3_000;
const RATE: f64 = 1_000.0;
/// rampart's stack must answer at least this share of requests.
const SUCCESS_BOUND: f64 = 0.99;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fleet = Fleet::start().await?;
    let [unprotected, protected] = compare(&fleet, REQUESTS, RATE).await?;
    println!(
        "{REQUESTS} requests at {RATE} per second; server 2 fails half its requests after 20–80 ms\n"
    );
    print!("{}", table(&[unprotected, protected.clone()]));

    let first = fleet.addrs()[0];
    println!("\nscraped from http://{first}/metrics:");
    for line in scrape(first)
        .await?
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
