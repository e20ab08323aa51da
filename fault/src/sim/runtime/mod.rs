//! [`SimRuntime`]: a server whose middleware runs on the same workers as its handlers, as on
//! tokio, so that requests queue where the middleware cannot see them.
//!
//! On a tokio server a request is a task. It waits in the runtime's run queue (and before that
//! in the socket) until a worker polls it; only then does the tower stack see it, decide, and
//! call the handler, which runs on that same worker until it yields. A limiter in the stack
//! counts in flight only the requests it has admitted and not finished: with a handler that
//! never yields, one per worker, however many wait in front of it. [`SimBackend`] queues
//! *behind* the stack instead (the stack sees every queued request), which is why a limiter
//! that protects a `SimBackend` can fail on a real server.
//!
//! [`SimBackend`]: crate::SimBackend

mod clock;
mod config;
mod error;
mod handler;
mod scheduler;
mod server;
mod shared;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use fastrand::Rng;
use rampart_core::ConfigError;

pub use self::clock::RuntimeClock;
pub use self::config::RuntimeConfig;
pub use self::error::{NotOnWorker, Unanswered};
pub use self::handler::{Handler, HandlerFuture};
use self::scheduler::State;
pub use self::server::{RuntimeFuture, RuntimeServer};
use self::shared::Shared;

/// A simulated async runtime serving a CPU-bound handler: `workers` threads, one FIFO run
/// queue, and the stack under test running on the workers, in front of the handler.
///
/// - A request ([`serve`](Self::serve)'s `call`) is a task that joins the back of the run
///   queue.
/// - When a worker takes it, the task calls the stack, a real tower service: a limiter decides
///   there, at that instant. A refusal (an answer given without calling the [`Handler`]) costs
///   the worker `refusal_cost` (reading the request, writing a 503).
/// - An admitted request's handler burns its CPU time (drawn from `service_time`) in
///   `slices` pieces; after each piece but the last it yields and the task goes to the back of
///   the run queue. One slice is a handler that never yields: it holds its worker to the end.
/// - A request runs to its end whether or not its client still waits: the work of a client
///   that gave up is wasted, as on a real server.
///
/// Everything is exact to the nanosecond on the runtime's own instants, which advance with
/// tokio's clock: under `tokio::time::pause()` a simulated minute takes a fraction of a
/// second, and a seeded run is deterministic. A response reaches its caller when tokio's timer
/// reaches it, on whole milliseconds (a 2.1 ms response arrives after 3 ms); give the stack the
/// runtime's [`clock`](Self::clock) so that it measures the exact times. Build the runtime
/// inside the tokio runtime that drives it.
///
/// # Signals
///
/// - [`utilization`](Self::utilization): busy worker time over `cpus ×` the time since the
///   previous read, as a CPU-usage counter reads.
/// - [`scheduling_delay`](Self::scheduling_delay): what a heartbeat task measures, as
///   `rampart-ratelimit`'s probe does on tokio. Every `heartbeat` it asks to run (it joins the
///   back of the run queue, and costs no CPU) and notes how late it ran. The reading is how
///   long it has been overdue while it waits, and otherwise how late it ran the last time: how
///   long work that became ready recently waited for a worker, not a forecast. The model
///   queues it at its due instant exactly; tokio's workers look at their timers between polls
///   (every few dozen, or when idle), so a real heartbeat may queue, and read, a little later.
/// - [`stats`](Self::stats): exact counts of what was served, refused and abandoned.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use std::time::Duration;
/// use tower::ServiceExt;
/// use rampart_fault::{Distribution, RuntimeConfig, SimRuntime};
///
/// // One worker; a handler that burns 10 ms of CPU without yielding.
/// let runtime = SimRuntime::new(
///     RuntimeConfig::default().with_service_time(Distribution::Fixed(Duration::from_millis(10))),
/// )?;
/// // The stack under test goes here, in front of the handler: none in this example.
/// let server = runtime.serve(runtime.handler());
///
/// let (first, second) = tokio::join!(server.clone().oneshot(()), server.clone().oneshot(()));
/// assert_eq!(first?.latency(), Duration::from_millis(10));
/// assert_eq!(second?.latency(), Duration::from_millis(20)); // it waited for the worker
/// assert_eq!(runtime.stats().served, 2);
/// assert_eq!(runtime.utilization(), 1.0);
/// // The heartbeat was due at 5 ms, behind the second request in the run queue: it ran at 20 ms.
/// assert_eq!(runtime.scheduling_delay(), Duration::from_millis(15));
/// # Ok(())
/// # }
/// ```
///
/// # Sharing
///
/// Clones share one runtime: one run queue, one set of workers.
#[derive(Debug, Clone)]
pub struct SimRuntime {
    shared: Arc<Shared>,
}

/// Counts of a [`SimRuntime`]'s requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests the handler served while their client still waited.
    pub served: u64,
    /// Requests the handler served after their client had gone: wasted work.
    pub abandoned: u64,
    /// Requests answered without calling the handler (refused by the stack).
    pub refused: u64,
    /// Requests whose task panicked (they get no answer).
    pub panicked: u64,
    /// Requests waiting in the run queue now.
    pub queued: u64,
    /// Requests arrived and not finished now: queued, on a worker, or waiting for a wake.
    pub unfinished: u64,
    /// Worker time spent on requests so far (handlers and refusals), counted as each piece of
    /// work ends.
    pub busy: Duration,
}

impl SimRuntime {
    /// An idle runtime of the given shape, starting at tokio's current instant.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RuntimeConfig::validate`]).
    pub fn new(config: RuntimeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let rng = config.seed.map_or_else(Rng::new, Rng::with_seed);
        let state = State::new(config.clone(), rng);
        Ok(Self {
            shared: Arc::new(Shared::new(config, state)),
        })
    }

    /// The shape this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// The handler: the innermost service of the stack to [`serve`](Self::serve).
    pub fn handler(&self) -> Handler {
        Handler {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// The service a client calls: each call is a task on this runtime that calls `stack`
    /// when a worker reaches it.
    pub fn serve<S>(&self, stack: S) -> RuntimeServer<S> {
        RuntimeServer {
            shared: Arc::clone(&self.shared),
            stack,
        }
    }

    /// The runtime's clock: the exact instant of the work a worker is running, for the stack
    /// under test to measure time with (and for [`scheduling_delay_at`]).
    ///
    /// [`scheduling_delay_at`]: Self::scheduling_delay_at
    pub fn clock(&self) -> RuntimeClock {
        RuntimeClock::new(&self.shared)
    }

    /// The share of the CPUs spent on requests since the previous call (since construction for
    /// the first), in [0, 1]. A second call at the same instant repeats the last value.
    pub fn utilization(&self) -> f64 {
        self.shared.catch_up();
        self.shared.state.lock().utilization()
    }

    /// The scheduling delay now, as a heartbeat measures it (see [`SimRuntime`]).
    pub fn scheduling_delay(&self) -> Duration {
        self.shared.catch_up();
        let now = self.shared.instant();
        self.shared.state.lock().delay_at(now)
    }

    /// The scheduling delay at `now`, an instant of the runtime's [`clock`](Self::clock): how
    /// long the heartbeat has been overdue at `now`, or else how late it ran the last time.
    pub fn scheduling_delay_at(&self, now: Duration) -> Duration {
        self.shared.catch_up();
        self.shared.state.lock().delay_at(now)
    }

    /// The runtime's requests so far, and its queue now.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.catch_up();
        self.shared.state.lock().stats()
    }
}
