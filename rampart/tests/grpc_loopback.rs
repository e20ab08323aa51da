//! tonic's generated client against tonic servers behind rampart, on real sockets of 127.0.0.1:
//! a server whose limiter is hot sheds a call with `RESOURCE_EXHAUSTED` and pushback while its
//! capacity is held, and never runs the shed call; the breaker counts a trailers-only gRPC error
//! as the backend's failure and a caller's error as a success.
//!
//! Overload is forced without timers: the limiter reads a manual CPU at 95 % and a manual clock,
//! and the handler holds calls until the test releases them.

#[path = "../examples/support/mod.rs"]
mod support;

use std::future::Future;
use std::time::Duration;

use rampart::HttpClassifier;
use rampart::breaker::{BreakerConfig, BreakerLayer};
use rampart::core::ManualClock;
use rampart::ratelimit::{BbrConfig, ManualCpu};
use rampart_grpc_echo::EchoClient;
use support::grpc::{EchoService, GrpcEndpoint, Held, WholeBody, hot_limiter, say, serve};
use tonic::Code;
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

/// Calls of each kind in the breaker's test.
const EACH: u64 = 10;

/// A bound on each wait, so that a broken build fails instead of hanging; the calls themselves
/// take milliseconds.
async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the call finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_server_sheds_with_resource_exhausted_and_pushback_and_never_runs_the_shed_call() {
    let (hold, mut gate) = Held::new();
    let echo = EchoService::new(0).holding(hold);
    let server = serve(echo.clone(), hot_limiter("grpc-shed").expect("valid"))
        .await
        .expect("the server starts");
    let client = bounded(EchoClient::connect(format!("http://{}", server.addr)))
        .await
        .expect("connects");

    // Two calls in flight, held in the handler: all the capacity a hot limiter with no
    // completed call grants.
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.say(say("held", 0)).await })
        })
        .collect();
    bounded(gate.arrivals(2)).await;

    let shed = bounded(client.clone().say(say("third", 0)))
        .await
        .expect_err("a third call is shed");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert_eq!(
        shed.metadata()
            .get("grpc-retry-pushback-ms")
            .map(|value| value.to_str().expect("ascii")),
        Some("1000"),
        "the limiter's cooldown is the pushback"
    );
    assert_eq!(echo.calls(), 2, "the shed call never reached the handler");

    gate.release(2);
    for call in holding {
        let reply = bounded(call)
            .await
            .expect("the task ends")
            .expect("a held call is answered once released");
        assert_eq!(reply.into_inner().text, "held");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_counts_trailers_only_backend_errors_as_failures_and_caller_errors_as_successes()
 {
    // A cool limiter: it admits everything, so each status comes from the handler.
    let limiter = BbrConfig::default()
        .with_name("grpc-cool")
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid");
    let echo = EchoService::new(0).failing_say(Code::Unavailable);
    let server = serve(echo.clone(), limiter.into())
        .await
        .expect("the server starts");

    let breaker = BreakerLayer::new(BreakerConfig::default().with_name("grpc-breaker"))
        .expect("valid")
        .with_classifier(HttpClassifier);
    let counts = breaker.breaker().clone();
    let endpoint = GrpcEndpoint::each(&[server.addr]).expect("valid").remove(0);
    let stack = ServiceBuilder::new().layer(breaker).service(endpoint);
    let mut client = EchoClient::new(WholeBody::new(BoxCloneService::new(stack)));

    for _ in 0..EACH {
        let reply = bounded(client.say(say("ok", 0))).await.expect("answered");
        assert_eq!(reply.into_inner().text, "ok");
    }
    for _ in 0..EACH {
        let error = bounded(client.say(say("fail", 0)))
            .await
            .expect_err("the handler fails it");
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    }
    for _ in 0..EACH {
        let error = bounded(client.say(say("invalid", 0)))
            .await
            .expect_err("the handler refuses it");
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    }
    let snapshot = counts.snapshot();
    // Twenty accepted calls outweigh ten failures (k = 2): the breaker admitted every call.
    assert_eq!(snapshot.rejected, 0, "{snapshot:?}");
    assert_eq!(snapshot.admitted, 3 * EACH, "{snapshot:?}");
    assert_eq!(
        snapshot.accepts,
        2 * EACH,
        "UNAVAILABLE is the backend's failure, INVALID_ARGUMENT the caller's: {snapshot:?}"
    );
    assert_eq!(echo.calls(), 3 * EACH);
}
