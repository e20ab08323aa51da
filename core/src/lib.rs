//! The foundation every rampart layer stands on: clocks, rolling windows, outcome
//! classification and configuration errors.
//!
//! rampart's layers (the SRE breaker, the BBR limiter, budgeted retries, the P2C balancer) all
//! count events over sliding windows of time, read time through a clock that tests can
//! control, decide what counts as a failure, and validate their configuration. This crate does
//! each of those once:
//!
//! - [`Clock`]: monotonic time since an origin, as a [`Duration`](std::time::Duration).
//!   [`SystemClock`] (the default; a calibrated TSC read, ~2× cheaper than
//!   `Instant::now()` on a VM, and for bucket placement the kernel's coarse clock as its
//!   [`recent`](Clock::recent) time), [`CoarseClock`] (a memory load, millisecond-grade),
//!   [`ManualClock`] for tests, and `TokioClock` (feature `tokio`) for simulations under
//!   `tokio::time::pause()`; [`BucketClock`] reads a clock's recent time for windows whose
//!   buckets are wide enough; [`Timing`] places a layer's requests at that recent time and
//!   times a sample of them ([`Arrival`], [`Finish`], [`Timed`]). [`saturating_nanos`]
//!   converts an instant to the `u64` of nanoseconds that fits an atomic.
//! - [`RollingWindow`]: a lock-free ring of `sum`/`count` buckets with exact counts under
//!   concurrency, two read views ([`WindowView`]) and per-bucket iteration, and
//!   [`PerBucketCache`] for statistics computed once per bucket. Its documentation states the
//!   semantics. A record costs about 5 ns, below a `parking_lot::Mutex` add, and two threads
//!   recording into one window cost what one does alone (`benches/benches/window.rs`).
//! - [`Outcome`] and [`Classify`]: how a completed call counts (success, failure, or not at
//!   all), with [`DefaultClassifier`] and, behind feature `http`, `HttpClassifier`.
//!   [`Completion`] records a call's end exactly once into a layer's [`Recorder`]: its
//!   outcome, a panic of the inner service as a failure, or a cancellation.
//! - [`ConfigError`] and [`check`]: the error every `build()` returns, naming the field and
//!   the rule.
//! - [`Criticality`]: how important a request is (four classes from the SRE book, a finer
//!   level inside each), ordered, parsed from and written to its wire form;
//!   [`ArrivalRates`], the smoothed demand of each criticality band, for layers that shed the
//!   least important first.
//! - [`Deadline`]: when a request's caller stops waiting, an instant of the layers' clock;
//!   [`grpc_timeout`], its form on the wire; [`DeadlineExceeded`], the error of work
//!   abandoned at its deadline.
//! - [`RequestContext`]: what travels with a request (its criticality, its deadline, its
//!   attempt number), current for the whole handling of the request inside a scope a server-side layer installs
//!   ([`RequestContext::scope`], [`RequestContext::enter`]); [`current_criticality`] is what
//!   the layers read, and [`current_deadline`].
//! - [`pick_hint`]: which endpoints a balancer below should avoid for one call and which it
//!   picked, so that a hedge goes to another endpoint than the copies under way.
//! - [`KeyedGroup`]: one value per key (a breaker or limiter per route), created once,
//!   bounded, idle-evicted, with the layers' default bounds; [`KeyLabel`] names a member's key
//!   in metrics.
//! - [`Switch`]: an atomic on/off state each change of which one caller sees, for reporting
//!   a transition once.
//! - [`StripedArc`] and [`PerStripe`]: what a shared stack's requests write, kept per stripe of
//!   threads (per CPU on Linux, see [`Stripes::thread_stripe`]) so that requests on two cores
//!   write no common cache line: an `Arc` whose count is per stripe, for the handles every
//!   request clones, and one value per stripe, each on lines of its own. `StripedArc` is the
//!   one module of the workspace with `unsafe` code; loom models check its counting.
//! - [`gauges`]: one shared background refresher that keeps the layers' gauges current when
//!   traffic stops, so that a scrape of an idle process is never its last busy second.
//!
//! # Example
//!
//! Count requests and failures over the last three seconds, reading the clock once per event:
//!
//! ```
//! use std::time::Duration;
//! use rampart_core::{Classify, Clock, DefaultClassifier, ManualClock, Outcome, WindowConfig};
//!
//! let clock = ManualClock::new();
//! let config = WindowConfig::spanning(Duration::from_secs(3), 10);
//! let calls = config.build_with(clock.clone())?; // sum = successes, count = calls
//!
//! for result in [Ok::<u32, &str>(200), Err("reset"), Ok(200)] {
//!     let now = clock.now(); // one clock read for this event
//!     match DefaultClassifier.classify(result.as_ref()) {
//!         Outcome::Success => calls.record_at(now, 1),
//!         Outcome::Failure => calls.record_at(now, 0),
//!         Outcome::Ignore => {}
//!     }
//!     clock.advance(Duration::from_millis(500));
//! }
//! assert_eq!((calls.sum(), calls.count()), (2, 3));
//! # Ok::<(), rampart_core::ConfigError>(())
//! ```
//!
//! # Feature flags
//!
//! - `tokio`: `TokioClock`.
//! - `http`: `HttpClassifier` for `http::Response`s (HTTP status and `grpc-status`).
//! - `grpc`: `GrpcClassifier` and `GrpcBody`: a gRPC call's outcome from the headers of a
//!   trailers-only answer, or from the trailers at the end of its body ([`Deferred`]).
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod classify;
mod clock;
mod completion;
mod context;
mod criticality;
mod deadline;
mod error;
pub mod gauges;
mod group;
mod per_stripe;
pub mod pick_hint;
mod rejected;
mod striped_arc;
mod switch;
mod sync;
mod window;

#[cfg(feature = "http")]
pub use crate::classify::HttpClassifier;
pub use crate::classify::{Classify, DefaultClassifier, Deferred, Outcome};
#[cfg(feature = "grpc")]
pub use crate::classify::{GrpcBody, GrpcClassifier, grpc_code_outcome};
#[cfg(feature = "tokio")]
pub use crate::clock::TokioClock;
pub use crate::clock::{
    Arrival, BucketClock, Clock, CoarseClock, Finish, ManualClock, SystemClock, Timed, Timing,
    saturating_nanos,
};
pub use crate::completion::{Completion, Recorder};
pub use crate::context::{
    BudgetId, Entered, RequestContext, Scoped, current_criticality, current_deadline,
};
pub use crate::criticality::{ArrivalRates, Criticality, CriticalityClass, ParseCriticalityError};
pub use crate::deadline::grpc_timeout;
pub use crate::deadline::{Deadline, DeadlineExceeded};
pub use crate::error::{ConfigError, check};
pub use crate::group::{KeyLabel, KeyedGroup};
pub use crate::per_stripe::PerStripe;
pub use crate::rejected::Rejected;
pub use crate::striped_arc::StripedArc;
pub use crate::switch::Switch;
pub use crate::window::{
    BucketStats, Buckets, OncePerBucket, PerBucketCache, RollingWindow, Stripes, ValidWindowConfig,
    View, WindowConfig, WindowView,
};
