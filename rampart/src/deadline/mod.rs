//! Ending a request's work at its deadline: [`EnforceDeadlineLayer`].
//!
//! A request's [`Deadline`](rampart_core::Deadline) (made current by a
//! [`ServerContextLayer`](crate::http::ServerContextLayer) from the time its caller still
//! waits, or by a [`ClientContextLayer`](crate::http::ClientContextLayer) for an outgoing
//! call, or by [`RequestContext::scope`](rampart_core::RequestContext::scope)) says when its
//! caller stops waiting. Past it, the answer is useless and the work that makes it is waste:
//! the layer ends the request's future then with
//! [`DeadlineExceeded`](rampart_core::DeadlineExceeded), dropping the inner future (which
//! cancels whatever it was waiting on: a downstream call, a lock, a database query), and
//! refuses at once, without calling the inner service, a request whose deadline has already
//! passed. A request without a deadline passes untouched, as if the layer were not there.
//!
//! It reads the deadline once, at `call`, with [`current_deadline`](rampart_core::current_deadline),
//! so it works for any request type; place it inside the layer that makes the deadline
//! current. On a server: `ServerContextLayer` → `EnforceDeadlineLayer` → the limiter → the
//! handler (the limiter refuses early what it predicts cannot finish in time; this layer ends
//! what was admitted but ran out of time anyway).
//!
//! The timer is tokio's ([`tokio::time::sleep`]): the layer's futures must be polled inside a
//! tokio runtime with its time driver enabled (feature `tokio`). It sleeps for the time that
//! remains of the deadline on the layer's clock, which must have the origin of the clock that
//! made the deadline: [`SystemClock`](rampart_core::SystemClock) by default; under tokio's
//! paused time, clones of one [`TokioClock`](rampart_core::TokioClock) on every layer.
//!
//! ```
//! use std::time::Duration;
//!
//! use rampart::core::{Clock, Deadline, DeadlineExceeded, RequestContext, TokioClock};
//! use rampart::deadline::EnforceDeadlineLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let clock = TokioClock::new();
//! let slow = ServiceBuilder::new()
//!     .layer(EnforceDeadlineLayer::new_with(clock))
//!     .service(service_fn(|wait: u64| async move {
//!         tokio::time::sleep(Duration::from_millis(wait)).await;
//!         Ok::<_, tower::BoxError>(wait)
//!     }));
//!
//! // The context of a request that must be answered within 100 ms.
//! let deadline = Deadline::after(clock.now(), Duration::from_millis(100));
//! let request = RequestContext::new().with_deadline(deadline);
//! // Done in time: the answer.
//! assert_eq!(request.scope(slow.clone().oneshot(40)).await?, 40);
//! // Not done by the deadline: abandoned there.
//! let late = request.scope(slow.clone().oneshot(500)).await.unwrap_err();
//! assert!(late.is::<DeadlineExceeded>());
//! assert_eq!(clock.now(), deadline.instant());
//! // Past it: refused at once.
//! let refused = request.scope(slow.clone().oneshot(1)).await.unwrap_err();
//! assert!(refused.is::<DeadlineExceeded>());
//! assert_eq!(clock.now(), deadline.instant());
//! // No deadline: no limit.
//! assert_eq!(slow.oneshot(500).await?, 500);
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::EnforceDeadlineLayer;
pub use self::service::EnforceDeadline;
