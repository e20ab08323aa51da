//! A hyper-util client with retry → breaker → P2C over three local servers (started here, on
//! ephemeral ports of 127.0.0.1), sending a bounded number of requests.
//!
//! ```sh
//! cargo run -p rampart --example client
//! ```

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rampart::fault::FaultConfig;
use support::client::{Body, rampart_stack};
use support::server;
use tower::{BoxError, ServiceExt};

const REQUESTS: usize = 200;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let metrics = server::metrics();
    let mut servers = Vec::new();
    for at in 0..3 {
        servers.push(
            server::start(
                &format!("server-{at}"),
                FaultConfig::default(),
                metrics.clone(),
            )
            .await?,
        );
    }
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let client = rampart_stack(&addrs, "client")?;

    let mut statuses = BTreeMap::new();
    for _ in 0..REQUESTS {
        let request = hyper::Request::get("/work").body(Body::default())?;
        let outcome =
            match tokio::time::timeout(Duration::from_secs(2), client.clone().oneshot(request))
                .await
            {
                Ok(Ok(response)) => response.status().to_string(),
                Ok(Err(error)) => format!("error: {error}"),
                Err(_) => "timed out".to_owned(),
            };
        *statuses.entry(outcome).or_insert(0_u32) += 1;
    }
    println!("{REQUESTS} requests over {addrs:?}:");
    for (outcome, count) in &statuses {
        println!("  {count:>4}  {outcome}");
    }
    for (at, server) in servers.iter().enumerate() {
        println!("  server {at} received {}", server.faults.stats().requests);
    }
    if statuses.get("200 OK").copied().unwrap_or(0) as usize != REQUESTS {
        return Err("healthy servers should answer every request".into());
    }
    Ok(())
}
