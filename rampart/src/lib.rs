//! Adaptive resilience middleware for [tower]: the algorithms production RPC stacks use to
//! survive overload and failure, as independent layers that compose in a `ServiceBuilder`.
//!
//! | module (feature) | what it does |
//! | --- | --- |
//! | [`breaker`] (`breaker`) | client-side SRE adaptive throttling: reject locally while the backend accepts too little |
//! | [`ratelimit`] (`ratelimit`) | server-side BBR-style limiting: shed when the CPU is hot and in-flight exceeds what the server has proven it carries |
//! | [`retry`] (`retry`) | retries within a budget bounded as a share of traffic, with jittered backoff |
//! | [`balancer`] (`balancer`) | power-of-two-choices balancing over EWMA latency, success and load |
//! | [`quota`] (`quota`) | fleet-wide quotas per key on Redis: one limit shared by every process, served from local leases, with a local share while Redis is away |
//! | [`fault`] (`fault`) | fault injection and a simulated server, for tests and chaos runs |
//! | [`http`] (`http`) | HTTP statuses for the layers' errors; `HttpClassifier` counts 5xx and 429 as failures; a request's criticality and deadline carried between services in headers |
//! | [`grpc`] (`grpc`) | gRPC statuses (with `grpc-retry-pushback-ms`) for the layers' errors; `GrpcClassifier` and `GrpcBody` count a call's status in the breaker and the balancer, from a trailers-only answer's headers or from the trailers after its body |
//! | [`deadline`] (`tokio`) | `EnforceDeadlineLayer`: a request's work ended at its deadline, one already past refused without calling the service |
//!
//! The default features are the four layers and `tracing` (each layer's state transitions as
//! `tracing` events, once per transition); `full` adds `fault`, `http`, `grpc` and `tokio`. Metrics go
//! through the [`metrics`](https://docs.rs/metrics) facade under `rampart_*` names: install a
//! recorder (Prometheus, for example) before building the layers.
//!
//! # A server and a client
//!
//! The server sheds what it cannot carry; the client retries within a budget, stops calling a
//! backend that keeps failing, and spreads its calls over the backends that answer best.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use rampart::ServiceBuilderExt;
//! use rampart::balancer::{P2c, P2cConfig};
//! use rampart::breaker::BreakerConfig;
//! use rampart::ratelimit::BbrConfig;
//! use rampart::retry::{RatioConfig, RetryConfig};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // Server: the handler behind the adaptive limiter.
//! let server = ServiceBuilder::new()
//!     .bbr_limit(BbrConfig::default().with_name("orders"))?
//!     .service(service_fn(|order: u32| async move { Ok::<_, Infallible>(order * 10) }));
//!
//! // Client: retry → breaker → buffer → balancer over the server's replicas (three copies of
//! // the same server here; a `Discover` stream of real endpoints in production).
//! let replicas = vec![server.clone(), server.clone(), server];
//! let client = ServiceBuilder::new()
//!     .budgeted_retry(RetryConfig::default(), RatioConfig::default().build()?)?
//!     .sre_breaker(BreakerConfig::default().with_name("orders"))?
//!     .buffer(1_024)
//!     .service(P2c::from_services(replicas, P2cConfig::default())?);
//!
//! assert_eq!(client.oneshot(4).await?, 40);
//! # Ok(())
//! # }
//! ```
//!
//! Errors stay downcastable: a breaker's [`Rejected`], a limiter's `Overloaded` (or
//! `WouldMissDeadline`), a balancer's `NoEndpoints`, a deadline's
//! [`DeadlineExceeded`](rampart_core::DeadlineExceeded), and the inner service's own errors
//! untouched. [`http::ErrorStatus`] maps them to HTTP statuses; the `server` example shows it
//! under axum with a Prometheus endpoint. `grpc::GrpcStatus` (feature `grpc`) maps them to gRPC
//! statuses.
//!
//! # Cost
//!
//! The whole client stack of the example (retry → breaker → `Buffer` → P2C over 10
//! endpoints) costs 0.8 µs per request, 0.27 µs above the `Buffer` it needs, where tower's retry
//! → `Buffer` → `Balance` + `PeakEwma` costs 1.17 µs (`benches/benches/stack.rs`, medians on our
//! 2-vCPU machine). Each layer's own cost is in its crate's documentation.
//!
//! [tower]: https://docs.rs/tower

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
#[cfg(feature = "tokio")]
pub mod deadline;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;

pub use crate::builder::{Extended, ServiceBuilderExt};
/// The shared machinery: clocks, rolling windows, outcome classification, configuration
/// errors.
pub use rampart_core as core;
#[cfg(feature = "http")]
pub use rampart_core::HttpClassifier;
pub use rampart_core::{Classify, ConfigError, DefaultClassifier, Outcome, Rejected};

/// Client-side SRE adaptive throttling.
#[cfg(feature = "breaker")]
pub use rampart_breaker as breaker;

/// Server-side BBR-style adaptive limiting.
#[cfg(feature = "ratelimit")]
pub use rampart_ratelimit as ratelimit;

/// Budgeted retries with jittered backoff.
#[cfg(feature = "retry")]
pub use rampart_retry as retry;

/// Power-of-two-choices load balancing over EWMA scores.
#[cfg(feature = "balancer")]
pub use rampart_balancer as balancer;

/// Fleet-wide quotas per key on Redis, served from local leases.
#[cfg(feature = "quota")]
pub use rampart_quota as quota;

/// Fault injection and a simulated capacity-bound server.
#[cfg(feature = "fault")]
pub use rampart_fault as fault;

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeSnippets;
