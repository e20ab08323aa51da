//! Client-side adaptive throttling for tower: the breaker from Google's SRE book.
//!
//! When a backend stops accepting requests, retrying clients and eager callers keep sending
//! them, and the backend spends what capacity it has left turning them away. This crate's
//! [`Breaker`] rejects calls **locally**, before they leave the client, with probability
//!
//! ```text
//! p = max(0, (requests − k · accepts) / (requests + 1))
//! ```
//!
//! over a rolling window (3 s by default): `requests` is what the client attempted, `accepts`
//! what the backend served. A healthy backend never sees a rejection; a failing one receives
//! about `k` calls per success, enough to notice its recovery and few enough to let it recover.
//! There is no open/closed state machine and no timer to tune: throttling follows the backend's
//! acceptance rate continuously (source: Google, *Site Reliability Engineering*, chapter
//! "Handling Overload"; Kratos's `sre` breaker is the best-known implementation).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use rampart_breaker::{BreakerConfig, BreakerLayer, Rejected};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let client = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(BreakerConfig::default().with_name("inventory"))?)
//!     .service_fn(|sku: u32| async move {
//!         if sku == 0 { Err("backend unavailable".into()) } else { Ok::<_, tower::BoxError>(sku * 2) }
//!     });
//!
//! assert_eq!(client.clone().oneshot(21).await?, 42);
//!
//! // The backend keeps failing: after `min_requests` calls the breaker starts rejecting
//! // locally, without calling it.
//! let mut rejected = 0;
//! for _ in 0..200 {
//!     if let Err(err) = client.clone().oneshot(0).await {
//!         rejected += u32::from(err.is::<Rejected>());
//!     }
//! }
//! assert!(rejected > 100);
//! # Ok(())
//! # }
//! ```
//!
//! # Rejected calls and recovery: [`Rejections`]
//!
//! How much the calls the breaker rejected itself count as requests decides how hard it
//! protects and how fast it recovers. Measured by this crate's simulations (`tests/simulation.rs`:
//! paused time, a 3 s window, `k = 2`; the outage at 1 000 requests per second over ten seeds,
//! the overload against a backend that serves 200 requests per second and rejects the rest at
//! once):
//!
//! | `rejections` | backend calls per request during a total outage | full traffic after recovery | backend load offered 3× / 10× its capacity |
//! | --- | --- | --- | --- |
//! | `Sre` (the book, Kratos) | 0.006–0.05 % | 10.5–18.5 s | 1.84× / 1.68× |
//! | `Ignore` (go-zero) | 1.6–1.8 % | 0.1–0.3 s | 2.42× / 4.40× |
//! | `Adaptive` (default) | 0.34–0.38 % | 0.3 s | 1.87× / 1.74× |
//!
//! `Adaptive` counts rejections fully while the calls that get through fail, and not at all
//! once they succeed: it judges by the two newest buckets (the current one and the last
//! completed one), and while throttling it lets one call per bucket through as a probe, so a
//! recovered backend is noticed within a bucket rather than after a random wait for the next
//! call to slip through.
//!
//! # Criticality
//!
//! A call's [`Criticality`](rampart_core::Criticality) is the current
//! [`RequestContext`](rampart_core::RequestContext)'s when the layer is called
//! (`rampart_core::current_criticality()`: critical, the default, outside any scope), or the one
//! given to [`SreBreaker::allow_for_at`]. The breaker's rejections fall on the least critical
//! calls first, with no per-class configuration: it counts its own calls per criticality band
//! ([`ArrivalRates`](rampart_core::ArrivalRates), folded once per bucket) and allocates the
//! drop probability `p` from the lowest band upward. A call of band `b`, whose share of the
//! calls is `s_b` and the bands below it `S_b`, is rejected with probability
//!
//! ```text
//! p_b = clamp((p − S_b) / s_b, 0, 1)
//! ```
//!
//! so the expected share of rejections is still `p`. Calls all of one band, or made before the
//! breaker's first bucket ends, are rejected with probability `p`, exactly as without
//! criticalities. A rejection carries the criticality the call said
//! ([`Rejected::criticality`], and its message: "rejected by the adaptive breaker
//! (sheddable)"); a call that said none gets [`Rejected::new()`] as before.
//!
//! Measured in `tests/criticality.rs`
//! (`critical_calls_are_almost_never_refused_while_the_backend_sheds_half_of_what_it_gets`: a
//! manual clock, 1 000 calls per second for 60 s, 60 % sheddable and 40 % critical, a backend
//! that sheds every sheddable call and serves every critical one; seeds 1–3): the backend sheds
//! 50 % of what reaches it, and the breaker refuses 0.15–0.29 % of the critical calls and 33 %
//! of the sheddable ones. The same traffic without criticalities
//! (`without_classes_the_same_traffic_loses_critical_calls_as_often_as_any`) loses 91 % of its
//! critical calls: rejections falling on them too cut the backend's accepts, and the breaker
//! judges it failing.
//!
//! # Differences from Kratos's `sre` breaker
//!
//! - The decision never adds up the window: it reads the current bucket and a total of the
//!   completed buckets cached once per bucket (Kratos re-sums ten buckets on every call).
//! - A call's outcome is classified by a [`Classify`](rampart_core::Classify) implementation:
//!   `Err` is a failure by default; `HttpClassifier` (feature `http`) also counts 5xx, 429 and
//!   failing gRPC statuses. Kratos treats a 429 from a shedding server as a success.
//! - A call the client cancelled counts as nothing (`on_cancel`), not as a failure.
//! - `enforce = false` is a dry run: decisions are computed and reported, never applied.
//! - [`BreakerGroup`] creates each key's breaker exactly once, and bounds the group.
//!
//! # Configuration
//!
//! [`BreakerConfig`]: `k` 2.0, `min_requests` 20, a 3 s window in 10 buckets,
//! `rejections` [`Rejections::Adaptive`], `enforce` true, `on_cancel` ignored, an optional
//! seed, a metrics `name`. `build()` validates every field and returns a
//! [`ConfigError`](rampart_core::ConfigError) naming the one at fault.
//!
//! # Errors
//!
//! A rejected call resolves to [`Rejected`], boxed in `tower::BoxError`; errors of the inner
//! service pass through untouched.
//!
//! # Metrics
//!
//! Registered once when a breaker is built (install your recorder first), labelled `name`
//! (and `key` in a group):
//!
//! - `rampart_breaker_requests_total{outcome="success"|"failure"|"rejected", criticality}`:
//!   calls by outcome and by the criticality class of the call (`sheddable`,
//!   `sheddable-plus`, `critical`, `critical-plus`: `CriticalityClass::as_str`; `critical` for
//!   a call that said none), every series registered up front; in a dry run, `rejected`
//!   counts the calls that would have been rejected;
//! - `rampart_breaker_drop_probability`: the probability of the latest decision, and, while
//!   no call arrives, of the window at the current instant: the layer and groups register
//!   their breakers with the shared background refresher (`rampart_core::gauges`), which
//!   republishes it once a second, so an idle process's scrape shows its throttling ending
//!   rather than its last busy second. Requests pay nothing for it;
//!   [`SreBreaker::publish_gauges`] publishes at once.
//!
//! # Cost
//!
//! On our 2-vCPU benchmark machine (`benches/benches/breaker.rs`, medians of two runs): a
//! decision and a record take 15.8 and 15.3 ns given the instant. The layer adds 32.1 and
//! 33.3 ns to a call on its default clock, against tower's `ConcurrencyLimit`'s 35.3 and
//! 36.9 ns in the same runs (0.91× and 0.90×). The layer reads the clock twice per request,
//! when it admits the call and when the outcome arrives: an outcome counts in the bucket of
//! its arrival, even after a quiet spell longer than the window (recording at the admission
//! instant lost such outcomes). Each event is one atomic write to the window (a success and a
//! rejection add to the bucket's sum, a failure to its count).
//!
//! The breaker only asks which bucket an instant falls in, so it reads its clock's recent
//! time (`rampart_core::BucketClock`): on [`SystemClock`](rampart_core::SystemClock) the
//! kernel's coarse clock (3.2–3.5 ns alone). On this machine's processor the time-stamp
//! counter does not overlap the work around it: the same layer read precisely
//! (`breaker_layer/precise_clock`, the default before) took 62.9 and 63.2 ns. On
//! [`CoarseClock`](rampart_core::CoarseClock) (a load a thread refreshes every millisecond)
//! it took 27.8 and 28.8 ns, and on a clock that does not move 28.5 and 28.1 ns: what is
//! left above those is the coarse clock's two vDSO calls. The `failsafe` crate's breaker
//! added 100 ns and `tower-resilience`'s 257 ns on the machine before.
//!
//! A call of the default criticality pays no count of its band while no other band arrives
//! (`ArrivalRates`); one in a context that carries another criticality is counted (one relaxed
//! increment): the `/sheddable` twins took 19.4 and 19.2 ns given the instant (1.23× and
//! 1.25× the rows without, which no longer count) and the layer 37.0 and 37.4 ns (1.15× and
//! 1.12×), in the same runs.
//!
//! # Feature flags
//!
//! - `http`: re-exports `HttpClassifier`, for `http::Response`s.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod draw;
mod error;
mod events;
mod future;
mod group;
mod group_layer;
mod layer;
mod metrics;
mod service;
mod sre;

pub use crate::config::{BreakerConfig, Rejections};
pub use crate::error::Rejected;
pub use crate::future::ResponseFuture;
pub use crate::group::BreakerGroup;
pub use crate::group_layer::{BreakerGroupLayer, KeyedBreaker};
pub use crate::layer::BreakerLayer;
pub use crate::service::Breaker;
pub use crate::sre::{BreakerSnapshot, BreakerState, SreBreaker};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use rampart_core::HttpClassifier;
