//! An axum server behind rampart's BBR limiter: a request it sheds is answered 503 with
//! `Retry-After`, and `GET /metrics` serves every rampart metric to Prometheus.
//!
//! ```sh
//! cargo run -p rampart --example server              # serves on 127.0.0.1:3000 until Ctrl-C
//! cargo run -p rampart --example server -- --check   # starts, calls itself once, exits
//! ```

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use rampart::fault::{FaultConfig, FaultLayer};
use support::client::{Body, Endpoint};
use support::server;
use tower::{BoxError, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let check = std::env::args().any(|arg| arg == "--check");
    // The recorder first: the limiter registers its metrics when it is built.
    let metrics = server::metrics();
    let app = server::app("server", FaultLayer::new(FaultConfig::default())?, metrics)?;
    let address = if check {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}: GET /work, GET /metrics");
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    if !check {
        tokio::signal::ctrl_c().await?;
        serving.abort();
        return Ok(());
    }
    // The bounded run: one request to each route, over a real socket.
    let endpoint = Endpoint::each(&[addr]).remove(0);
    for path in ["/work", "/metrics"] {
        let request = hyper::Request::get(path).body(Body::default())?;
        let response =
            tokio::time::timeout(Duration::from_secs(5), endpoint.clone().oneshot(request))
                .await??;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        let shown: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .take(4)
            .collect();
        println!("GET {path} → {status}: {}", shown.join(" | "));
        if !status.is_success() {
            return Err(format!("GET {path} answered {status}").into());
        }
    }
    serving.abort();
    Ok(())
}
