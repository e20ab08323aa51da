//! The balancer scores an endpoint by a gRPC call's status where it arrives: in the headers of
//! a trailers-only answer at once, in the trailers after a body when the body ends (with
//! `GrpcClassifier`, over endpoints whose response bodies `GrpcBody` wraps); until then the
//! call stays in flight on its endpoint. The same through a `SharedP2c` handle.

use std::convert::Infallible;
use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;
use rampart_balancer::{EndpointSnapshot, P2c, P2cConfig, PeakSuccess, SharedP2c};
use rampart_core::{GrpcClassifier, ManualClock};
use rampart_testkit::grpc::{Answer, Body, answer};
use tower::discover::ServiceList;
use tower::{Service, ServiceExt, service_fn};

/// Sends one request through a one-endpoint balancer answering `how`, on `clock`; returns the
/// response and the endpoint as the balancer saw it when the response arrived.
async fn send(how: Answer, clock: &ManualClock) -> (Response<Body>, Balancer) {
    let endpoint = service_fn(move |()| async move { Ok::<_, Infallible>(answer(how)) });
    let mut balancer = P2c::new_with(
        ServiceList::new::<()>(vec![endpoint]),
        P2cConfig::default().with_seed(1),
        clock.clone(),
        PeakSuccess,
    )
    .expect("a valid config")
    .with_classifier(GrpcClassifier);
    let response = balancer
        .ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("an answer");
    (
        response,
        Balancer(Box::new(move || balancer.snapshot().remove(0))),
    )
}

/// The endpoint's snapshot, read later.
struct Balancer(Box<dyn Fn() -> EndpointSnapshot<usize>>);

impl Balancer {
    fn endpoint(&self) -> EndpointSnapshot<usize> {
        (self.0)()
    }
}

#[tokio::test]
async fn a_trailers_only_failure_scores_when_the_response_arrives() {
    let clock = ManualClock::new();
    let (response, balancer) = send(Answer::TrailersOnly("14"), &clock).await;
    let endpoint = balancer.endpoint();
    assert_eq!((endpoint.inflight, endpoint.success), (0, 0.0));
    response.into_body().collect().await.expect("an empty body");
    assert_eq!(balancer.endpoint().success, 0.0);
}

#[tokio::test]
async fn a_failure_in_the_trailers_after_a_body_scores_when_the_body_ends() {
    let clock = ManualClock::new();
    let (response, balancer) = send(Answer::AfterBody("14"), &clock).await;
    let endpoint = balancer.endpoint();
    assert_eq!(
        (endpoint.inflight, endpoint.success),
        (1, 1.0),
        "in flight until the end"
    );
    clock.advance(Duration::from_millis(40));
    response.into_body().collect().await.expect("a whole body");
    let endpoint = balancer.endpoint();
    assert_eq!((endpoint.inflight, endpoint.success), (0, 0.0));
    assert_eq!(
        endpoint.lag,
        Duration::from_millis(40),
        "latency to the body's end"
    );
}

#[tokio::test]
async fn a_success_in_the_trailers_after_a_body_scores_when_the_body_ends() {
    let clock = ManualClock::new();
    let (response, balancer) = send(Answer::AfterBody("0"), &clock).await;
    assert_eq!(balancer.endpoint().inflight, 1);
    clock.advance(Duration::from_millis(25));
    response.into_body().collect().await.expect("a whole body");
    let endpoint = balancer.endpoint();
    assert_eq!((endpoint.inflight, endpoint.success), (0, 1.0));
    assert_eq!(endpoint.lag, Duration::from_millis(25));
}

#[tokio::test]
async fn a_body_dropped_before_its_trailers_only_leaves_flight() {
    let clock = ManualClock::new();
    let (response, balancer) = send(Answer::AfterBody("14"), &clock).await;
    let mut body = response.into_body();
    assert!(
        body.frame()
            .await
            .expect("a frame")
            .expect("data")
            .is_data()
    );
    assert_eq!(balancer.endpoint().inflight, 1);
    clock.advance(Duration::from_millis(40));
    drop(body);
    let endpoint = balancer.endpoint();
    assert_eq!(
        (endpoint.inflight, endpoint.success, endpoint.lag),
        (0, 1.0, Duration::ZERO),
        "a cancellation: neither its latency nor its outcome scored"
    );
}

#[tokio::test]
async fn a_body_error_scores_as_a_failure() {
    let clock = ManualClock::new();
    let (response, balancer) = send(Answer::BodyError, &clock).await;
    assert!(response.into_body().collect().await.is_err());
    let endpoint = balancer.endpoint();
    assert_eq!((endpoint.inflight, endpoint.success), (0, 0.0));
}

/// [`send`] through a `SharedP2c` handle.
async fn send_shared(how: Answer, clock: &ManualClock) -> (Response<Body>, Balancer) {
    let endpoint = service_fn(move |()| async move { Ok::<_, Infallible>(answer(how)) });
    let balancer = SharedP2c::empty_with(
        P2cConfig::default().with_seed(1),
        clock.clone(),
        PeakSuccess,
    )
    .expect("a valid config")
    .with_classifier(GrpcClassifier);
    balancer.insert(0, endpoint);
    let response = balancer.clone().oneshot(()).await.expect("an answer");
    (
        response,
        Balancer(Box::new(move || balancer.snapshot().remove(0))),
    )
}

#[tokio::test]
async fn through_the_shared_handle_a_status_in_the_trailers_scores_when_the_body_ends() {
    let clock = ManualClock::new();
    let (response, balancer) = send_shared(Answer::AfterBody("14"), &clock).await;
    assert_eq!(balancer.endpoint().inflight, 1, "in flight until the end");
    clock.advance(Duration::from_millis(40));
    response.into_body().collect().await.expect("a whole body");
    let endpoint = balancer.endpoint();
    assert_eq!(
        (endpoint.inflight, endpoint.success, endpoint.lag),
        (0, 0.0, Duration::from_millis(40))
    );
}

#[tokio::test]
async fn through_the_shared_handle_a_body_dropped_before_its_trailers_only_leaves_flight() {
    let clock = ManualClock::new();
    let (response, balancer) = send_shared(Answer::AfterBody("14"), &clock).await;
    let mut body = response.into_body();
    assert!(
        body.frame()
            .await
            .expect("a frame")
            .expect("data")
            .is_data()
    );
    clock.advance(Duration::from_millis(40));
    drop(body);
    let endpoint = balancer.endpoint();
    assert_eq!(
        (endpoint.inflight, endpoint.success, endpoint.lag),
        (0, 1.0, Duration::ZERO)
    );
}
