//! Power-of-two-choices load balancing for tower, over EWMA latency, success and in-flight
//! scores.
//!
//! For each request, [`P2c`] draws two ready endpoints at random and sends the request to the
//! one with the lower cost. Drawing two instead of scanning all is what makes P2C scale and
//! keeps it from herding: every client would otherwise pile onto the same "best" endpoint. The
//! cost comes from each endpoint's statistics, kept in floating point: an EWMA of its latency
//! (a slower sample replaces it at once), an EWMA of its successes, its in-flight requests,
//! and, while its requests are stalled, their age. The default [`Score`], [`PeakSuccess`], is
//!
//! ```text
//! (latency_ms + 5) × (in_flight + 1) / (max(success, 0.001) × weight)
//! ```
//!
//! The pick itself (the pair drawn, the cost comparison, and the force pick of an endpoint
//! that has lost every draw for too long) is [`TwoChoices`]: it takes the time and the
//! candidates' costs, and holds no tower or tokio types.
//!
//! # Examples
//!
//! A fixed list of replicas:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use rampart_balancer::{P2c, P2cConfig};
//! use tower::{Service, ServiceExt, service_fn};
//!
//! let replicas = (0..3).map(|id| service_fn(move |name: String| async move {
//!     Ok::<_, tower::BoxError>(format!("replica {id} greets {name}"))
//! }));
//! let mut balancer = P2c::from_services(replicas, P2cConfig::default())?;
//! let reply = balancer.ready().await?.call("ada".into()).await?;
//! assert!(reply.ends_with("greets ada"));
//! # Ok(())
//! # }
//! ```
//!
//! Endpoints from a discovery stream (any `Stream` of `tower::discover::Change`s): a channel
//! fed by your service registry here.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use rampart_balancer::{P2c, P2cConfig};
//! use tower::discover::Change;
//! use tower::{Service, ServiceExt, service_fn};
//!
//! let replica = |address: &'static str| service_fn(move |()| async move { Ok::<_, tower::BoxError>(address) });
//! let (registry, updates) = tokio::sync::mpsc::unbounded_channel();
//! let discover = tokio_stream::wrappers::UnboundedReceiverStream::new(updates);
//! let mut balancer = P2c::new(discover, P2cConfig::default())?;
//!
//! registry.send(Ok::<_, std::convert::Infallible>(Change::Insert("10.0.0.1", replica("10.0.0.1"))))?;
//! assert_eq!(balancer.ready().await?.call(()).await?, "10.0.0.1");
//! registry.send(Ok(Change::Insert("10.0.0.2", replica("10.0.0.2"))))?;
//! registry.send(Ok(Change::Remove("10.0.0.1")))?;
//! assert_eq!(balancer.ready().await?.call(()).await?, "10.0.0.2");
//! # Ok(())
//! # }
//! ```
//!
//! # Shared by many tasks: `SharedP2c`
//!
//! `P2c` takes `&mut self`, as tower's `Balance` does: a client that the handlers of a server
//! share puts it behind a `tower::buffer::Buffer`, whose one worker task then carries every
//! request of the process (a channel hop and a wake-up per call, one core's worth of
//! balancing). [`SharedP2c`] is the same balancer as a `Clone + Send + Sync` handle: each
//! clone picks and sends on the task that calls it, over one shared set of endpoints read
//! without a lock, each endpoint's statistics kept per thread so that the requests of two
//! cores write no common cache line (see its "Sharing"); discovery updates never hold up a
//! pick. Its endpoint
//! services must be `Clone` (each request goes to a clone polled ready by its own task), as
//! tonic's `Channel`, hyper's client or a `Buffer` are. Use `P2c` where one task owns the
//! balancer, `SharedP2c` where many send through it.
//!
//! Cost, medians of two runs on our 2-vCPU benchmark machine: one request through a handle
//! costs 82–93 ns at 2, 10 or 100 endpoints, 0.20× to 0.22× tower's `Balance` with
//! `PeakEwma` and 19 to 29 ns above `P2c` (`benches/benches/balancer.rs`,
//! `rampart/shared_p2c_peak_success`); retry → breaker → `SharedP2c` with no `Buffer`, in a
//! task's loop, costs 0.29× tower's retry → `Buffer` → `Balance` (0.289× and 0.288×), and
//! 0.74× the `Buffer` alone (`benches/benches/stack.rs`, group `stack`). Two threads sharing
//! that stack send 1.96× and 1.82× the requests of one (the handle alone 1.78× and 1.77×),
//! where a `Buffer` sends 0.90× and 0.92× and tower's stack 0.86× and 0.87× (group
//! `stack_tasks`). Both balancers read the kernel's coarse clock for most requests and the
//! precise one for a sample (see [`P2c`]'s "Clock"); timing every request, the handle cost
//! 112–118 ns (one run).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use rampart_balancer::{P2cConfig, SharedP2c};
//! use tower::{ServiceExt, service_fn};
//!
//! let replica = |address: &'static str| service_fn(move |()| async move { Ok::<_, std::io::Error>(address) });
//! let balancer = SharedP2c::empty(P2cConfig::default())?;
//! balancer.insert("10.0.0.1", replica("10.0.0.1"));
//! let handler = balancer.clone(); // what each request handler holds
//! assert_eq!(handler.oneshot(()).await?, "10.0.0.1");
//! balancer.insert("10.0.0.2", replica("10.0.0.2"));
//! balancer.remove(&"10.0.0.1");
//! assert_eq!(balancer.clone().oneshot(()).await?, "10.0.0.2");
//! # Ok(())
//! # }
//! ```
//!
//! # What the score is for
//!
//! Measured in `tests/fleet.rs` (paused time; 5 endpoints, 1 000 requests per second, 10 ms
//! log-normal latency with p99 20 ms; one endpoint misbehaving from 10 s on; shares from 12 s):
//!
//! | one endpoint… | `PeakSuccess` (default) | `Kratos` | tower `Balance` + `PeakEwma` |
//! | --- | --- | --- | --- |
//! | 10× slower: its share, overall p99 | 0.38 %, 21 ms (healthy: 21 ms) | 1.52 %, 89 ms | 0.49 %, 22 ms |
//! | failing fast (1 ms errors): its share | 0.033 % | | **39.6 %** (a black hole) |
//! | failing every call: its share; after it recovers | 0.03 %; 11 % of traffic 2 s later, 18 % after 3 s | | |
//!
//! A new endpoint starts at the median latency of its warm peers and takes its fair share from
//! its first second (199 requests per second of 200 in the test).
//!
//! # Differences from Kratos's p2c and tower's `Balance`
//!
//! - Statistics survive discovery updates (Kratos rebuilds every node on every change); a
//!   new endpoint is neither starved (Kratos's new nodes weigh 100 until a force pick) nor
//!   flooded (tower's default RTT).
//! - Floating-point EWMAs: 0.1 % errors at 1 000 requests per second keep success near 0.999
//!   (Kratos's integer ratchet decays it to 0.399 in 1 000 s).
//! - A cancelled request counts as neither success nor failure (Kratos issue #3834).
//! - Failures count ([`PeakEwma`], tower's cost, is blind to them).
//! - No ready cache moving endpoints between sets on every call: one request costs 63–64 ns
//!   at 2, 10 or 100 endpoints, against 408–425 ns for tower's `Balance` with `PeakEwma` and
//!   165–182 ns with `PendingRequests` (`benches/benches/balancer.rs`, medians of two runs on
//!   our 2-vCPU machine).
//! - Latency from a sample of requests where the clock has a cheap recent time (tower's
//!   `PeakEwma` reads the precise clock twice per request): the first request of each tick
//!   of the kernel's coarse clock and one in 16 of the rest; every completion counts towards
//!   success.
//! - When no endpoint is ready it waits at most a second, then fails the request with
//!   [`NoEndpoints`] ([`WhenEmpty`]); tower waits for ever.
//!
//! # Errors
//!
//! [`NoEndpoints`] when nothing was ready; a discovery error fails `poll_ready`; errors of the
//! endpoints pass through untouched (boxed).
//!
//! # Metrics
//!
//! Labelled `name`: `rampart_balancer_endpoints`; per endpoint (label `endpoint`, the key's
//! `Debug` form): `rampart_balancer_picks_total` and `rampart_balancer_endpoint_score` (the
//! cost, refreshed at most every 100 ms). Install your recorder before the balancer discovers
//! its endpoints. A [`SharedP2c`] reports the same, once for all its handles.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod endpoint;
mod error;
mod events;
mod future;
mod metrics;
mod p2c;
mod score;
mod service;
mod set;
mod shared;
mod state;

pub use crate::config::{P2cConfig, WhenEmpty};
pub use crate::error::NoEndpoints;
pub use crate::future::ResponseFuture;
pub use crate::p2c::{Candidate, Pair, TwoChoices};
pub use crate::score::{Kratos, Load, PeakEwma, PeakSuccess, Score};
pub use crate::service::{EndpointSnapshot, P2c};
pub use crate::shared::SharedP2c;
