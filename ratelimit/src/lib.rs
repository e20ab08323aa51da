//! BBR-style adaptive concurrency limiting for tower servers.
//!
//! A server that accepts more work than it can finish builds queues: every request waits
//! longer, clients time out, retry, and the server ends up doing nothing but work nobody
//! waits for. A static concurrency limit prevents that only if you know the right number,
//! which changes with every deploy, every dependency and every machine. This crate's
//! [`BbrLimit`] learns it: it admits everything while the service is cool, and once the
//! service runs hot it sheds the requests beyond what the service has *proven* it can carry,
//!
//! ```text
//! max_inflight = max_pass × min_rt        (Little's law)
//! ```
//!
//! the most completions of one bucket of the last 10 s times the lowest bucket-mean latency:
//! the concurrency at which the service ran at full throughput without queueing. This is
//! Kratos's BBR limiter (after TCP BBR), with its defects fixed (see below).
//!
//! # Example: a server stack
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use http::{Request, Response, StatusCode, header::RETRY_AFTER};
//! use rampart_ratelimit::{BbrConfig, Overloaded, BbrLimitLayer};
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//!
//! // Shed (503 with Retry-After) while the process is hot and past its proven capacity.
//! // `BbrLimitLayer::new` reads this process's cgroup CPU usage.
//! let server = ServiceBuilder::new()
//!     .map_result(|result: Result<Response<String>, BoxError>| match result {
//!         Err(err) if err.is::<Overloaded>() => Ok(Response::builder()
//!             .status(StatusCode::SERVICE_UNAVAILABLE)
//!             .header(RETRY_AFTER, "1")
//!             .body(String::new())?),
//!         other => other,
//!     })
//!     .layer(BbrLimitLayer::new(BbrConfig::default().with_name("api"))?)
//!     .service_fn(|request: Request<String>| async move {
//!         Ok::<_, BoxError>(Response::new(format!("hello {}", request.uri().path())))
//!     });
//!
//! let response = server.oneshot(Request::get("/world").body(String::new())?).await?;
//! assert_eq!(response.body(), "hello /world");
//! # Ok(())
//! # }
//! ```
//!
//! # The decision
//!
//! A request is shed when more than one request is in flight and more than `max_inflight`,
//! and either the [`Gate`] says the service is overloaded or the last drop was less than
//! `cooldown` (1 s) ago. Gates:
//!
//! - [`Gate::Cpu`] (default): the smoothed CPU usage is at least `cpu_threshold` (80 %);
//! - [`Gate::Latency`]: the last completed bucket's mean response time exceeds `inflation`
//!   × the window's minimum: for I/O-bound services whose CPU never gets hot;
//! - [`Gate::Either`]: both, whichever fires.
//!
//! Whatever the gate, a request is also shed while the runtime runs ready work later than
//! `max_delay` (10 ms), whatever is in flight: requests are then queueing in the runtime, in
//! front of the limiter, where its in-flight count cannot see them (see [`delay`]). A limiter built by
//! [`BbrConfig::build`] or [`BbrLimitLayer::new`] inside a tokio runtime measures that delay
//! with a heartbeat task (`DelayProbe`, feature `tokio`).
//!
//! Only real completions count as throughput: a request whose response future is dropped
//! (its client went away) or whose handler panicked leaves the in-flight count and records
//! nothing. And while the limiter is shedding, the minimum response time may fall but not
//! rise, so a limit is never learned from the queue it created.
//!
//! Measured in `tests/overload.rs` (paused time; a simulated server with 8 workers and a
//! 10 ms log-normal service time, p99 20 ms unloaded; clients with a 200 ms deadline; offered
//! load ramping from 0.5× to 3× capacity, held 30 s; seeds 1–3):
//!
//! | in the 3× phase | goodput (of capacity) | p99 of admitted requests |
//! | --- | --- | --- |
//! | unprotected | 0 % | 200 ms (all time out) |
//! | `Cpu` gate, CPU smoothed 0.8 / 250 ms (ours) | 99.7–100 % | 24.3–25.8 ms |
//! | `Cpu` gate, Kratos's smoothing 0.95 / 500 ms | 20 % | 200 ms |
//! | I/O-bound (CPU at 30 %), `Cpu` gate | 0 % (never sheds) | 200 ms |
//! | I/O-bound, `Latency` (inflation 2) or `Either` | 99.7–100 % | 24.3–25.8 ms |
//!
//! (Kratos's limit, `headroom` 0: 93–98 % and 20.6–21.8 ms. The default's one `√L` of queue
//! buys the last points of goodput for about 4 ms of p99.)
//!
//! # Criticality: the least important work is shed first
//!
//! Each request's [`Criticality`](rampart_core::Criticality) is the current
//! [`RequestContext`](rampart_core::RequestContext)'s, set by a server-side layer from the
//! request (the facade's `rampart::http::ServerContextLayer`) or by your code with
//! `RequestContext::scope`; a request that says none is `critical`, the default. The limiter
//! counts the arrivals of each criticality band (a class's quarter of levels), smoothed per
//! bucket, as a share of the capacity (the most completions of a bucket in the window). With
//! no per-class numbers to configure:
//!
//! - from the top band down, the band at which the shares add up to the whole capacity is the
//!   threshold: while the limiter sheds it is capped at the limit, and fills what the bands
//!   above leave (a proportional share); the bands below it are capped lower, and shed;
//! - each band above the threshold may exceed the limit by a reservation sized to the bursts
//!   of the traffic at and above it (trunk reservation: 10 places for three quarters of the
//!   capacity, 4 for a tenth), so a burst of important requests is admitted while the bands
//!   below are held at the limit, and capacity the important bands leave unused flows down;
//! - while the CPU is warm (¾ of `cpu_threshold`) and before the gate opens, a band below
//!   another's demand may not hold more than twice the limit: the queue a step in load builds
//!   while the smoothed CPU catches up does not form in front of the important requests.
//!
//! With every request in one band (no criticality anywhere) the only cap is the limit: the
//! limiter decides exactly as without. The error of a shed request says its class, decisions
//! are counted per class, and a `tracing`
//! event reports the threshold class moving while the limiter sheds. `tests/criticality.rs`
//! steps a server from 0.8× to 3× its capacity with a sixth of the requests critical: 99.2 %
//! and 99.96 % of them are served (two seeds), goodput stays at 100 % of capacity; blind to
//! criticality, the same limiter serves a third of them. The lab's `priority-overload`
//! scenario gives the figures for four classes.
//!
//! # Deadlines: no work on a request that cannot finish in time
//!
//! A request whose current [`RequestContext`](rampart_core::RequestContext) carries a
//! [`Deadline`](rampart_core::Deadline) (the facade's `ServerContextLayer` reads it from
//! `grpc-timeout`) is checked before admission, with the instant the limiter reads anyway:
//! one whose deadline has passed is refused with
//! [`DeadlineExceeded`](rampart_core::DeadlineExceeded), one with less time left than its
//! predicted completion with [`WouldMissDeadline`] (504 over HTTP), neither reaching the
//! window. The prediction is what the limiter already measures: the best bucket's throughput
//! and minimum response time give the concurrency the service sustains; a request joining
//! more than that waits for the excess to drain at that throughput
//! ([`BbrLimiter::predicted_completion_at`]). Below its proven concurrency a service answers
//! in its minimum response time, so under ordinary load only a request with less time left
//! than a typical answer is refused. `tests/deadline.rs` checks each case.
//!
//! # The CPU signal
//!
//! [`SystemCpu`] (the default) reads the cgroup that actually limits the process, found from
//! the mount table and `/proc/self/cgroup`: v2 where the unified hierarchy holds the cpu
//! controller, else v1 (`cpuacct.usage`), measured against the tightest of the quota
//! (`cpu.max` or `cpu.cfs_quota_us`, of the cgroup or any ancestor), its CPU set and the
//! host's CPUs; else the host's `/proc/stat`. A hybrid host's unified mount without
//! controllers does not hide a v1 quota. The source says what it chose (`Display`, an info
//! event when it starts with feature `tracing`, and a gauge); the [`cpu`] module's `LinuxCpu`
//! gives the detection order. One shared thread samples it every 250 ms into a
//! floating-point moving average (decay 0.8). The [`cpu`] module explains the choice.
//! Built inside a tokio runtime, the limiter reads the higher of that and the smoothed busy
//! share of the runtime's worker threads (`RuntimeBusy`, feature `tokio`): a runtime of fewer
//! workers than the allowance has CPUs (one worker on a host of two) saturates while the CPU
//! reads half.
//! Simulations use `spawn_sampler` (feature `tokio`) to smooth any [`CpuSource`] on tokio's
//! clock, and tests [`ManualCpu`].
//!
//! # Differences from Kratos's BBR
//!
//! - Response times in **microseconds** (Kratos's milliseconds make a fast service's minimum
//!   latency 1 ms or 0, and its limit meaningless).
//! - A **floating-point** CPU average that converges to its input (Kratos's integer average
//!   never reaches 800 ‰ under a steady 80 % load) and reacts in 2 s, not 16.5 s.
//! - The cooldown runs from the **most recent** drop, not the first of an episode.
//! - The CPU of the process's own cgroup, v2 included, never the whole host's when a cgroup
//!   can be read; no panic when nothing can be read: [`BbrConfig::build`] returns an error
//!   naming why.
//! - A [`Gate::Latency`] for services whose overload does not show on the CPU.
//! - A limit of `L + √L` (`BbrConfig::headroom`, 1 by default) rather than Little's `L`
//!   alone: a one-worker server proves `L` ≈ 1 and, limited to it, idles whenever random
//!   arrivals dip (live: 74 % of capacity at 2× with `headroom` 0, 99 % with 1).
//! - Inside a tokio runtime the CPU gate also reads the busy share of the runtime's workers:
//!   a runtime of fewer workers than the allowance has CPUs saturates unseen by the CPU.
//! - Statistics are recomputed once per bucket into a cache read without a lock; the fast
//!   path is three loads and an increment.
//! - Response times on a **sample**, where the clock has a cheap recent time: every
//!   completion counts as a pass, and the first request of each tick of the kernel's coarse
//!   clock and one in 16 of the rest are timed (Kratos times every request, at two reads of
//!   the precise clock each, which were most of this layer's cost).
//!
//! # Errors
//!
//! A shed request resolves to [`Overloaded`], boxed in `tower::BoxError`; a request refused at
//! its deadline to [`DeadlineExceeded`](rampart_core::DeadlineExceeded) (already passed) or
//! [`WouldMissDeadline`] (would pass before it could finish); errors of the inner service
//! pass through untouched.
//!
//! # Metrics
//!
//! Registered once when a limiter is built (install your recorder first), labelled `name`
//! (and `key` in a group): `rampart_ratelimit_requests_total{outcome="admitted"|"shed"|
//! "expired"|"would_miss", criticality}` (`criticality` the class name, `critical` for
//! requests that said none; in a dry run, `shed` counts the requests that would have been
//! shed; `expired` and `would_miss` are the deadline refusals);
//! `rampart_ratelimit_deadline_remaining_seconds`, a histogram of the time requests with a
//! deadline had left when they arrived;
//! `rampart_ratelimit_inflight`, `rampart_ratelimit_max_inflight`,
//! `rampart_ratelimit_cpu_ratio` and (for a limiter that reads one)
//! `rampart_ratelimit_delay_seconds`, the runtime's scheduling delay, published once per bucket by the first request in it, and,
//! while no request arrives, from the limiter's state at the current instant: the layer and
//! groups register their limiters with the shared background refresher
//! (`rampart_core::gauges`), which republishes them once a second, so an idle process's scrape
//! shows no request in flight, the current CPU and the limit of the window as it is now, not
//! its last busy second. Requests pay nothing for it; [`BbrLimiter::publish_gauges`]
//! publishes at once.
//!
//! Each limiter that reads the default [`SystemCpu`] also publishes, when built,
//! `rampart_ratelimit_cpu_allowance_cores{source, limit}`: the CPUs the usage is measured
//! against, with `source` the accounting read (`cgroup_v2`, `cgroup_v1` or `host`) and `limit`
//! the bound that set it (`quota`, `cpuset`, `host`, or `unknown` when none could be read).
//!
//! # Cost
//!
//! Medians of two runs on our 2-vCPU benchmark machine (`benches/benches/ratelimit.rs`): the
//! layer adds 38.1 and 40.2 ns to a call on its default clock, tower's `ConcurrencyLimit`
//! 37.4 and 38.8 ns in the same runs (1.02×, 1.04×). It was 68.2 ns (1.8×) while every request
//! read the TSC at admission and at completion; most requests now read the kernel's coarse
//! clock instead and a sample reads the TSC besides (see [`BbrLimiter`]'s "Clock"). What
//! is left is three atomic writes, at about 9 ns each on this machine: the permit's
//! reference, which counts the request in flight, taken and dropped, and the window's count
//! of completions. The rows beside it, in the same two runs: an admission and a completion
//! through the limiter alone, 31.9 ns in both (33.1 and 33.9 ns given the instants, which
//! always time the request); the layer on [`CoarseClock`](rampart_core::CoarseClock), whose
//! reads cost a load, 33.6 and 34.0 ns; on a manual clock, which has no recent time and so
//! times every request, 43.9 and 44.9 ns; for a request with a deadline, which reads the TSC
//! to measure the time it has left, 66.1 and 69.2 ns (79.4 ns before). A request that carries
//! a criticality costs 38.8 and 39.6 ns given the instants. (Kratos v1 published 377 ns.)
//!
//! # Feature flags
//!
//! - `tokio`: `spawn_sampler`, CPU smoothing in a tokio task (follows paused time);
//!   `RuntimeBusy`, the busy share of a runtime's workers, which `build` reads beside the CPU
//!   inside a runtime; and `DelayProbe`, the runtime's scheduling delay, which `build` starts
//!   inside a runtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bbr;
mod config;
pub mod cpu;
mod deadline;
pub mod delay;
mod error;
mod events;
mod future;
mod group;
mod group_layer;
mod layer;
mod ledger;
mod metrics;
mod permit;
mod priority;
mod service;

pub use crate::bbr::{BbrLimiter, BbrSnapshot};
pub use crate::config::{BbrConfig, Gate};
#[cfg(feature = "tokio")]
pub use crate::cpu::runtime::RuntimeBusy;
pub use crate::cpu::smoothed::{CpuSampler, ManualCpu, SmoothedCpu};
pub use crate::cpu::source::{CpuError, CpuSource, CpuUsage};
pub use crate::cpu::system::{SystemCpu, SystemCpuError};
#[cfg(feature = "tokio")]
pub use crate::cpu::tokio::spawn_sampler;
#[cfg(feature = "tokio")]
pub use crate::delay::probe::DelayProbe;
pub use crate::delay::source::{ManualDelay, SchedulingDelay};
pub use crate::error::{DeadlineRefusal, Overloaded, WouldMissDeadline};
pub use crate::future::ResponseFuture;
pub use crate::group::BbrGroup;
pub use crate::group_layer::{BbrGroupLayer, KeyedBbrLimit};
pub use crate::layer::BbrLimitLayer;
pub use crate::permit::{BbrLimiterRef, OwnedPermit, Permit};
pub use crate::service::BbrLimit;
