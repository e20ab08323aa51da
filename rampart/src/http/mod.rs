//! rampart over HTTP: statuses for the layers' errors, request copies for retries, and a
//! request's criticality and deadline carried between services in headers.
//!
//! # Statuses
//!
//! [`ErrorStatus`] gives servers that turn a layer's refusal into a response (with axum's
//! `HandleErrorLayer`, for example) the status and `Retry-After` to answer with.
//!
//! | error | status | `Retry-After` |
//! | --- | --- | --- |
//! | [`Overloaded`](rampart_ratelimit::Overloaded) (the server sheds) | 503, or 429 with [`ErrorStatus::with_overloaded`] | the configured delay (1 s) |
//! | [`Rejected`](rampart_core::Rejected) (the client's breaker throttles) | 503 | the configured delay |
//! | [`NoEndpoints`](rampart_balancer::NoEndpoints) (no backend ready) | 503 | the configured delay |
//! | [`QuotaExceeded`](rampart_quota::QuotaExceeded) (the caller's fleet-wide quota is spent) | 429 | until its next token, in whole seconds (at least 1) |
//! | [`AttemptTimedOut`](rampart_retry::AttemptTimedOut) (an attempt ran out of time) | 504 | none |
//! | [`DeadlineExceeded`](rampart_core::DeadlineExceeded) (the request's deadline passed: abandoned, or not sent) | 504 | none |
//! | [`WouldMissDeadline`](rampart_ratelimit::WouldMissDeadline) (the limiter predicts the request cannot finish in time) | 504 | none |
//!
//! Each error is also found when another error wraps it (through `source()`). Other errors
//! are the application's: [`ErrorStatus::of`] returns `None` for them.
//!
//! ```
//! use http::StatusCode;
//! use rampart::http::ErrorStatus;
//! use rampart::ratelimit::Overloaded;
//!
//! let shed: tower::BoxError = Overloaded::new().into();
//! let mapped = ErrorStatus::default().of(&*shed).unwrap();
//! assert_eq!(mapped.status, StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(mapped.retry_after, Some(std::time::Duration::from_secs(1)));
//!
//! // A public API that asks clients to slow down rather than report an outage:
//! let polite = ErrorStatus::default().with_overloaded(StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(polite.of(&*shed).unwrap().status, StatusCode::TOO_MANY_REQUESTS);
//!
//! let other: tower::BoxError = "database unreachable".into();
//! assert!(ErrorStatus::default().of(&*other).is_none());
//! ```

//!
//! # Retrying HTTP requests
//!
//! An `http::Request` is not `Clone`, so a retry layer cannot copy one by itself.
//! [`clone_request`] copies a request whose body is `Clone` (a whole body such as
//! `http_body_util::Full<Bytes>` or `String`); give it to the retry policy:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use rampart::HttpClassifier;
//! use rampart::http::clone_request;
//! use rampart::retry::Policy;
//!
//! // Retry 5xx and 429 answers as well as errors, replaying a copy of the request.
//! let policy = Policy::new()
//!     .with_classifier(HttpClassifier)
//!     .with_cloner(clone_request::<Full<Bytes>>);
//! # let _ = policy;
//! ```

//!
//! # Criticality between services
//!
//! Under overload the layers shed the least important work first, by each request's
//! [`Criticality`](rampart_core::Criticality) (see [`rampart_core::RequestContext`]). Between
//! services it travels in a header, [`CRITICALITY_HEADER`] (`rampart-criticality`, in its wire
//! form: `critical`, `sheddable-plus/42`; configurable). gRPC metadata is sent as the same
//! HTTP/2 headers, so the two layers serve tonic services and clients as they are.
//!
//! - [`ServerContextLayer`], outermost in a server, reads the header of the callers it trusts
//!   ([`Trust`]), caps it, falls back to a default for the others, and makes the result current
//!   for the whole handling of the request: the limiter inside sheds by it, and the handler
//!   reads it with [`current_criticality`](rampart_core::current_criticality). A malformed
//!   value never fails a request: it gets the default, and a counted metric.
//! - [`ClientContextLayer`], on a client, writes the outgoing request's own `Criticality`
//!   extension, or else the current request's, in the header: a handler's calls to other
//!   services carry its request's criticality on with no plumbing.
//!
//! ```
//! use http::{Request, Response};
//! use rampart::core::{Criticality, current_criticality};
//! use rampart::http::{
//!     CRITICALITY_HEADER, ClientContextLayer, ServerContextConfig, ServerContextLayer, Trust,
//! };
//! use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // A downstream service, reached through a client that carries the criticality on (the
//! // transport here is a function answering with the header it received).
//! let downstream = ServiceBuilder::new()
//!     .layer(ClientContextLayer::new())
//!     .service(service_fn(|request: Request<()>| async move {
//!         Ok::<_, BoxError>(request.headers()[CRITICALITY_HEADER].to_str()?.to_owned())
//!     }));
//!
//! // An internal service: its callers are its own fleet, trusted up to critical.
//! let server = ServiceBuilder::new()
//!     .layer(ServerContextLayer::new(
//!         ServerContextConfig::default()
//!             .with_trust(Trust::All)
//!             .with_max(Criticality::CRITICAL)
//!             .with_name("orders"),
//!     ))
//!     .service(service_fn(move |_: Request<()>| {
//!         let downstream = downstream.clone();
//!         async move {
//!             // The limiter would stand here, reading the same value.
//!             let here = current_criticality();
//!             let sent = downstream.oneshot(Request::new(())).await?;
//!             Ok::<_, BoxError>(Response::new((here, sent)))
//!         }
//!     }));
//!
//! let prefetch = Request::builder().header(CRITICALITY_HEADER, "sheddable-plus/40").body(())?;
//! let (here, sent) = server.clone().oneshot(prefetch).await?.into_body();
//! assert_eq!(here, "sheddable-plus/40".parse()?);
//! assert_eq!(sent, "sheddable-plus/40");
//!
//! // Above the cap: lowered to it, here and downstream.
//! let pushy = Request::builder().header(CRITICALITY_HEADER, "critical-plus").body(())?;
//! let (here, sent) = server.oneshot(pushy).await?.into_body();
//! assert_eq!((here, sent.as_str()), (Criticality::CRITICAL, "critical"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Edge services
//!
//! **A service that the internet reaches must not honour the criticality the internet sends**:
//! any caller could send `critical-plus` and jump ahead of everyone else's work when the
//! service sheds. The default, [`Trust::None`], honours no caller: every request gets the
//! configured default ([`ServerContextConfig::with_default`]; the layers' `critical` without
//! one), and the header is rewritten to it before the request goes further, so that what the
//! internet sent never reaches the services behind. An edge decides its requests' criticality
//! itself (from the route, the client's plan, whether a user waits) by setting the
//! `Criticality` extension of its outgoing requests. Internal services, reached only by their
//! own fleet, configure [`Trust::All`], or [`Trust::when`] a predicate on the request (a peer
//! identity a TLS layer put in its extensions, a header only the service's own edge sets) when
//! both kinds of caller reach them; [`ServerContextConfig::with_max`] caps what even a trusted
//! caller can ask for.
//!
//! # Deadlines between services
//!
//! A request's [`Deadline`](rampart_core::Deadline) is when its caller stops waiting. Between
//! services it travels as the time that remains, in gRPC's `grpc-timeout` header and form
//! ([`DEADLINE_HEADER`]; `250m`, `1500u`: at most eight digits and a unit), for HTTP as for
//! gRPC unless configured otherwise, so that rampart services, gRPC clients and servers, and
//! proxies that speak it (Envoy) understand one another.
//!
//! - [`ServerContextLayer`] reads it on arrival, caps it at the server's own maximum
//!   ([`ServerContextConfig::with_max_timeout`], 60 s by default: a caller's wish, not a
//!   right), or gives a request without one a default
//!   ([`ServerContextConfig::with_default_timeout`], none by default), turns it into an
//!   instant of its clock and makes it current with the criticality: the limiter inside
//!   refuses a request that cannot finish in time, and the handler reads it with
//!   [`current_deadline`](rampart_core::current_deadline). No trust applies: a caller may
//!   always ask for less. A malformed value never fails a request: it is counted, and the
//!   request gets the default.
//! - [`ClientContextLayer`] writes on each outgoing request what remains of the request's own
//!   `Deadline` extension, or else of the current one, less a margin
//!   ([`ClientContextLayer::with_margin`], 5 ms by default) for the trip; with nothing left, it
//!   does not send the request and fails it with
//!   [`DeadlineExceeded`](rampart_core::DeadlineExceeded). A chain of services shares one
//!   budget, with no plumbing in the handlers.
//! - [`EnforceDeadlineLayer`](crate::deadline::EnforceDeadlineLayer) (feature `tokio`) ends
//!   the work of a request whose deadline passes, and [`ErrorStatus`] answers
//!   `DeadlineExceeded` and the limiter's `WouldMissDeadline` with 504.
//!
//! Every layer that reads a deadline must read a clock of the same origin as the layer that
//! made it: the [`SystemClock`](rampart_core::SystemClock) by default; in tests, clones of one
//! `ManualClock` or `TokioClock`, given with `new_with`.
//!
//! ```
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use rampart::core::{Clock, ManualClock, current_deadline};
//! use rampart::http::{ClientContextLayer, DEADLINE_HEADER, ServerContextConfig, ServerContextLayer};
//! use tower::{BoxError, Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let clock = ManualClock::new();
//! // A downstream service, reached through a client that carries the deadline on (the
//! // transport here is a function answering with the header it received).
//! let downstream = ClientContextLayer::new_with(clock.clone()).layer(service_fn(
//!     |request: Request<()>| async move {
//!         Ok::<_, BoxError>(request.headers()[DEADLINE_HEADER].to_str()?.to_owned())
//!     },
//! ));
//!
//! let config = ServerContextConfig::default()
//!     .with_max_timeout(Duration::from_secs(2))
//!     .with_name("orders");
//! let handler_clock = clock.clone();
//! let server = config.build_with(clock.clone())?.layer(service_fn(move |_: Request<()>| {
//!     let (downstream, clock) = (downstream.clone(), handler_clock.clone());
//!     async move {
//!         let left = current_deadline().map(|deadline| deadline.remaining(clock.now()));
//!         clock.advance(Duration::from_millis(40)); // the handler's own work
//!         let sent = downstream.oneshot(Request::new(())).await?;
//!         Ok::<_, BoxError>(Response::new((left, sent)))
//!     }
//! }));
//!
//! let request = Request::builder().header(DEADLINE_HEADER, "250m").body(())?;
//! let (left, sent) = server.clone().oneshot(request).await?.into_body();
//! assert_eq!(left, Some(Duration::from_millis(250)));
//! assert_eq!(sent, "205000u"); // 250 - 40 - the 5 ms margin
//!
//! // A caller asking for an hour gets the server's maximum.
//! let request = Request::builder().header(DEADLINE_HEADER, "1H").body(())?;
//! let (left, _) = server.oneshot(request).await?.into_body();
//! assert_eq!(left, Some(Duration::from_secs(2)));
//! # Ok(())
//! # }
//! ```

mod context;
mod request;
mod status;

pub use self::context::client::{ClientContext, ClientContextLayer};
pub use self::context::config::ServerContextConfig;
pub use self::context::future::{ClientResponseFuture, ResponseFuture};
pub use self::context::server::{ServerContext, ServerContextLayer};
pub use self::context::trust::Trust;
pub use self::context::{ATTEMPTS_HEADER, CRITICALITY_HEADER, DEADLINE_HEADER};
pub use self::request::clone_request;
pub use self::status::{ErrorStatus, Mapped};
