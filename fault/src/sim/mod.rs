//! [`SimBackend`]: a capacity-bound server to overload in tests and simulations.

mod config;
mod future;
mod queue;
mod runtime;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use fastrand::Rng;
use parking_lot::Mutex;
use rampart_core::ConfigError;
use tokio::time::Instant;
use tower::{BoxError, Service};

pub use self::config::SimConfig;
pub use self::future::SimFuture;
use self::queue::Queue;
pub use self::runtime::{
    Handler, HandlerFuture, NotOnWorker, RuntimeClock, RuntimeConfig, RuntimeFuture, RuntimeServer,
    RuntimeStats, SimRuntime, Unanswered,
};
use crate::Distribution;
use crate::error::in_runtime;

/// A simulated server: `workers` parallel slots, a service-time distribution and a bounded
/// FIFO queue, on tokio's clock.
///
/// Each request is booked on arrival onto the earliest free worker: it waits in the queue
/// until then, occupies the worker for a service time drawn at arrival (at most about 30
/// years, the longest tokio's timers wait), and its response
/// future resolves when the service ends. So latency grows with queueing, throughput
/// saturates at `workers / mean service time`, and a request arriving to a full queue fails at
/// once with [`QueueFull`](crate::QueueFull), costing no worker time.
///
/// A request keeps its slot after its caller gives up (drops the future), as it does on a real
/// server that does not notice the client has gone: that wasted work is what makes an
/// unprotected server collapse under overload.
///
/// [`utilization`](Self::utilization) reads busy worker time over `workers ×` the time since
/// the previous read, as a CPU-usage counter does, so a load-based limiter can use it as its
/// CPU signal.
///
/// Everything runs on `tokio::time`, so under `tokio::time::pause()` a simulated minute takes
/// milliseconds and a seeded run is deterministic. Build the backend inside the runtime that
/// drives it. Bookings are exact to the nanosecond (and [`Served`] reports them so), but a
/// response future wakes on tokio's timer, which fires on whole milliseconds: a caller sees a
/// 10.3 ms response after 11 ms.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use std::time::Duration;
/// use tower::ServiceExt;
/// use rampart_fault::{Distribution, SimBackend, SimConfig};
///
/// let config = SimConfig::default()
///     .with_workers(1)
///     .with_service_time(Distribution::Fixed(Duration::from_millis(10)));
/// let backend = SimBackend::new(config)?;
///
/// // Two requests at once on one worker: the second waits for the first.
/// let (first, second) = tokio::join!(backend.clone().oneshot(()), backend.clone().oneshot(()));
/// assert_eq!(first?.latency(), Duration::from_millis(10));
/// assert_eq!(second?.latency(), Duration::from_millis(20));
/// assert_eq!(backend.utilization(), 1.0);
/// # Ok(())
/// # }
/// ```
///
/// # Sharing
///
/// Clones share one server: one queue, one set of workers.
#[derive(Debug, Clone)]
pub struct SimBackend {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: SimConfig,
    queue: Mutex<Queue>,
}

/// What a [`SimBackend`] did with a request it served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Time spent waiting for a worker.
    pub queued: Duration,
    /// Time spent on the worker.
    pub service: Duration,
}

impl Served {
    /// Time from arrival to response: queueing plus service (saturating).
    pub fn latency(&self) -> Duration {
        self.queued.saturating_add(self.service)
    }
}

/// Counts of a [`SimBackend`]'s traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests accepted (served, being served, or queued), abandoned or not.
    pub accepted: u64,
    /// Requests rejected with `QueueFull`.
    pub rejected: u64,
    /// Requests waiting for a worker now.
    pub queued: u64,
    /// Requests on a worker now.
    pub in_service: u64,
}

impl SimBackend {
    /// A backend of the given shape, idle as of tokio's current instant.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`SimConfig::validate`]).
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let rng = config.seed.map_or_else(Rng::new, Rng::with_seed);
        let queue = Queue::new(
            config.workers,
            config.queue_capacity,
            config.service_time,
            rng,
            Instant::now(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                queue: Mutex::new(queue),
            }),
        })
    }

    /// The shape this backend was built with (its service time as of construction).
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// The fraction of worker time spent serving since the previous call (since construction
    /// for the first), in [0, 1]. A second call at the same instant repeats the last value.
    pub fn utilization(&self) -> f64 {
        self.shared.queue.lock().utilization(Instant::now())
    }

    /// The backend's traffic so far, and its queue now.
    pub fn stats(&self) -> SimStats {
        self.shared.queue.lock().stats(Instant::now())
    }

    /// Changes the service time of requests that arrive from now on (a backend degrades or
    /// recovers).
    ///
    /// # Errors
    ///
    /// If `service_time` is invalid; the backend is then unchanged.
    pub fn set_service_time(&self, service_time: Distribution) -> Result<(), ConfigError> {
        service_time.validate("service_time")?;
        self.shared.queue.lock().service_time = service_time;
        Ok(())
    }

    /// The service-time distribution of requests arriving now.
    pub fn service_time(&self) -> Distribution {
        self.shared.queue.lock().service_time
    }
}

impl<Req> Service<Req> for SimBackend {
    type Response = Served;
    type Error = BoxError;
    type Future = SimFuture;

    /// Always ready: a server accepts the connection, then queues or rejects the request.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Req) -> SimFuture {
        if !in_runtime() {
            return SimFuture::missing_runtime();
        }
        let now = Instant::now();
        match self.shared.queue.lock().book(now) {
            Some(booking) => SimFuture::serving(now, booking),
            None => SimFuture::rejected(),
        }
    }
}
