//! gRPC integration: rampart's refusals as gRPC statuses, and gRPC outcomes for the breaker and
//! the balancer (feature `grpc`).
//!
//! It depends on `http` alone (and core's `http-body` wrapper), so it works for tonic and for
//! any gRPC-over-HTTP/2 stack: a server turns a layer's error into a trailers-only answer with
//! [`GrpcMapped::response`], or into metadata for its framework's status type with
//! [`GrpcMapped::metadata`] (tonic: `tonic::Status::from_header_map(&mapped.metadata())`,
//! which keeps the pushback in the status's metadata). There is no tonic dependency: that one
//! call is the whole conversion, and a dependency would tie this crate to tonic's releases.
//!
//! # Refusals as statuses
//!
//! [`GrpcStatus::of`] finds the first of rampart's errors in an error's `source()` chain:
//!
//! | error | status | `grpc-retry-pushback-ms` | why |
//! | --- | --- | --- | --- |
//! | `Overloaded` (this server's limiter shed the call) | `UNAVAILABLE` (or `RESOURCE_EXHAUSTED`, [`GrpcStatus::with_overloaded`]) | the cooldown, 1000 by default ([`GrpcStatus::with_shed_pushback`]) | the caller is the hop next to the overload: its retry, later and probably to another replica, is the one retry that helps |
//! | `Rejected` (this service's breaker toward its backend) | `UNAVAILABLE` | `-1`: don't retry | the failure is further down; a retry from the caller only multiplies calls at the failing service |
//! | `NoEndpoints` (no backend of this service is ready) | `UNAVAILABLE` | `-1`: don't retry | as `Rejected` |
//! | `GaveUp` (this service's retries toward its backend are spent), wrapping any error | the wrapped error's status, else `UNAVAILABLE` | `-1`: don't retry | the hop next to the failure has retried; only it should |
//! | `DeadlineExceeded`, `WouldMissDeadline` | `DEADLINE_EXCEEDED` | none | the caller's time is up: no retry can finish in it, and its retry layer does not try one past its deadline |
//! | `AttemptTimedOut` | `DEADLINE_EXCEEDED` | none | as for HTTP (504): the attempt's time ran out |
//!
//! `UNAVAILABLE` rather than `RESOURCE_EXHAUSTED` for a shed call: gRPC's status-code guide
//! gives `UNAVAILABLE` to a transient condition "corrected by retrying with a backoff", and to
//! a server shutting down, and names `RESOURCE_EXHAUSTED` for exhausted resources such as a
//! per-user quota; retry policies in use retry `UNAVAILABLE` first (it is the code gRPC's
//! retry examples list, and Envoy's `retry-on: unavailable`). The pushback then paces the
//! retry, so the shedding server is not hit again at once. A server that prefers the quota
//! reading (or whose clients retry `UNAVAILABLE` without reading pushback) chooses
//! `RESOURCE_EXHAUSTED`; rampart's `GrpcClassifier` counts both as the backend's failures.
//!
//! The "don't retry" answers follow the SRE book's rule for overload ("retry only at the layer
//! immediately above the layer that is rejecting"): a service whose own protection toward its
//! backend refused the call tells its caller to not retry, and gRPC clients honour it (gRFC A6:
//! a negative or malformed pushback means no retry).
//!
//! ```
//! use rampart::grpc::{Code, GrpcStatus, Pushback};
//! use rampart::ratelimit::Overloaded;
//! use rampart::Rejected;
//!
//! let shed: tower::BoxError = Overloaded::new().into();
//! let mapped = GrpcStatus::default().of(&*shed).expect("one of rampart's errors");
//! assert_eq!(mapped.code, Code::Unavailable);
//! assert_eq!(mapped.pushback, Some(Pushback::After(std::time::Duration::from_secs(1))));
//!
//! // The trailers-only answer a server sends.
//! let response = mapped.response(());
//! assert_eq!(response.headers()["grpc-status"], "14");
//! assert_eq!(response.headers()["grpc-retry-pushback-ms"], "1000");
//! assert_eq!(response.headers()["content-type"], "application/grpc");
//!
//! // This service's breaker refused the call: its backend is failing, the caller must not retry.
//! let refused: tower::BoxError = Rejected::new().into();
//! let mapped = GrpcStatus::default().of(&*refused).expect("one of rampart's errors");
//! assert_eq!(mapped.metadata()["grpc-retry-pushback-ms"], "-1");
//! ```
//!
//! # Outcomes
//!
//! [`GrpcClassifier`] and [`GrpcBody`] (from `rampart-core`) count a gRPC call's status in the
//! breaker and the balancer where it arrives: in the headers of a trailers-only answer, or in
//! the trailers at the end of the body. Wrap the transport's responses with
//! [`GrpcBody::wrap`] below those layers, and give them the classifier; `GrpcClassifier`'s
//! docs hold the design and the table of which codes count against the backend.

mod status;

pub use self::status::{Code, GrpcMapped, GrpcStatus, Pushback};
pub use rampart_core::{Deferred, GrpcBody, GrpcClassifier, grpc_code_outcome};
