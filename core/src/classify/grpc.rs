//! gRPC outcomes: from the headers of a trailers-only answer, or from the trailers at the end of
//! the body, through [`GrpcBody`] and a [`Deferred`] outcome.
//!
//! The design and the status table are in [`GrpcClassifier`]'s docs.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::{Classify, Deferred, HttpClassifier, Outcome};

/// The outcome of a gRPC status code, by the table in [`GrpcClassifier`]'s docs: the backend's
/// failures are `UNKNOWN`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`,
/// `UNAVAILABLE`, `DATA_LOSS` and any code outside 0–16; `CANCELLED` is ignored; the rest
/// (`OK` and the caller's own errors) are successes.
///
/// ```
/// use rampart_core::{Outcome, grpc_code_outcome};
///
/// assert_eq!(grpc_code_outcome(14), Outcome::Failure); // UNAVAILABLE
/// assert_eq!(grpc_code_outcome(5), Outcome::Success); // NOT_FOUND: the caller's
/// assert_eq!(grpc_code_outcome(1), Outcome::Ignore); // CANCELLED
/// ```
pub const fn grpc_code_outcome(code: u32) -> Outcome {
    match code {
        1 => Outcome::Ignore,
        0 | 3 | 5 | 6 | 7 | 9 | 10 | 11 | 12 | 16 => Outcome::Success,
        _ => Outcome::Failure,
    }
}

/// The outcome of a `grpc-status` value: a malformed one reads as `UNKNOWN`, a failure.
fn status_value_outcome(value: &HeaderValue) -> Outcome {
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|code| code.trim().parse::<u32>().ok())
        .map_or(Outcome::Failure, grpc_code_outcome)
}

/// Classifies gRPC calls: from the headers of a trailers-only answer, or, for a response whose
/// body [`GrpcBody::wrap`] wrapped, from the trailers at the end of its body (the design and the status table follow).
///
/// At the response's headers:
///
/// - a `grpc-status` header (a trailers-only answer) is classified by [`grpc_code_outcome`];
/// - else an HTTP status other than 200 is classified as [`HttpClassifier`] does (5xx and 429
///   are failures: a proxy's answer);
/// - else the outcome is [deferred](Classify::defer) to the end of the body when the response
///   carries a [`Deferred`] (its body is a `GrpcBody`), and is a success otherwise (a body not
///   wrapped: its trailers cannot be seen).
///
/// An `Err` (the transport failed, a timeout fired) is a failure.
///
/// ```
/// use http::Response;
/// use rampart_core::{Classify, GrpcClassifier, Outcome};
///
/// let trailers_only = Response::builder().header("grpc-status", "14").body(()).unwrap();
/// assert_eq!(GrpcClassifier.classify(Ok::<_, &()>(&trailers_only)), Outcome::Failure);
///
/// let caller_error = Response::builder().header("grpc-status", "3").body(()).unwrap();
/// assert_eq!(GrpcClassifier.classify(Ok::<_, &()>(&caller_error)), Outcome::Success);
/// ```
///
/// # Design
///
/// A gRPC server that fails before sending a message answers *trailers-only*: its
/// `grpc-status` is in the response headers, and a classifier sees it when the response
/// arrives. Otherwise the status comes in the trailers, after the messages, when the caller has
/// long had the response: a layer that records at the response (the breaker, the balancer)
/// would count every such call a success. So the outcome is deferred:
///
/// 1. [`GrpcBody::wrap`] wraps a response's body, below the layers (at the transport, in a
///    `map_response`), and puts a [`Deferred`] outcome in the response's extensions.
/// 2. [`GrpcClassifier`], as the breaker's or the balancer's classifier, sees the response: a
///    status in the headers (or an HTTP error status) is classified now; otherwise
///    [`Classify::defer`] returns the `Deferred` found in the extensions.
/// 3. The layer's [`Completion`](crate::Completion) hands its recorder over to it
///    ([`Completion::poll_inner_or_defer`](crate::Completion::poll_inner_or_defer)), and
///    records nothing at the headers.
/// 4. The body ends the outcome once, at the first of: its trailers frame (the outcome of their
///    `grpc-status`, [`grpc_code_outcome`]); an error frame (a failure: the stream broke); the
///    end of the stream without trailers (a failure: a gRPC answer without a status is a
///    protocol error, which gRPC clients report as an error); a panic in the inner body's poll
///    (a failure, recorded as the panic leaves it); the body dropped before any of these (a
///    cancellation: the caller stopped reading, which says nothing about the backend; each
///    layer counts it as it counts a dropped response future).
///
/// Nothing else is generic over bodies: the layers keep their response types, the classifier
/// is a value like any other, and a stack without `GrpcBody` still classifies trailers-only
/// answers (a `GrpcClassifier` that finds no `Deferred` classifies at the headers, as
/// [`HttpClassifier`] does).
///
/// Every call is recorded exactly once by each layer: at the headers, or at the body's end, or
/// as a cancellation when the response future or the body is dropped first (or when every copy
/// of the `Deferred` is gone), or as a failure when the inner service or body panics.
///
/// The balancer's latency for a deferred call runs to the body's end: for a unary call that is
/// the answer's time; for a long stream it is the stream's.
///
/// Cost: a deferred call allocates its `Deferred` (an `Arc` around a mutex) and one box per
/// recorder handed over; the mutex is taken once per layer and once at the end, uncontended.
///
/// # Which statuses count against the backend
///
/// | code | name | outcome | why |
/// | --- | --- | --- | --- |
/// | 0 | `OK` | success | |
/// | 1 | `CANCELLED` | ignored | the caller gave up; it says nothing about the backend |
/// | 2 | `UNKNOWN` | failure | what servers answer for an unhandled error (and clients for an unparsable status) |
/// | 3 | `INVALID_ARGUMENT` | success | the caller's request, whatever the state of the system |
/// | 4 | `DEADLINE_EXCEEDED` | failure | the backend did not answer in time: slowness is what a breaker must see (a deadline set too tight by the caller also lands here, as a client-side timeout does) |
/// | 5 | `NOT_FOUND` | success | the caller's request |
/// | 6 | `ALREADY_EXISTS` | success | the caller's request |
/// | 7 | `PERMISSION_DENIED` | success | the caller's credentials |
/// | 8 | `RESOURCE_EXHAUSTED` | failure | a server out of capacity (flow control, a limiter's shedding): a backend that cannot take the load; a per-user quota answer is counted too, which is the price of catching shedding servers that answer it |
/// | 9 | `FAILED_PRECONDITION` | success | the state the caller's request needs; gRPC's guidance: not to be retried until fixed |
/// | 10 | `ABORTED` | success | a concurrency conflict (a transaction aborted), retried by the caller at a higher level; a healthy backend answers it |
/// | 11 | `OUT_OF_RANGE` | success | the caller's request |
/// | 12 | `UNIMPLEMENTED` | success | a method the backend does not have: a property of the request, not of the load; counting it would let one wrong method trip a breaker shared by all |
/// | 13 | `INTERNAL` | failure | a broken invariant in the backend |
/// | 14 | `UNAVAILABLE` | failure | the backend is down or shedding: gRPC's transient error |
/// | 15 | `DATA_LOSS` | failure | unrecoverable loss in the backend |
/// | 16 | `UNAUTHENTICATED` | success | the caller's credentials |
/// | other, or malformed | | failure | gRPC clients read an unknown or unparsable status as `UNKNOWN` |
///
/// The failures are the codes that retry policies treat as the backend's transient trouble:
/// Envoy's `retry-on` for gRPC offers `cancelled`, `deadline-exceeded`, `internal`,
/// `resource-exhausted` and `unavailable`; gRPC's status-code guide reserves `UNAVAILABLE` for
/// "retry just the failing call", `ABORTED` for "retry at a higher level" and
/// `FAILED_PRECONDITION` for "do not retry until the system is fixed". `CANCELLED`, which Envoy
/// can retry, is neither a success nor a failure here: a cancellation is the caller's choice.
/// `UNKNOWN` and `DATA_LOSS` are not retryable anywhere, but they are the backend's failures.
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcClassifier;

impl GrpcClassifier {
    /// Classifies a response's status and headers, as this classifier does when it does not
    /// defer.
    pub fn classify_parts(status: StatusCode, headers: &HeaderMap) -> Outcome {
        if let Some(code) = headers.get("grpc-status") {
            return status_value_outcome(code);
        }
        if status != StatusCode::OK {
            return HttpClassifier::classify_parts(status, headers);
        }
        Outcome::Success
    }

    /// Classifies trailers: the outcome of their `grpc-status`, a failure without one.
    pub fn classify_trailers(trailers: &HeaderMap) -> Outcome {
        trailers
            .get("grpc-status")
            .map_or(Outcome::Failure, status_value_outcome)
    }
}

impl<B, E> Classify<Response<B>, E> for GrpcClassifier {
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        match result {
            Ok(response) => Self::classify_parts(response.status(), response.headers()),
            Err(_) => Outcome::Failure,
        }
    }

    fn defer(&self, response: &Response<B>) -> Option<Deferred> {
        if response.status() != StatusCode::OK || response.headers().contains_key("grpc-status") {
            return None;
        }
        response.extensions().get::<Deferred>().cloned()
    }
}

pin_project_lite::pin_project! {
    /// A gRPC response body that ends its call's [`Deferred`] outcome when its stream ends
    /// (see [`GrpcClassifier`] for the design): at its trailers (their `grpc-status`), at an error frame
    /// or a stream ended without trailers (failures), at a panic of the inner body (a failure),
    /// or when dropped before any of these (a cancellation).
    ///
    /// It changes nothing in the frames it passes on.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{HeaderMap, Response};
    /// use http_body_util::{BodyExt, StreamBody};
    /// use http_body::Frame;
    /// use rampart_core::{Classify, GrpcBody, GrpcClassifier};
    ///
    /// let mut trailers = HeaderMap::new();
    /// trailers.insert("grpc-status", "14".parse().unwrap());
    /// let frames = vec![
    ///     Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"message"))),
    ///     Ok(Frame::trailers(trailers)),
    /// ];
    /// let body = StreamBody::new(tokio_stream::iter(frames));
    /// let response = GrpcBody::wrap(Response::new(body));
    ///
    /// // The headers say nothing: the classifier defers to the end of the body.
    /// let deferred = Classify::<_, ()>::defer(&GrpcClassifier, &response).expect("a body to read");
    /// assert!(!deferred.is_ended());
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let collected = response.into_body().collect().await.unwrap();
    /// assert!(collected.trailers().is_some());
    /// # });
    /// assert!(deferred.is_ended()); // at the trailers: UNAVAILABLE, a failure
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    #[derive(Debug)]
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        end: EndOnDrop,
    }
}

/// Ends the outcome as a cancellation when the body is dropped before its end.
#[derive(Debug)]
struct EndOnDrop(Deferred);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Lives on the stack across one poll of the inner body and is forgotten when the poll
/// returns: dropped only by the unwinding of a panic in that poll, which it records as the
/// call's failure.
struct PanicWatch<'a>(&'a Deferred);

impl Drop for PanicWatch<'_> {
    fn drop(&mut self) {
        self.0.end(Outcome::Failure);
    }
}

impl<B> GrpcBody<B> {
    /// `inner`, ending `deferred` when its stream ends.
    pub fn new(inner: B, deferred: Deferred) -> Self {
        Self {
            inner,
            end: EndOnDrop(deferred),
        }
    }

    /// Wraps `response`'s body, and puts the [`Deferred`] outcome it ends in the response's
    /// extensions, where [`GrpcClassifier`] finds it. Use it below the layers that record
    /// outcomes, on the transport's responses (e.g. `ServiceBuilder::map_response(GrpcBody::wrap)`
    /// on each endpoint).
    pub fn wrap(response: Response<B>) -> Response<GrpcBody<B>> {
        let deferred = Deferred::new();
        let (mut parts, body) = response.into_parts();
        parts.extensions.insert(deferred.clone());
        Response::from_parts(parts, GrpcBody::new(body, deferred))
    }

    /// The outcome this body ends.
    pub fn deferred(&self) -> &Deferred {
        &self.end.0
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let deferred = &this.end.0;
        let watch = PanicWatch(deferred);
        let poll = this.inner.poll_frame(cx);
        std::mem::forget(watch);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    deferred.end(GrpcClassifier::classify_trailers(trailers));
                }
            }
            Poll::Ready(Some(Err(_)) | None) => deferred.end(Outcome::Failure),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let failures = [2, 4, 8, 13, 14, 15, 17, 99, u32::MAX];
        for code in failures {
            assert_eq!(grpc_code_outcome(code), Outcome::Failure, "{code}");
        }
        for code in [0, 3, 5, 6, 7, 9, 10, 11, 12, 16] {
            assert_eq!(grpc_code_outcome(code), Outcome::Success, "{code}");
        }
        assert_eq!(grpc_code_outcome(1), Outcome::Ignore);
    }

    #[test]
    fn malformed_statuses_read_as_unknown() {
        for value in ["", "x", "-1", "1.0", "14a"] {
            let value = HeaderValue::from_str(value).expect("a header value");
            assert_eq!(status_value_outcome(&value), Outcome::Failure, "{value:?}");
        }
        let padded = HeaderValue::from_static(" 5 ");
        assert_eq!(status_value_outcome(&padded), Outcome::Success);
    }

    #[test]
    fn headers_classify_trailers_only_answers_and_proxy_errors() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            GrpcClassifier::classify_parts(StatusCode::OK, &headers),
            Outcome::Success
        );
        assert_eq!(
            GrpcClassifier::classify_parts(StatusCode::BAD_GATEWAY, &headers),
            Outcome::Failure
        );
        headers.insert("grpc-status", HeaderValue::from_static("13"));
        assert_eq!(
            GrpcClassifier::classify_parts(StatusCode::OK, &headers),
            Outcome::Failure
        );
        assert_eq!(
            GrpcClassifier::classify_trailers(&HeaderMap::new()),
            Outcome::Failure
        );
    }
}
