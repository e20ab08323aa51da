//! tonic with rampart: three echo servers on 127.0.0.1, each behind rampart's BBR limiter
//! (a request it sheds is answered `UNAVAILABLE` with `grpc-retry-pushback-ms`), and
//! tonic's generated client over rampart's client stack: retry → breaker → P2C over one
//! channel per server. The service's code is generated from `proto/echo.proto` at build time
//! by a protobuf compiler written in Rust: no `protoc` to install.
//!
//! ```sh
//! cargo run -p rampart --example grpc              # 200 calls, then a shedding server
//! cargo run -p rampart --example grpc -- --check   # the same, failing on a wrong answer
//! ```

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::grpc::{EchoService, Held, hot_limiter, rampart_client, say, serve};
use tonic::Code;
use tower::BoxError;

const CALLS: u32 = 200;
const CONCURRENCY: usize = 10;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let check = std::env::args().any(|arg| arg == "--check");
    let mut servers = Vec::new();
    for at in 0..3 {
        let limiter = std::sync::Arc::new(
            rampart::ratelimit::BbrConfig::default()
                .with_name(format!("grpc-server-{at}"))
                .build()?,
        );
        servers.push(serve(EchoService::new(at), limiter).await?);
    }
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let mut client = rampart_client(&addrs, "grpc-client")?;

    // Healthy servers: every unary call and every stream is answered, spread over the three.
    // The calls run ten at a time: P2C weighs each server's calls in flight with its latency
    // (one call at a time, the fastest-looking server would take most of them).
    let mut answered_by = BTreeMap::new();
    let mut running = tokio::task::JoinSet::new();
    for at in 0..CALLS {
        if running.len() == CONCURRENCY {
            let server = running.join_next().await.expect("a call is running")??;
            *answered_by.entry(server).or_insert(0_u32) += 1;
        }
        let mut client = client.clone();
        running.spawn(async move {
            let call = client.say(say(&format!("hello {at}"), 0));
            let reply = tokio::time::timeout(Duration::from_secs(5), call).await??;
            Ok::<_, BoxError>(reply.into_inner().server)
        });
    }
    while let Some(server) = running.join_next().await {
        *answered_by.entry(server??).or_insert(0_u32) += 1;
    }
    let mut stream = client.repeat(say("again", 3)).await?.into_inner();
    let mut streamed = 0;
    while let Some(reply) = tokio::time::timeout(Duration::from_secs(5), stream.message()).await?? {
        assert_eq!(reply.text, "again");
        streamed += 1;
    }
    println!("{CALLS} unary calls over {addrs:?}: answered by server {answered_by:?}");
    println!("a stream of 3 messages: {streamed} received");

    // A server whose limiter is hot (CPU at 95 %, nothing completed yet): with two calls held
    // in its handler, a third is shed, and the generated client sees the status and pushback.
    let (hold, mut gate) = Held::new();
    let hot = serve(EchoService::new(9).holding(hold), hot_limiter("grpc-hot")?).await?;
    let mut direct = rampart_grpc_echo::EchoClient::connect(format!("http://{}", hot.addr)).await?;
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let mut client = direct.clone();
            tokio::spawn(async move { client.say(say("held", 0)).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), gate.arrivals(2)).await?;
    let shed = tokio::time::timeout(Duration::from_secs(5), direct.say(say("third", 0)))
        .await?
        .expect_err("a third call while two are held is shed");
    let pushback = shed
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    println!(
        "the hot server shed a call: {:?} \"{}\", grpc-retry-pushback-ms: {pushback}",
        shed.code(),
        shed.message()
    );
    gate.release(2);
    for call in holding {
        tokio::time::timeout(Duration::from_secs(5), call).await???;
    }
    println!("the two held calls were answered once released");

    if check {
        if answered_by.values().sum::<u32>() != CALLS || streamed != 3 {
            return Err("healthy servers should answer every call and stream".into());
        }
        if answered_by.len() < 2 {
            return Err("the balancer should spread calls over the servers".into());
        }
        if shed.code() != Code::Unavailable || pushback == "none" {
            return Err("a shed call should be UNAVAILABLE with pushback".into());
        }
    }
    Ok(())
}
