//! [`SimBackend`]: a capacity-bound server to overload in tests and simulations.

mod config;
mod discipline;
mod future;
mod queue;
mod runtime;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use fastrand::Rng;
use parking_lot::Mutex;
use rampart_core::{Clock, ConfigError, current_deadline};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{BoxError, Service};

pub use self::config::SimConfig;
pub use self::discipline::{CoDel, QueueDiscipline, QueueOrder, QueueTimeout};
pub use self::future::SimFuture;
use self::queue::{Admission, Queue};
pub use self::runtime::{
    Handler, HandlerFuture, NotOnWorker, RuntimeClock, RuntimeConfig, RuntimeFuture, RuntimeServer,
    RuntimeStats, SimRuntime, Unanswered,
};
use crate::Distribution;
use crate::error::in_runtime;

/// A simulated server: `workers` parallel slots, a service-time distribution and a bounded
/// queue (FIFO unless its [`QueueDiscipline`] says otherwise), on tokio's clock.
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
/// # Deadlines and queue disciplines
///
/// Built with [`new_with`](Self::new_with) and the clock the layers in front of it read, the
/// backend notes the deadline current when a request is called
/// ([`current_deadline`]), and [`work`](Self::work) tells the worker time spent
/// on requests that finished after theirs. A [`QueueDiscipline`] other than FIFO holds waiting
/// requests until a worker frees up and then chooses among them (newest first, or dropping
/// those that waited too long or whose deadline has passed); a task on the runtime hands the
/// held requests to workers as they free up.
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
    /// The clock of the deadlines requests carry, if the backend reads them.
    deadlines: Option<DeadlineClock>,
    /// Wakes the dispatcher when a request is held in an empty queue, or the backend is gone.
    wake: Arc<Notify>,
    /// Whether the dispatcher of held requests has been started.
    dispatching: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// The clock of the deadlines a backend reads.
struct DeadlineClock(Arc<dyn Clock>);

impl fmt::Debug for DeadlineClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadlineClock")
    }
}

/// The work a [`SimBackend`] has done, counted as each request finishes, and the requests its
/// [`QueueDiscipline`] dropped.
///
/// A request's deadline is known when the backend was built with
/// [`new_with`](SimBackend::new_with) and a deadline was current when the request was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimWork {
    /// Worker time of every finished request.
    pub busy: Duration,
    /// Worker time of the finished requests that finished after their deadline: work whose
    /// answer came too late to be of use.
    pub late_busy: Duration,
    /// Finished requests with a known deadline, finished by it.
    pub in_time: u64,
    /// Finished requests that finished after their deadline.
    pub late: u64,
    /// Requests dropped because their deadline had passed when a worker would have taken them.
    pub dropped_expired: u64,
    /// Requests dropped because they had waited longer than [`CoDel`]'s timeout.
    pub dropped_timeout: u64,
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
        Self::build(config, None)
    }

    /// A backend of the given shape that reads each request's deadline on `clock`: the
    /// [`current_deadline`] when the request is called. Give it a clock of the origin the
    /// deadlines were set on (a clone of the layers' clock).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower::BoxError> {
    /// use std::time::Duration;
    /// use rampart_core::{Clock, Deadline, ManualClock, RequestContext};
    /// use rampart_fault::{Distribution, SimBackend, SimConfig};
    /// use tower::ServiceExt;
    ///
    /// let clock = ManualClock::new(); // the layers' clock (a `TokioClock` in a simulation)
    /// let config = SimConfig::default()
    ///     .with_workers(1)
    ///     .with_service_time(Distribution::Fixed(Duration::from_millis(30)));
    /// let backend = SimBackend::new_with(config, clock.clone())?;
    /// let deadline = Deadline::after(clock.now(), Duration::from_millis(20));
    /// let context = RequestContext::new().with_deadline(deadline);
    /// context.scope(backend.clone().oneshot(())).await?;
    /// let work = backend.work();
    /// assert_eq!((work.late, work.late_busy), (1, Duration::from_millis(30)));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`SimConfig::validate`]).
    pub fn new_with(config: SimConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        Self::build(config, Some(DeadlineClock(Arc::new(clock))))
    }

    fn build(config: SimConfig, deadlines: Option<DeadlineClock>) -> Result<Self, ConfigError> {
        config.validate()?;
        let rng = config.seed.map_or_else(Rng::new, Rng::with_seed);
        let queue = Queue::new(
            config.workers,
            config.queue_capacity,
            config.service_time,
            config.discipline,
            rng,
            Instant::now(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                queue: Mutex::new(queue),
                deadlines,
                wake: Arc::new(Notify::new()),
                dispatching: AtomicBool::new(false),
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

    /// The work done so far (requests finished by now), and the requests dropped.
    pub fn work(&self) -> SimWork {
        self.shared.queue.lock().work(Instant::now())
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
        let deadline = self.shared.deadlines.as_ref().and_then(|clock| {
            let remaining = current_deadline()?.remaining(clock.0.now());
            Some(now.checked_add(remaining).unwrap_or(now))
        });
        let admission = self.shared.queue.lock().admit(now, deadline);
        match admission {
            Admission::Booked(booking) => SimFuture::serving(now, booking),
            Admission::Held(booking) => {
                self.dispatch_held();
                SimFuture::held(now, booking, self.clone())
            }
            Admission::Rejected => SimFuture::rejected(),
            Admission::Dropped(dropped) => SimFuture::dropped(dropped),
        }
    }
}

impl SimBackend {
    /// Wakes the dispatcher of held requests, starting it on first use.
    fn dispatch_held(&self) {
        if !self.shared.dispatching.swap(true, Ordering::Relaxed) {
            let shared = Arc::downgrade(&self.shared);
            tokio::spawn(dispatch(shared, Arc::clone(&self.shared.wake)));
        }
        self.shared.wake.notify_one();
    }
}

/// Hands held requests to workers as they free up, until the backend is gone: sleeps until the
/// next release while requests are held, and until woken otherwise.
async fn dispatch(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut queue = shared.queue.lock();
            queue.catch_up(Instant::now());
            queue.next_release()
        };
        match next {
            Some(release) => tokio::time::sleep_until(release).await,
            None => wake.notified().await,
        }
    }
}
