//! An axum server behind the BBR limiter, as the README and the `server` example build it:
//! a shed request is answered 503 with `Retry-After`, admitted ones reach the handler.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rampart::core::ManualClock;
use rampart::http::ErrorStatus;
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
