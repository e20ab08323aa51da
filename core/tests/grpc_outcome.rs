//! gRPC outcomes through a `Completion`: recorded at the headers of a trailers-only answer, at
//! the trailers after a body otherwise, exactly once in every path (the body read to its end,
//! an error frame, the body or the response future dropped early, a panic in the body).

#![cfg(feature = "grpc")]

use std::future::ready;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rampart_core::{Classify, Completion, Deferred, GrpcBody, GrpcClassifier, Outcome, Recorder};

/// The ends recorded: `Some(outcome)`, or `None` for a cancellation.
#[derive(Debug, Clone, Default)]
struct Ends(Arc<Mutex<Vec<Option<Outcome>>>>);

impl Ends {
    fn seen(&self) -> Vec<Option<Outcome>> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Recorder for Ends {
    fn record(&mut self, outcome: Outcome) {
        self.0.lock().expect("not poisoned").push(Some(outcome));
    }

    fn record_cancel(&mut self) {
        self.0.lock().expect("not poisoned").push(None);
    }
}

type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;
type Body = GrpcBody<
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>,
>;

fn trailers(code: &str) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", code.parse().expect("a header value"));
    Frame::trailers(trailers)
}

fn message() -> Frame<Bytes> {
    Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))
}

/// A gRPC answer whose body yields `frames`, wrapped as a transport's response would be.
fn answer(frames: Frames) -> Response<Body> {
    GrpcBody::wrap(Response::new(StreamBody::new(tokio_stream::iter(frames))))
}

/// Completes a call answering `response` through a `Completion` recording into `ends`, as the
/// breaker's and the balancer's response futures do.
fn complete(ends: &Ends, response: Response<Body>) -> Response<Body> {
    let mut completion = Completion::new(ends.clone(), GrpcClassifier);
    completion.called();
    let future = pin!(ready(Ok::<_, std::io::Error>(response)));
    let mut cx = Context::from_waker(Waker::noop());
    match completion.poll_inner_or_defer(future, &mut cx) {
        Poll::Ready(Ok(response)) => response,
        other => panic!("a ready response, got {:?}", other.map(|r| r.map(|_| ()))),
    }
}

async fn read_to_end(response: Response<Body>) -> Result<(), std::io::Error> {
    response.into_body().collect().await.map(drop)
}

#[tokio::test]
async fn a_trailers_only_failure_is_recorded_at_the_headers() {
    let ends = Ends::default();
    let mut response = answer(Vec::new());
    response
        .headers_mut()
        .insert("grpc-status", "14".parse().expect("a header value"));
    let response = complete(&ends, response);
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
    read_to_end(response).await.expect("an empty body");
    assert_eq!(ends.seen(), [Some(Outcome::Failure)], "recorded once");
}

#[tokio::test]
async fn a_failure_in_the_trailers_after_a_body_is_recorded_at_the_trailers() {
    let ends = Ends::default();
    let response = complete(&ends, answer(vec![Ok(message()), Ok(trailers("14"))]));
    assert_eq!(ends.seen(), [], "nothing at the headers");
    read_to_end(response).await.expect("a whole body");
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
}

#[tokio::test]
async fn a_success_in_the_trailers_after_a_body_is_recorded_at_the_trailers() {
    let ends = Ends::default();
    let response = complete(&ends, answer(vec![Ok(message()), Ok(trailers("0"))]));
    assert_eq!(ends.seen(), []);
    read_to_end(response).await.expect("a whole body");
    assert_eq!(ends.seen(), [Some(Outcome::Success)]);
}

#[tokio::test]
async fn a_caller_error_in_the_trailers_is_a_success_and_cancelled_is_ignored() {
    let ends = Ends::default();
    let response = complete(&ends, answer(vec![Ok(message()), Ok(trailers("5"))]));
    read_to_end(response).await.expect("a whole body");
    let response = complete(&ends, answer(vec![Ok(trailers("1"))]));
    read_to_end(response).await.expect("a whole body");
    assert_eq!(ends.seen(), [Some(Outcome::Success), Some(Outcome::Ignore)]);
}

#[tokio::test]
async fn a_body_dropped_before_its_trailers_is_a_cancellation() {
    let ends = Ends::default();
    let response = complete(&ends, answer(vec![Ok(message()), Ok(trailers("14"))]));
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.is_data());
    assert_eq!(ends.seen(), []);
    drop(body);
    assert_eq!(ends.seen(), [None]);
}

#[tokio::test]
async fn a_body_error_is_a_failure() {
    let ends = Ends::default();
    let response = complete(
        &ends,
        answer(vec![
            Ok(message()),
            Err(std::io::Error::other("stream reset")),
        ]),
    );
    assert!(read_to_end(response).await.is_err());
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
}

#[tokio::test]
async fn a_body_that_ends_without_trailers_is_a_failure() {
    let ends = Ends::default();
    let response = complete(&ends, answer(vec![Ok(message())]));
    read_to_end(response).await.expect("a whole body");
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
}

#[test]
fn a_response_future_dropped_before_the_response_is_a_cancellation() {
    let ends = Ends::default();
    let mut completion = Completion::new(ends.clone(), GrpcClassifier);
    completion.called();
    let future = pin!(std::future::pending::<Result<Response<Body>, std::io::Error>>());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(completion.poll_inner_or_defer(future, &mut cx).is_pending());
    drop(completion);
    assert_eq!(ends.seen(), [None]);
}

/// A body whose poll panics.
struct Panicking;

impl http_body::Body for Panicking {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        panic!("the body's stream")
    }
}

#[test]
fn a_panic_in_the_body_is_a_failure_recorded_once() {
    let ends = Ends::default();
    let response = GrpcBody::wrap(Response::new(Panicking));
    let deferred = Classify::<_, ()>::defer(&GrpcClassifier, &response).expect("a body to read");
    deferred.attach(ends.clone());
    let mut body = Box::pin(response.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _ = http_body::Body::poll_frame(body.as_mut(), &mut cx);
    }));
    assert!(caught.is_err());
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
    drop(body);
    assert_eq!(
        ends.seen(),
        [Some(Outcome::Failure)],
        "nothing more at the drop"
    );
}

#[tokio::test]
async fn two_layers_on_one_response_each_record_the_trailers_once() {
    let (inner, outer) = (Ends::default(), Ends::default());
    // The balancer's completion sees the response first, the breaker's after.
    let response = complete(&inner, answer(vec![Ok(message()), Ok(trailers("13"))]));
    let response = complete(&outer, response);
    assert_eq!((inner.seen(), outer.seen()), (vec![], vec![]));
    read_to_end(response).await.expect("a whole body");
    assert_eq!(inner.seen(), [Some(Outcome::Failure)]);
    assert_eq!(outer.seen(), [Some(Outcome::Failure)]);
}

#[test]
fn a_recorder_attached_after_the_end_records_the_end_at_once() {
    let ends = Ends::default();
    let deferred = Deferred::new();
    deferred.end(Outcome::Success);
    deferred.attach(ends.clone());
    assert_eq!(ends.seen(), [Some(Outcome::Success)]);
}

#[test]
fn a_deferred_outcome_nobody_can_end_cancels_its_recorders() {
    let ends = Ends::default();
    let deferred = Deferred::new();
    deferred.attach(ends.clone());
    drop(deferred);
    assert_eq!(ends.seen(), [None]);
}

#[test]
fn a_response_without_a_grpc_body_is_classified_at_the_headers() {
    let ends = Ends::default();
    let mut completion = Completion::new(ends.clone(), GrpcClassifier);
    completion.called();
    let future = pin!(ready(Ok::<_, std::io::Error>(Response::new(()))));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(completion.poll_inner_or_defer(future, &mut cx).is_ready());
    assert_eq!(ends.seen(), [Some(Outcome::Success)]);
}

#[test]
fn a_panic_in_the_response_future_is_a_failure_recorded_once() {
    let ends = Ends::default();
    let mut completion = Completion::new(ends.clone(), GrpcClassifier);
    completion.called();
    let future = pin!(std::future::poll_fn(
        |_| -> Poll<Result<Response<Body>, std::io::Error>> { panic!("the inner service") }
    ));
    let mut cx = Context::from_waker(Waker::noop());
    let caught = catch_unwind(AssertUnwindSafe(|| {
        completion.poll_inner_or_defer(future, &mut cx)
    }));
    assert!(caught.is_err());
    drop(completion);
    assert_eq!(ends.seen(), [Some(Outcome::Failure)]);
}
