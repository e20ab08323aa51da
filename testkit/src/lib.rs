//! Test support shared by rampart's crates (never published): what their model tests,
//! exactness tests and exposition checks would otherwise each write again.
//!
//! - [`model`]: the run of a sequence model test (its size from the environment, a proptest
//!   runner under a deadlock watchdog, coverage goals) and polls that catch injected panics
//!   by their message; used by the retry layer's and the balancer's model tests.
//! - [`backend`]: a hand-driven inner service whose calls succeed, fail or panic when the
//!   test decides; [`driver`]: polls that catch its injected panics, and the property run
//!   (cases from the environment, a deadlock watchdog, a floor of 10⁵ operations); used by
//!   the breaker's and the rate limiter's model tests.
//! - [`membership`]: the model of a keyed group's membership, generic over the instances it
//!   holds.
//! - [`sequence`]: one sequence of a model played against its world on paused time, panics
//!   caught around a poll or while unwinding, and time moved on tokio's clock and a
//!   `ManualClock` together; used by the retry layer's and the balancer's model tests.
//! - [`held`]: the calls of a hand-driven inner service, each pending until the test says how
//!   it ends; used by the retry layer's backend and the balancer's endpoints in their models.
//! - [`verdict`]: an inner service whose calls all wait for one verdict (succeed, fail or
//!   panic); used by the exactness tests that poll a layer's futures by hand.
//! - [`poll`]: one poll with a waker that does nothing, and a service whose `call` panics.
//! - [`exposition`]: rampart's series in a Prometheus text exposition, summed by name and
//!   labels.
//! - [`bounds`]: a keyed group's bounds under a model test, and their strategy.
//! - [`buckets`]: which bucket of a rolling window an instant falls in, as a layer's model
//!   counts it.
//! - [`recorded`]: metrics read from a `metrics-util` debugging recorder by name and labels.
//! - [`events`]: a `tracing` subscriber that keeps every event.
//! - [`ops`]: the operations of the breaker's and the rate limiter's model tests, and their
//!   strategy.
//! - [`harness`]: the harness that applies them to a layer and to its reference models and
//!   compares the two after every step.

pub mod backend;
pub mod bounds;
pub mod buckets;
pub mod driver;
pub mod events;
pub mod exposition;
pub mod grpc;
pub mod harness;
pub mod held;
pub mod membership;
pub mod model;
pub mod ops;
pub mod poll;
pub mod recorded;
pub mod sequence;
pub mod verdict;
