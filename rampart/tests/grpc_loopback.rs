//! tonic's generated client against tonic servers behind rampart, on real sockets of 127.0.0.1:
//! a server whose limiter is hot sheds a call with `UNAVAILABLE` and pushback while its
//! capacity is held, and never runs the shed call; the breaker counts a trailers-only gRPC error
//! as the backend's failure and a caller's error as a success; with `GrpcClassifier` and
//! `GrpcBody`, the breaker and the balancer count both a trailers-only error and a stream that
//! fails in its trailers, after a message, as failures; the client's retry waits the pushback a shedding server asks for,
//! and does not retry at all when the value is negative, malformed or too long; in a chain
//! user → B → C with C failing, only B (next to the failure) retries.
//!
//! Overload is forced without timers: the limiter reads a manual CPU at 95 % and a manual clock,
//! and the handler holds calls until the test releases them.

#[path = "../examples/support/mod.rs"]
mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart::HttpClassifier;
use rampart::balancer::{P2c, P2cConfig, PeakSuccess};
use rampart::breaker::{BreakerConfig, BreakerLayer};
use rampart::core::{GrpcBody, GrpcClassifier, ManualClock};
use rampart::ratelimit::{BbrConfig, ManualCpu};
use rampart::retry::{Backoff, RetryConfig};
use rampart_grpc_echo::EchoClient;
use support::grpc::{
    EchoService, GrpcEndpoint, Held, WholeBody, grpc_stack, hot_limiter, say, serve,
};
use tonic::Code;
use tower::discover::ServiceList;
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceBuilder};

/// A request as the gRPC client sends it to an endpoint.
type GrpcRequest = http::Request<http_body_util::Full<bytes::Bytes>>;

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
async fn a_hot_server_sheds_with_unavailable_and_pushback_and_never_runs_the_shed_call() {
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
    assert_eq!(shed.code(), Code::Unavailable, "{shed:?}");
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

/// A service the test shares with the client, to read the balancer's view between calls.
struct Shared<S>(Arc<Mutex<S>>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S: Service<R>, R> Service<R> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.lock().expect("not poisoned").poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.lock().expect("not poisoned").call(request)
    }
}

/// A response whose body is a `GrpcBody`, as tonic's client takes it.
fn tonic_body(
    response: http::Response<GrpcBody<tonic::body::Body>>,
) -> http::Response<tonic::body::Body> {
    response.map(tonic::body::Body::new)
}

/// Reads a `Repeat` stream to its end: the messages, and the status that ended it.
async fn read_stream(
    client: &mut EchoClient<WholeBody>,
    messages: u32,
) -> (u32, Result<(), tonic::Status>) {
    let mut stream = bounded(client.repeat(say("streamed", messages)))
        .await
        .expect("the stream starts")
        .into_inner();
    let mut received = 0;
    loop {
        match bounded(stream.message()).await {
            Ok(Some(reply)) => {
                assert_eq!(reply.text, "streamed");
                received += 1;
            }
            Ok(None) => return (received, Ok(())),
            Err(status) => return (received, Err(status)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_and_the_balancer_count_trailers_only_errors_and_errors_after_a_message() {
    let limiter = BbrConfig::default()
        .with_name("grpc-trailers")
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid");
    let echo = EchoService::new(0)
        .failing_say(Code::Unavailable)
        .failing_stream(Code::Unavailable);
    let server = serve(echo.clone(), limiter.into())
        .await
        .expect("the server starts");
    // Each response's body is wrapped at the transport, below the layers that count.
    let endpoint = || {
        ServiceBuilder::new()
            .map_response(GrpcBody::wrap)
            .service(GrpcEndpoint::each(&[server.addr]).expect("valid").remove(0))
    };
    // One answered call, one trailers-only failure, one stream failing after its message.
    let calls = |mut client: EchoClient<WholeBody>, after_each: Box<dyn Fn(&str) + Send>| async move {
        let reply = bounded(client.say(say("unary", 0)))
            .await
            .expect("answered");
        assert_eq!(reply.into_inner().text, "unary");
        after_each("answered");
        let error = bounded(client.say(say("fail", 0)))
            .await
            .expect_err("trailers-only failure");
        assert_eq!(error.code(), Code::Unavailable);
        after_each("trailers-only");
        let (received, end) = read_stream(&mut client, 1).await;
        assert_eq!(received, 1, "the message before the error arrives");
        assert_eq!(
            end.expect_err("the trailers fail").code(),
            Code::Unavailable
        );
        after_each("after a message");
    };

    // The breaker (k = 2: one acceptance covers the two failures, nothing is rejected).
    let breaker = BreakerLayer::new(BreakerConfig::default().with_name("grpc-trailers"))
        .expect("valid")
        .with_classifier(GrpcClassifier);
    let counts = breaker.breaker().clone();
    let stack = ServiceBuilder::new()
        .map_response(tonic_body)
        .layer(breaker)
        .map_err(BoxError::from)
        .service(endpoint());
    let client = EchoClient::new(WholeBody::new(BoxCloneService::new(stack)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let seen = Arc::clone(&seen);
        move |step: &str| {
            let snapshot = counts.snapshot();
            seen.lock().expect("not poisoned").push((
                step.to_owned(),
                snapshot.admitted,
                snapshot.accepts,
            ));
        }
    };
    calls(client, Box::new(record)).await;
    assert_eq!(
        *seen.lock().expect("not poisoned"),
        [
            ("answered".to_owned(), 1, 1),
            ("trailers-only".to_owned(), 2, 1),
            ("after a message".to_owned(), 3, 1),
        ],
        "(step, admitted, accepts): each failure counted, none as an acceptance"
    );

    // The balancer, over the same server: its success rate stays whole through the answered
    // call and drops at each failure: each a sample of its own on a clock moved after each
    // call (the system clock's coarse tick would average two failures into one sample).
    let (clock, config) = (
        ManualClock::new(),
        P2cConfig::default().with_name("grpc-trailers"),
    );
    let list = ServiceList::new::<GrpcRequest>(vec![endpoint()]);
    let balancer = Shared(Arc::new(Mutex::new(
        P2c::new_with(list, config, clock.clone(), PeakSuccess)
            .expect("valid")
            .with_classifier(GrpcClassifier),
    )));
    let stack = ServiceBuilder::new()
        .map_response(tonic_body)
        .map_err(BoxError::from)
        .service(balancer.clone());
    let client = EchoClient::new(WholeBody::new(BoxCloneService::new(stack)));
    let rates = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let rates = Arc::clone(&rates);
        let balancer = balancer.clone();
        move |_: &str| {
            let success = balancer.0.lock().expect("not poisoned").snapshot()[0].success;
            rates.lock().expect("not poisoned").push(success);
            clock.advance(Duration::from_millis(1));
        }
    };
    calls(client, Box::new(record)).await;
    let rates = rates.lock().expect("not poisoned").clone();
    assert_eq!(rates.len(), 3);
    assert_eq!(rates[0], 1.0, "an answered call is a success");
    assert!(
        rates[1] < rates[0] && rates[2] < rates[1],
        "each failure lowers the success rate: {rates:?}"
    );
    assert_eq!(echo.calls(), 6);
}

/// A server whose handler sheds its first call with `grpc-retry-pushback-ms: pushback`, and the
/// outcome of one call through rampart's gRPC client stack (retry → breaker → P2C): its result,
/// the calls the handler saw, and how long the call took.
async fn call_with_pushback(
    pushback: &'static str,
) -> (Result<String, tonic::Status>, u64, Duration) {
    let limiter = BbrConfig::default()
        .with_name("grpc-pushback")
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid");
    let echo = EchoService::new(0).shedding_first(1, pushback);
    let server = serve(echo.clone(), limiter.into())
        .await
        .expect("the server starts");
    // A backoff of 1 ms: any longer wait is the pushback's.
    let retry = RetryConfig::default().with_backoff(Backoff::Constant(Duration::from_millis(1)));
    let stack = grpc_stack(&[server.addr], "grpc-pushback", retry).expect("valid");
    let mut client = EchoClient::new(WholeBody::new(stack));
    let started = std::time::Instant::now();
    let result = bounded(client.say(say("again", 0)))
        .await
        .map(|reply| reply.into_inner().text);
    (result, echo.calls(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_waits_the_servers_pushback_before_trying_again() {
    let (result, calls, took) = call_with_pushback("150").await;
    assert_eq!(result.expect("the retry is answered"), "again");
    assert_eq!(calls, 2, "one shed call, one retry");
    assert!(
        took >= Duration::from_millis(150),
        "the retry waited the pushback, not the 1 ms backoff: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_malformed_and_overlong_pushback_stop_the_retry() {
    // Negative: "don't retry" (gRPC A6); malformed: the same; longer than the retry layer's
    // `max_pushback` (30 s): not waited, the call ends with the server's answer.
    for pushback in ["-1", "soon", "1.5", "60000", "99999999999999999999999"] {
        let (result, calls, took) = call_with_pushback(pushback).await;
        let status = result.expect_err("not retried");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{pushback}: {status:?}"
        );
        assert_eq!(calls, 1, "{pushback}: no retry");
        assert!(
            took < Duration::from_secs(5),
            "{pushback}: not held, {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_chain_only_the_hop_next_to_the_failure_retries() {
    let cool = |name: &'static str| {
        std::sync::Arc::new(
            BbrConfig::default()
                .with_name(name)
                .build_with(ManualClock::new(), ManualCpu::new(0.0))
                .expect("valid"),
        )
    };
    // Three attempts at each hop, 1 ms apart; an answer a hop's retries gave up on is marked
    // "don't retry" for its caller.
    let retry = RetryConfig::default()
        .with_backoff(Backoff::Constant(Duration::from_millis(1)))
        .with_mark_gave_up(true);
    let c = EchoService::new(2).failing_say(Code::Unavailable);
    let c_server = serve(c.clone(), cool("grpc-chain-c"))
        .await
        .expect("C starts");
    let to_c = EchoClient::new(WholeBody::new(
        grpc_stack(&[c_server.addr], "grpc-chain-b-to-c", retry.clone()).expect("valid"),
    ));
    let b = EchoService::new(1).forwarding(to_c);
    let b_server = serve(b.clone(), cool("grpc-chain-b"))
        .await
        .expect("B starts");
    let mut user = EchoClient::new(WholeBody::new(
        grpc_stack(&[b_server.addr], "grpc-chain-user-to-b", retry).expect("valid"),
    ));

    // Answered calls first: the breakers' acceptances and the retry budgets' deposits, so that
    // neither refuses the failing call's retries.
    for _ in 0..EACH {
        let reply = bounded(user.say(say("ok", 0))).await.expect("answered");
        assert_eq!(reply.into_inner().text, "ok");
    }
    assert_eq!((b.calls(), c.calls()), (EACH, EACH));

    let status = bounded(user.say(say("fail", 0)))
        .await
        .expect_err("C fails every attempt");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|value| value.to_str().expect("ascii")),
        Some("-1"),
        "B's retries are spent: it tells its caller not to retry"
    );
    assert_eq!(
        c.calls() - EACH,
        3,
        "B, next to the failure, tried C three times"
    );
    assert_eq!(
        b.calls() - EACH,
        1,
        "the user's client did not retry B (naive: 3 × 3 = 9 at C)"
    );
}
