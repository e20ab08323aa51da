//! An axum server behind the BBR limiter, as the README and the `server` example build it:
//! a shed request is answered 503 with `Retry-After`, admitted ones reach the handler; and
//! requests that cannot finish in time (their deadline passes, or the limiter predicts it
//! would) are answered 504 without one.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rampart::core::{Clock, ManualClock, TokioClock};
use rampart::deadline::EnforceDeadlineLayer;
use rampart::http::{DEADLINE_HEADER, ErrorStatus, ServerContextConfig};
use rampart::ratelimit::{BbrConfig, BbrLimitLayer, ManualCpu};
use tokio::sync::{Semaphore, mpsc};
use tower::{BoxError, ServiceBuilder, ServiceExt};

async fn refuse(error: BoxError) -> Response {
    match ErrorStatus::default().of(&*error) {
        Some(refusal) => (refusal.status, refusal.headers(), error.to_string()).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `GET /work` says it `entered`, then waits for a permit of `gate`, behind a limiter on a hot CPU that has not yet
/// measured what the server carries (so it admits two requests at a time and sheds the rest).
fn app(gate: Arc<Semaphore>, entered: mpsc::UnboundedSender<()>) -> Router {
    let limiter = BbrConfig::default()
        .with_name("http-status")
        .build_with(ManualClock::new(), ManualCpu::new(1.0))
        .expect("valid");
    let guard = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(refuse))
        .layer(BbrLimitLayer::from_limiter(Arc::new(limiter)));
    Router::new()
        .route(
            "/work",
            get(move || async move {
                entered.send(()).expect("the test listens");
                let _permit = gate.acquire().await.expect("open");
                "done"
            }),
        )
        .route_layer(guard)
}

fn work() -> Request<Body> {
    Request::get("/work").body(Body::empty()).expect("valid")
}

#[tokio::test]
async fn a_shed_request_is_answered_503_with_retry_after() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered, mut handlers) = mpsc::unbounded_channel();
    let app = app(Arc::clone(&gate), entered);
    // Two requests in flight, held by the handler.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.clone().oneshot(work())))
        .collect();
    for _ in 0..2 {
        handlers.recv().await.expect("a handler entered");
    }
    let shed = app.clone().oneshot(work()).await.expect("infallible");
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()[header::RETRY_AFTER], "1");

    gate.add_permits(2);
    for request in held {
        let response = request.await.expect("ran").expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// A `GET /work` request that says its caller waits `timeout` (in `grpc-timeout`'s form).
fn work_within(timeout: &'static str) -> Request<Body> {
    Request::get("/work")
        .header(DEADLINE_HEADER, timeout)
        .body(Body::empty())
        .expect("valid")
}

#[tokio::test(start_paused = true)]
async fn work_still_running_at_its_deadline_is_answered_504_without_retry_after() {
    // One clock for the layer that makes the deadline and the one that enforces it.
    let clock = TokioClock::new();
    let app = Router::new()
        .route(
            "/work",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "too late"
            }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refuse))
                .layer(EnforceDeadlineLayer::new_with(clock)),
        )
        .layer(
            ServerContextConfig::default()
                .build_with(clock)
                .expect("valid"),
        );
    let start = clock.now();
    let response = app.oneshot(work_within("250m")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        clock.now(),
        start + Duration::from_millis(250),
        "ended at the deadline"
    );
}

#[tokio::test]
async fn a_request_the_limiter_predicts_would_miss_its_deadline_is_answered_504() {
    // The limiter has learned a 20 ms response time; a request with 5 ms left cannot finish.
    let clock = ManualClock::new();
    let limiter = BbrConfig::default()
        .with_name("http-status")
        .build_with(clock.clone(), ManualCpu::new(0.1))
        .expect("valid");
    for _ in 0..10 {
        let permit = limiter.acquire().expect("admitted");
        clock.advance(Duration::from_millis(20));
        permit.complete();
    }
    clock.advance(Duration::from_millis(100)); // the bucket ends
    let app = Router::new()
        .route("/work", get(|| async { "done" }))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refuse))
                .layer(BbrLimitLayer::from_limiter(Arc::new(limiter))),
        )
        .layer(
            ServerContextConfig::default()
                .build_with(clock.clone())
                .expect("valid"),
        );
    let refused = app
        .clone()
        .oneshot(work_within("5m"))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!refused.headers().contains_key(header::RETRY_AFTER));
    let served = app.oneshot(work_within("1S")).await.expect("infallible");
    assert_eq!(served.status(), StatusCode::OK);
}
