//! The breaker counts a gRPC call's status where it arrives: in the headers of a trailers-only
//! answer at once, in the trailers after a body when the body ends (`GrpcClassifier` over
//! responses whose bodies `GrpcBody` wraps).

use std::convert::Infallible;
use std::sync::Arc;

use http::Response;
use http_body_util::BodyExt;
use rampart_breaker::{BreakerConfig, BreakerLayer, SreBreaker};
use rampart_core::{GrpcClassifier, ManualClock, Outcome};
use rampart_testkit::grpc::{Answer, Body, answer};
use tower::{Layer, Service, ServiceExt, service_fn};

fn breaker(on_cancel: Outcome) -> Arc<SreBreaker<ManualClock>> {
    Arc::new(
        BreakerConfig::default()
            .with_on_cancel(on_cancel)
            .build_with(ManualClock::new())
            .expect("a valid config"),
    )
}

/// Calls a breaker over a backend answering `how`; returns the response.
async fn call(breaker: &Arc<SreBreaker<ManualClock>>, how: Answer) -> Response<Body> {
    let backend = service_fn(move |()| async move { Ok::<_, Infallible>(answer(how)) });
    let mut service = BreakerLayer::from_breaker(Arc::clone(breaker))
        .with_classifier(GrpcClassifier)
        .layer(backend);
    service
        .ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("admitted")
}

/// (admitted, accepts) in the breaker's window.
fn counts(breaker: &SreBreaker<ManualClock>) -> (u64, u64) {
    let snapshot = breaker.snapshot();
    (snapshot.admitted, snapshot.accepts)
}

#[tokio::test]
async fn a_trailers_only_failure_counts_when_the_response_arrives() {
    let breaker = breaker(Outcome::Ignore);
    let response = call(&breaker, Answer::TrailersOnly("14")).await;
    assert_eq!(counts(&breaker), (1, 0));
    response.into_body().collect().await.expect("an empty body");
    assert_eq!(counts(&breaker), (1, 0), "counted once");
}

#[tokio::test]
async fn a_failure_in_the_trailers_after_a_body_counts_when_the_body_ends() {
    let breaker = breaker(Outcome::Ignore);
    let response = call(&breaker, Answer::AfterBody("14")).await;
    assert_eq!(counts(&breaker), (0, 0), "nothing at the headers");
    response.into_body().collect().await.expect("a whole body");
    assert_eq!(counts(&breaker), (1, 0));
}

#[tokio::test]
async fn a_success_in_the_trailers_after_a_body_counts_when_the_body_ends() {
    let breaker = breaker(Outcome::Ignore);
    let response = call(&breaker, Answer::AfterBody("0")).await;
    assert_eq!(counts(&breaker), (0, 0));
    response.into_body().collect().await.expect("a whole body");
    assert_eq!(counts(&breaker), (1, 1));
}

#[tokio::test]
async fn a_body_dropped_before_its_trailers_counts_as_the_breakers_cancellation() {
    // By default a cancellation is not counted.
    let ignoring = breaker(Outcome::Ignore);
    let mut body = call(&ignoring, Answer::AfterBody("14")).await.into_body();
    assert!(
        body.frame()
            .await
            .expect("a frame")
            .expect("data")
            .is_data()
    );
    drop(body);
    assert_eq!(counts(&ignoring), (0, 0));
    // A breaker told to count cancellations as failures counts it once, as a failure.
    let counting = breaker(Outcome::Failure);
    drop(call(&counting, Answer::AfterBody("0")).await);
    assert_eq!(counts(&counting), (1, 0));
}

#[tokio::test]
async fn a_body_error_counts_as_a_failure() {
    let breaker = breaker(Outcome::Ignore);
    let response = call(&breaker, Answer::BodyError).await;
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(counts(&breaker), (1, 0));
}
