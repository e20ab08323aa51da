//! Hedged requests: a second copy of a slow request, within the budget retries draw from.
//!
//! A request still unanswered after the hedge delay (a quantile of recent latencies) is sent
//! again, to another endpoint when a balancer below honours
//! [`pick_hint`](rampart_core::pick_hint); the first answer wins and the other copy is
//! dropped. Each hedge withdraws from a [`Budget`](crate::Budget) as a retry does, so hedges
//! cannot become the load. See the crate docs' "Hedging".
//!
//! - **Pushback**: a copy that fails with a server's pushback (the policy's
//!   [`Decision::RetryAfter`](crate::Decision::RetryAfter) or
//!   [`Decision::DontRetry`](crate::Decision::DontRetry)) ends its request's hedging, and a
//!   "retry after" holds every hedge of the layer for its wait (up to
//!   [`max_pushback`](HedgeConfig::max_pushback)), as the retry layer holds its retries: the
//!   hedges due meanwhile are refused ([`HedgeRefusal::Pushback`]).
//! - **The window** counts the latencies of the last [`window`](HedgeConfig::window), all of
//!   it: its `window_buckets` completed buckets, beside the current one. Recording takes no
//!   lock; a latency recorded while another thread empties its histogram for a new bucket is
//!   dropped rather than waited for.
//! - **Another endpoint** needs a balancer called inside the hedge's call: a
//!   `tower::buffer::Buffer` between the hedge layer and the balancer calls it from its worker
//!   task, outside the hint's scope, and the hint is lost (hedges may go to the endpoint still
//!   working on the first copy). `rampart_balancer::SharedP2c` is `Clone` and needs no
//!   `Buffer`; `P2c` is not `Clone` and does.
//! - **A tokio runtime** with time enabled must drive the requests that may be hedged: the
//!   hedge delay is a tokio timer (see [`HedgeFuture`]'s "Panics").
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use rampart_core::TokioClock;
//! use rampart_retry::{HedgeConfig, HedgeLayer, Unlimited};
//! use tower::{Service, ServiceExt};
//!
//! // Every tenth call stalls for a second; the others take 10 ms.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&calls);
//! let backend = tower::service_fn(move |n: u32| {
//!     let call = counter.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         let ms = if call % 10 == 9 { 1_000 } else { 10 };
//!         tokio::time::sleep(Duration::from_millis(ms)).await;
//!         Ok::<_, tower::BoxError>(n)
//!     }
//! });
//! let config = HedgeConfig::default().with_min_samples(5).with_quantile(0.5);
//! let layer = HedgeLayer::new_with(config, Unlimited, TokioClock::new())?;
//! let mut client = tower::Layer::layer(&layer, backend);
//!
//! // Warm the window with 5 requests, then let its first bucket end.
//! for n in 0..5 {
//!     client.ready().await?.call(n).await?;
//! }
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! assert_eq!(layer.delay(), Some(Duration::from_micros(10_239))); // the median: 10 ms
//!
//! // Calls 5 to 9: the fifth request's first copy (call 9) stalls; its hedge answers.
//! let started = tokio::time::Instant::now();
//! for n in 5..10 {
//!     client.ready().await?.call(n).await?;
//! }
//! // tokio's timer fires on the millisecond: the hedge goes at 11 ms and answers at 21 ms.
//! assert_eq!(started.elapsed(), Duration::from_millis(4 * 10 + 21));
//! assert_eq!((layer.stats().sent, layer.stats().won), (1, 1));
//! # Ok(())
//! # }
//! ```

mod config;
mod decide;
mod events;
mod filter;
mod future;
mod histogram;
mod latency;
mod layer;
mod metrics;
mod service;

pub use self::config::HedgeConfig;
pub use self::decide::{HedgeRefusal, Hedger};
pub use self::filter::{AnyRequest, MayHedge};
pub use self::future::HedgeFuture;
pub use self::layer::HedgeLayer;
pub use self::metrics::HedgeStats;
pub use self::service::Hedge;
