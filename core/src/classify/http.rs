use http::{HeaderMap, Response, StatusCode};

use super::{Classify, Outcome};

/// gRPC status codes that mean the backend failed or shed the call (the codes are from the
/// gRPC specification's status-code table).
const GRPC_FAILURES: [(&[u8], &str); 6] = [
    (b"2", "UNKNOWN"),
    (b"4", "DEADLINE_EXCEEDED"),
    (b"8", "RESOURCE_EXHAUSTED"),
    (b"13", "INTERNAL"),
    (b"14", "UNAVAILABLE"),
    (b"15", "DATA_LOSS"),
];

/// Classifies `http::Response`s by HTTP status and `grpc-status`.
///
/// A response is a [`Failure`](Outcome::Failure) when:
///
/// - its status is 5xx, or 429 Too Many Requests (the backend shed the call);
/// - or its headers carry a `grpc-status` of `UNKNOWN` (2), `DEADLINE_EXCEEDED` (4),
///   `RESOURCE_EXHAUSTED` (8), `INTERNAL` (13), `UNAVAILABLE` (14) or `DATA_LOSS` (15).
///
/// Every other response is a [`Success`](Outcome::Success), including 4xx statuses and other
/// gRPC errors such as `NOT_FOUND` or `INVALID_ARGUMENT`: they are the caller's fault, not signs of
/// an unhealthy backend. An `Err` (the connection failed, a timeout fired) is a `Failure`.
///
/// gRPC sends its status in the *trailers* of a streamed response; this classifier sees the
/// headers only, so it catches trailers-only responses (every error a server returns before
/// sending a message, which is how tonic and grpc-go return errors from unary calls).
/// `GrpcClassifier` (feature `grpc`) also reads the trailers at the end of the body.
///
/// ```
/// use http::{Response, StatusCode};
/// use rampart_core::{Classify, HttpClassifier, Outcome};
///
/// let busy = Response::builder().status(StatusCode::TOO_MANY_REQUESTS).body(()).unwrap();
/// assert_eq!(HttpClassifier.classify(Ok::<_, &()>(&busy)), Outcome::Failure);
///
/// let unavailable = Response::builder().header("grpc-status", "14").body(()).unwrap();
/// assert_eq!(HttpClassifier.classify(Ok::<_, &()>(&unavailable)), Outcome::Failure);
///
/// let not_found = Response::builder().status(StatusCode::NOT_FOUND).body(()).unwrap();
/// assert_eq!(HttpClassifier.classify(Ok::<_, &()>(&not_found)), Outcome::Success);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpClassifier;

impl HttpClassifier {
    /// Classifies a status code and headers: the rule applied to every response.
    pub fn classify_parts(status: StatusCode, headers: &HeaderMap) -> Outcome {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Outcome::Failure;
        }
        match headers.get("grpc-status") {
            Some(code)
                if GRPC_FAILURES
                    .iter()
                    .any(|(failing, _)| code.as_bytes().trim_ascii() == *failing) =>
            {
                Outcome::Failure
            }
            _ => Outcome::Success,
        }
    }
}

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        match result {
            Ok(response) => Self::classify_parts(response.status(), response.headers()),
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, grpc_status: Option<&str>) -> Outcome {
        let mut response = Response::builder().status(status);
        if let Some(code) = grpc_status {
            response = response.header("grpc-status", code);
        }
        let response = response.body(()).expect("a valid response");
        HttpClassifier.classify(Ok::<_, &()>(&response))
    }

    #[test]
    fn server_errors_and_429_are_failures() {
        for status in [500, 502, 503, 504, 599, 429] {
            assert_eq!(classify(status, None), Outcome::Failure, "{status}");
        }
    }

    #[test]
    fn other_statuses_are_successes() {
        for status in [100, 200, 204, 301, 304, 400, 401, 403, 404, 408, 409, 499] {
            assert_eq!(classify(status, None), Outcome::Success, "{status}");
        }
    }

    #[test]
    fn grpc_statuses_of_an_unhealthy_backend_are_failures() {
        for (code, name) in GRPC_FAILURES {
            let code = std::str::from_utf8(code).expect("ascii digits");
            assert_eq!(classify(200, Some(code)), Outcome::Failure, "{name}");
        }
        assert_eq!(classify(200, Some(" 14 ")), Outcome::Failure);
    }

    #[test]
    fn grpc_statuses_of_a_caller_error_are_successes() {
        // OK, CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
        // FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED, and junk.
        for code in [
            "0", "1", "3", "5", "6", "7", "9", "10", "11", "12", "16", "140", "x", "",
        ] {
            assert_eq!(
                classify(200, Some(code)),
                Outcome::Success,
                "grpc-status {code:?}"
            );
        }
    }

    #[test]
    fn transport_errors_are_failures() {
        let err = std::io::Error::other("connection reset");
        assert_eq!(
            HttpClassifier.classify(Err::<&Response<()>, _>(&err)),
            Outcome::Failure
        );
    }
}
