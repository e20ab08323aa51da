//! rampart's errors as gRPC statuses: each layer's error has its code and its pushback, found
//! through wrapping errors; the trailers-only answer a server sends is one tonic's client reads
//! and `GrpcClassifier` counts.

#![cfg(feature = "grpc")]

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::StatusCode;
use rampart::balancer::NoEndpoints;
use rampart::core::DeadlineExceeded;
use rampart::grpc::GrpcClassifier;
use rampart::grpc::{Code, GrpcMapped, GrpcStatus, Pushback};
use rampart::ratelimit::{Overloaded, WouldMissDeadline};
use rampart::retry::{AttemptTimedOut, GaveUp, StopReason};
use rampart::{Classify, Outcome, Rejected};
use tower::BoxError;

fn map(error: impl Into<BoxError>) -> Option<GrpcMapped> {
    let error: BoxError = error.into();
    GrpcStatus::default().of(&*error)
}

/// (code, pushback) of `error` under the default mapping.
fn status(error: impl Into<BoxError>) -> (Code, Option<Pushback>) {
    let mapped = map(error).expect("one of rampart's errors");
    (mapped.code, mapped.pushback)
}

/// An application error wrapping another, as a framework's error does.
#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("handler failed")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn a_shed_call_is_unavailable_retried_after_the_cooldown() {
    assert_eq!(
        status(Overloaded::new()),
        (
            Code::Unavailable,
            Some(Pushback::After(Duration::from_secs(1)))
        )
    );
}

#[test]
fn a_refusal_by_this_services_own_protection_says_dont_retry() {
    assert_eq!(
        status(Rejected::new()),
        (Code::Unavailable, Some(Pushback::DontRetry))
    );
    assert_eq!(
        status(NoEndpoints::new()),
        (Code::Unavailable, Some(Pushback::DontRetry))
    );
}

#[test]
fn running_out_of_time_is_deadline_exceeded_without_pushback() {
    assert_eq!(
        status(DeadlineExceeded::new()),
        (Code::DeadlineExceeded, None)
    );
    assert_eq!(
        status(WouldMissDeadline::new(
            Duration::from_millis(5),
            Duration::from_millis(20)
        )),
        (Code::DeadlineExceeded, None)
    );
    assert_eq!(
        status(AttemptTimedOut::new()),
        (Code::DeadlineExceeded, None)
    );
}

#[test]
fn retries_given_up_say_dont_retry_with_the_status_of_what_they_wrap() {
    let gave_up = |source: BoxError| GaveUp::new(StopReason::MaxAttempts, 3, source);
    assert_eq!(
        status(gave_up("connection reset".into())),
        (Code::Unavailable, Some(Pushback::DontRetry))
    );
    assert_eq!(
        status(gave_up(DeadlineExceeded::new().into())),
        (Code::DeadlineExceeded, Some(Pushback::DontRetry))
    );
    // The backend shed the last attempt: this hop retried; its caller must not.
    assert_eq!(
        status(Wrapped(gave_up(Overloaded::new().into()).into())),
        (Code::Unavailable, Some(Pushback::DontRetry))
    );
}

#[test]
fn errors_are_found_through_their_sources_and_others_are_not_mapped() {
    assert_eq!(
        status(Wrapped(Rejected::new().into())),
        (Code::Unavailable, Some(Pushback::DontRetry))
    );
    assert_eq!(map("boom"), None);
    assert_eq!(map(Wrapped("boom".into())), None);
}

#[test]
fn the_shed_status_and_its_pushback_are_configurable() {
    let shed: BoxError = Overloaded::new().into();
    let quota = GrpcStatus::default()
        .with_overloaded(Code::ResourceExhausted)
        .with_shed_pushback(Some(Duration::from_micros(2_500_100)));
    let mapped = quota.of(&*shed).expect("mapped");
    assert_eq!(mapped.code, Code::ResourceExhausted);
    let metadata = mapped.metadata();
    assert_eq!(metadata["grpc-status"], "8");
    assert_eq!(
        metadata["grpc-retry-pushback-ms"], "2501",
        "rounded up to the millisecond"
    );
    let silent = GrpcStatus::default().with_shed_pushback(None);
    let metadata = silent.of(&*shed).expect("mapped").metadata();
    assert_eq!(metadata["grpc-status"], "14");
    assert!(!metadata.contains_key("grpc-retry-pushback-ms"));
}

#[test]
fn the_trailers_only_answer_carries_status_message_and_pushback_in_its_headers() {
    let response = map(Rejected::new()).expect("mapped").response(());
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "14");
    assert_eq!(
        headers["grpc-message"],
        "rejected by the client-side breaker"
    );
    assert_eq!(headers["grpc-retry-pushback-ms"], "-1");
    let timed_out = map(DeadlineExceeded::new()).expect("mapped").response(());
    assert_eq!(timed_out.headers()["grpc-status"], "4");
    assert!(!timed_out.headers().contains_key("grpc-retry-pushback-ms"));
}

#[test]
fn tonic_reads_the_status_a_server_sends() {
    let metadata = map(Overloaded::new()).expect("mapped").metadata();
    let status = tonic::Status::from_header_map(&metadata).expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "overloaded");
    assert_eq!(
        status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|v| v.to_str().ok()),
        Some(Some("1000"))
    );
}

#[test]
fn a_clients_grpc_classifier_counts_the_refusals_as_failures_and_codes_match_tonics() {
    let errors: [BoxError; 4] = [
        Overloaded::new().into(),
        Rejected::new().into(),
        NoEndpoints::new().into(),
        DeadlineExceeded::new().into(),
    ];
    for error in errors {
        let response = GrpcStatus::default()
            .of(&*error)
            .expect("mapped")
            .response(());
        assert_eq!(
            GrpcClassifier.classify(Ok::<_, &()>(&response)),
            Outcome::Failure,
            "{error}"
        );
    }
    for code in [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ] {
        assert_eq!(
            tonic::Code::from_i32(i32::from(code.number())),
            tonic_code(code),
            "{code:?}"
        );
    }
}

fn tonic_code(code: Code) -> tonic::Code {
    match code {
        Code::Ok => tonic::Code::Ok,
        Code::Cancelled => tonic::Code::Cancelled,
        Code::Unknown => tonic::Code::Unknown,
        Code::InvalidArgument => tonic::Code::InvalidArgument,
        Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        Code::NotFound => tonic::Code::NotFound,
        Code::AlreadyExists => tonic::Code::AlreadyExists,
        Code::PermissionDenied => tonic::Code::PermissionDenied,
        Code::ResourceExhausted => tonic::Code::ResourceExhausted,
        Code::FailedPrecondition => tonic::Code::FailedPrecondition,
        Code::Aborted => tonic::Code::Aborted,
        Code::OutOfRange => tonic::Code::OutOfRange,
        Code::Unimplemented => tonic::Code::Unimplemented,
        Code::Internal => tonic::Code::Internal,
        Code::Unavailable => tonic::Code::Unavailable,
        Code::DataLoss => tonic::Code::DataLoss,
        Code::Unauthenticated => tonic::Code::Unauthenticated,
    }
}
