//! rampart over HTTP: statuses for the layers' errors, and request copies for retries.
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
//! | [`AttemptTimedOut`](rampart_retry::AttemptTimedOut) (an attempt ran out of time) | 504 | none |
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

mod request;
mod status;

pub use self::request::clone_request;
pub use self::status::{ErrorStatus, Mapped};
