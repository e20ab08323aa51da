//! How rampart's errors map to gRPC statuses.

use std::error::Error;
use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// A gRPC status code (the gRPC specification's numbering).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code's number, as `grpc-status` carries it.
    pub const fn number(self) -> u8 {
        self as u8
    }
}

/// What a server's answer says about retrying it: gRPC's `grpc-retry-pushback-ms` (gRFC A6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// Retry, but not before this delay (sent in whole milliseconds, rounded up).
    After(Duration),
    /// Do not retry (sent as `-1`: A6 reads a negative value as "no retry").
    DontRetry,
}

impl Pushback {
    /// The `grpc-retry-pushback-ms` value.
    pub fn header_value(self) -> HeaderValue {
        match self {
            Self::After(delay) => {
                let millis = delay
                    .as_millis()
                    .saturating_add(u128::from(delay.subsec_nanos() % 1_000_000 > 0));
                HeaderValue::from(u64::try_from(millis).unwrap_or(u64::MAX))
            }
            Self::DontRetry => HeaderValue::from_static("-1"),
        }
    }
}

/// The gRPC status (and pushback) for an error of one of rampart's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMapped {
    /// The status code.
    pub code: Code,
    /// The status message (`grpc-message`): plain ASCII, sent as it is.
    pub message: &'static str,
    /// What the caller should do about retrying, when the answer says.
    pub pushback: Option<Pushback>,
}

impl GrpcMapped {
    /// The status as metadata: `grpc-status`, `grpc-message` and, when there is one,
    /// `grpc-retry-pushback-ms`. A server returns them as its answer's trailers (or, for an
    /// answer without a message, in its headers: [`response`](Self::response)).
    pub fn metadata(&self) -> HeaderMap {
        let mut metadata = HeaderMap::with_capacity(3);
        metadata.insert(
            "grpc-status",
            HeaderValue::from(u16::from(self.code.number())),
        );
        metadata.insert("grpc-message", HeaderValue::from_static(self.message));
        if let Some(pushback) = self.pushback {
            metadata.insert("grpc-retry-pushback-ms", pushback.header_value());
        }
        metadata
    }

    /// The trailers-only answer a gRPC server sends for this status: HTTP 200,
    /// `content-type: application/grpc`, and the [`metadata`](Self::metadata) in the headers,
    /// with `body` (an empty one: a trailers-only answer has no message).
    pub fn response<B>(&self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.extend(self.metadata());
        response
    }
}

/// How rampart's errors map to gRPC statuses, as [`ErrorStatus`](crate::http::ErrorStatus)
/// maps them to HTTP statuses (see the [module docs](super) for the table and the reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcStatus {
    overloaded: Code,
    shed_pushback: Option<Duration>,
}

impl Default for GrpcStatus {
    /// `Overloaded` → `UNAVAILABLE`, retried after 1 s (the limiter's default cooldown).
    fn default() -> Self {
        Self {
            overloaded: Code::Unavailable,
            shed_pushback: Some(Duration::from_secs(1)),
        }
    }
}

impl GrpcStatus {
    /// The mapping, answering the limiter's `Overloaded` with `code` (`UNAVAILABLE`, the
    /// default, or `RESOURCE_EXHAUSTED`).
    #[must_use]
    pub fn with_overloaded(self, code: Code) -> Self {
        Self {
            overloaded: code,
            ..self
        }
    }

    /// The mapping, with this pushback on the limiter's `Overloaded` (`None`: no pushback
    /// metadata, the caller's own backoff decides).
    #[must_use]
    pub fn with_shed_pushback(self, delay: Option<Duration>) -> Self {
        Self {
            shed_pushback: delay,
            ..self
        }
    }

    /// The status for `error`, or for the first of rampart's errors in its `source()` chain;
    /// `None` when there is none. An error that wraps rampart's retry layer's `GaveUp` (its
    /// retries toward its backend are spent) says "don't retry", with the status of the error
    /// it wraps (`UNAVAILABLE` when that is not one of rampart's).
    pub fn of(&self, error: &(dyn Error + 'static)) -> Option<GrpcMapped> {
        let mut gave_up = false;
        let mut current = Some(error);
        while let Some(error) = current {
            gave_up |= says_dont_retry(error);
            if let Some(mut mapped) = self.direct(error) {
                if gave_up {
                    mapped.pushback = Some(Pushback::DontRetry);
                }
                return Some(mapped);
            }
            current = error.source();
        }
        gave_up.then_some(GrpcMapped {
            code: Code::Unavailable,
            message: "retries exhausted",
            pushback: Some(Pushback::DontRetry),
        })
    }

    /// `error` itself (not its sources) maps to a status.
    #[cfg_attr(not(feature = "ratelimit"), allow(clippy::unused_self))]
    fn direct(&self, error: &(dyn Error + 'static)) -> Option<GrpcMapped> {
        let mapped = |code, message, pushback| {
            Some(GrpcMapped {
                code,
                message,
                pushback,
            })
        };
        #[cfg(feature = "ratelimit")]
        if error.is::<rampart_ratelimit::Overloaded>() {
            return mapped(
                self.overloaded,
                "overloaded",
                self.shed_pushback.map(Pushback::After),
            );
        }
        let dont_retry = Some(Pushback::DontRetry);
        if error.is::<rampart_core::Rejected>() {
            return mapped(
                Code::Unavailable,
                "rejected by the client-side breaker",
                dont_retry,
            );
        }
        #[cfg(feature = "balancer")]
        if error.is::<rampart_balancer::NoEndpoints>() {
            return mapped(Code::Unavailable, "no endpoint available", dont_retry);
        }
        if error.is::<rampart_core::DeadlineExceeded>() {
            return mapped(Code::DeadlineExceeded, "deadline exceeded", None);
        }
        #[cfg(feature = "ratelimit")]
        if error.is::<rampart_ratelimit::WouldMissDeadline>() {
            return mapped(Code::DeadlineExceeded, "would miss the deadline", None);
        }
        #[cfg(feature = "retry")]
        if error.is::<rampart_retry::AttemptTimedOut>() {
            return mapped(Code::DeadlineExceeded, "attempt timed out", None);
        }
        None
    }
}

/// Whether `error` is the retry layer's `GaveUp` saying "don't retry".
fn says_dont_retry(error: &(dyn Error + 'static)) -> bool {
    #[cfg(feature = "retry")]
    if let Some(stop) = error.downcast_ref::<rampart_retry::GaveUp>() {
        return stop.dont_retry();
    }
    let _ = error;
    false
}
