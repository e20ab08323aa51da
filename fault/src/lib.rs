//! Fault injection and a simulated capacity-bound backend, for testing tower middleware.
//!
//! Resilience middleware proves itself only against failure and overload, so every rampart
//! crate tests against this one, and `rampart-lab` builds its scenarios from it:
//!
//! - [`FaultLayer`] / [`Fault`]: in front of any service, add latency ([`Distribution`]:
//!   fixed, uniform, log-normal, exponential) and fail, hang or panic a share of requests,
//!   reproducibly from a seed. A [`FaultHandle`] changes the faults while traffic flows: a
//!   backend turns bad mid-test, then recovers.
//! - [`SimBackend`]: a server with a fixed number of workers, a service-time distribution and a
//!   bounded queue. Latency grows with queueing, throughput saturates at its capacity, a full
//!   queue rejects at once, abandoned requests still burn worker time, and
//!   [`SimBackend::utilization`] reports busy worker time like a CPU counter. Its queue is FIFO,
//!   or follows a [`QueueDiscipline`] (adaptive LIFO, [`CoDel`], dropping requests whose
//!   deadline has passed), and [`SimBackend::work`] tells the worker time spent on requests
//!   that finished after their deadline.
//! - [`SimRuntime`]: a server whose stack runs on the same workers as its handler, as on tokio.
//!   Requests wait in the runtime's run queue before the stack sees them, so a handler that
//!   never yields hides that queue from a limiter's in-flight count; the runtime reports its
//!   CPU use and the scheduling delay a heartbeat task measures.
//! - [`poisson_gap`]: the time to the next request of a Poisson stream, to drive any of them
//!   with open-loop traffic (the exponential [`Distribution`] draws the same way).
//!
//! The fault layer and both servers wait on `tokio::time`, so under `tokio::time::pause()` a
//! simulated minute runs in milliseconds, deterministically for a fixed seed.
//!
//! # Example
//!
//! A backend that fails 10 % of calls after a millisecond, behind which sits a server with two
//! workers:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt};
//! use rampart_fault::{Distribution, FaultConfig, FaultLayer, InjectedError, SimBackend, SimConfig};
//!
//! let server = SimBackend::new(
//!     SimConfig::default()
//!         .with_workers(2)
//!         .with_service_time(Distribution::Fixed(Duration::from_millis(5)))
//!         .with_seed(1),
//! )?;
//! let faults = FaultConfig::default()
//!     .with_delay(Duration::from_millis(1))
//!     .with_error_rate(0.1)
//!     .with_seed(1);
//! let (layer, handle) = FaultLayer::pair(faults)?;
//! let backend = layer.layer(server.clone());
//!
//! let mut failures = 0;
//! for _ in 0..1_000 {
//!     match backend.clone().oneshot(()).await {
//!         Ok(served) => assert_eq!(served.service, Duration::from_millis(5)),
//!         Err(err) if err.is::<InjectedError>() => failures += 1,
//!         Err(err) => return Err(err),
//!     }
//! }
//! assert_eq!(failures, handle.stats().errors);
//! assert_eq!(server.stats().accepted, 1_000 - failures);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod distribution;
mod error;
mod future;
mod handle;
mod layer;
mod service;
mod sim;

pub use crate::config::FaultConfig;
pub use crate::distribution::{Distribution, poisson_gap};
pub use crate::error::{InjectedError, MissingRuntime, QueueFull};
pub use crate::future::ResponseFuture;
pub use crate::handle::{FaultHandle, FaultStats};
pub use crate::layer::FaultLayer;
pub use crate::service::Fault;
pub use crate::sim::{
    CoDel, Handler, HandlerFuture, NotOnWorker, QueueDiscipline, QueueOrder, QueueTimeout,
    RuntimeClock, RuntimeConfig, RuntimeFuture, RuntimeServer, RuntimeStats, Served, SimBackend,
    SimConfig, SimFuture, SimRuntime, SimStats, SimWork, Unanswered,
};
