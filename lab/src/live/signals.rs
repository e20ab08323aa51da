//! The candidate signals for the queue in front of the limiter, measured in the live server at
//! the moment a request reaches the stack (by a layer outermost on `/work`), for every stack:
//!
//! - the runtime's scheduling delay, as a heartbeat measures it: a [`DelayProbe`] beating at
//!   the default limiter's interval, read as a limiter's decision reads it;
//! - tokio's stable runtime metrics: the global queue's depth and the number of alive tasks
//!   per request, and the worker's busy share between two reads;
//! - the request's age: now minus the instant the load generator stamped in its
//!   `x-request-start: t=<microseconds since the UNIX epoch>` header (the header nginx and
//!   Heroku's routers set) at the request's arrival.
//!
//! Each reading goes into an [`Accumulator`] of atomics (count, sum, maximum); a `/stats` read
//! takes them all ([`Signals::take`]) and starts them afresh, so the driver gets each second's
//! mean and maximum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use rampart_core::{Clock as _, ConfigError, SystemClock};
use rampart_ratelimit::delay::probe_interval;
use rampart_ratelimit::{DelayProbe, SchedulingDelay as _};
use tokio::runtime::RuntimeMetrics;

use super::stats::{Readings, SignalStats};

/// The header the load generator stamps each request's arrival in.
pub const REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");

/// The default limiter's `max_delay`, whose heartbeat interval the probe uses.
const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(10);

/// Time since the UNIX epoch at `at` (zero for an instant before it).
pub fn since_epoch(at: SystemTime) -> Duration {
    at.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The `x-request-start` value of a request that arrived `arrived` after the UNIX epoch:
/// `t=` and whole microseconds (always a valid header value: `None` never happens).
pub fn request_start_value(arrived: Duration) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("t={}", arrived.as_micros())).ok()
}

/// Why a request has no age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unstamped {
    /// No `x-request-start` header.
    Missing,
    /// A header that is not `t=` and a whole number of microseconds.
    Malformed,
}

/// The arrival instant, since the UNIX epoch, that an `x-request-start` value states: `t=`
/// then the microseconds, digits only (surrounding blanks ignored).
///
/// # Errors
///
/// [`Unstamped::Missing`] without a value, [`Unstamped::Malformed`] for anything else than
/// that form (a sign, a fraction, no `t=`, a number beyond `u64`).
pub fn request_start(value: Option<&HeaderValue>) -> Result<Duration, Unstamped> {
    let value = value.ok_or(Unstamped::Missing)?;
    let micros = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().strip_prefix("t="))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or(Unstamped::Malformed)?;
    Ok(Duration::from_micros(micros))
}

/// A request's age at `now` (since the UNIX epoch) from its `x-request-start` value: zero for
/// a stamp in the future, never a panic.
///
/// # Errors
///
/// As [`request_start`].
pub fn request_age(value: Option<&HeaderValue>, now: Duration) -> Result<Duration, Unstamped> {
    request_start(value).map(|arrived| now.saturating_sub(arrived))
}

/// Readings of one signal since the last [`take`](Self::take): their count, sum and maximum,
/// in atomics.
///
/// A reading recorded while a `take` runs may land whole in it, whole in the next, or split
/// between the two (its count in one, its value in the other); it is never lost nor counted
/// twice.
#[derive(Debug, Default)]
pub struct Accumulator {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Accumulator {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one reading (the sum saturates).
    pub fn record(&self, value: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(value))
            });
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// The readings since the last take, and starts afresh.
    pub fn take(&self) -> Readings {
        Readings {
            count: self.count.swap(0, Ordering::Relaxed),
            sum: self.sum.swap(0, Ordering::Relaxed),
            max: self.max.swap(0, Ordering::Relaxed),
        }
    }
}

/// Whole microseconds of `duration`, saturating.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The share of `elapsed` that `workers` workers were busy for `busy` (summed over them), or
/// `None` when no time passed or there is no worker.
pub fn busy_share(busy: Duration, elapsed: Duration, workers: usize) -> Option<f64> {
    (!elapsed.is_zero() && workers > 0)
        .then(|| busy.as_secs_f64() / elapsed.as_secs_f64() / workers as f64)
}

/// The server's signal readings, shared by its `/work` layer (which records) and its `/stats`
/// route (which takes).
#[derive(Debug)]
pub struct Signals {
    clock: SystemClock,
    probe: DelayProbe,
    runtime: RuntimeMetrics,
    delay_us: Accumulator,
    age_us: Accumulator,
    global_queue: Accumulator,
    alive_tasks: Accumulator,
    missing: AtomicU64,
    malformed: AtomicU64,
    /// When the last take was, and the workers' total busy time then.
    busy_mark: Mutex<(Instant, Duration)>,
}

impl Signals {
    /// Starts the heartbeat on the current tokio runtime, whose metrics it reads.
    ///
    /// # Errors
    ///
    /// Field `runtime` outside a tokio runtime.
    pub fn start() -> Result<Self, ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "runtime",
                "the signals must be started inside a tokio runtime",
            )
        })?;
        let clock = SystemClock::new();
        let probe = DelayProbe::spawn_on(&handle, clock, probe_interval(DEFAULT_MAX_DELAY))?;
        let runtime = handle.metrics();
        let busy = total_busy(&runtime);
        Ok(Self {
            clock,
            probe,
            runtime,
            delay_us: Accumulator::new(),
            age_us: Accumulator::new(),
            global_queue: Accumulator::new(),
            alive_tasks: Accumulator::new(),
            missing: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            busy_mark: Mutex::new((Instant::now(), busy)),
        })
    }

    /// Records what a request with `headers` finds as it reaches the stack.
    pub fn observe(&self, headers: &HeaderMap) {
        let delay = self.probe.delay(self.clock.now());
        self.delay_us.record(micros(delay));
        let now = since_epoch(SystemTime::now());
        match request_age(headers.get(&REQUEST_START), now) {
            Ok(age) => self.age_us.record(micros(age)),
            Err(Unstamped::Missing) => {
                self.missing.fetch_add(1, Ordering::Relaxed);
            }
            Err(Unstamped::Malformed) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let depth = self.runtime.global_queue_depth();
        self.global_queue
            .record(u64::try_from(depth).unwrap_or(u64::MAX));
        let alive = self.runtime.num_alive_tasks();
        self.alive_tasks
            .record(u64::try_from(alive).unwrap_or(u64::MAX));
    }

    /// Every reading since the last take, and the workers' busy share since then; starts
    /// afresh.
    pub fn take(&self) -> SignalStats {
        let busy = {
            let mut mark = self.busy_mark.lock();
            let (now, total) = (Instant::now(), total_busy(&self.runtime));
            let share = busy_share(
                total.saturating_sub(mark.1),
                now.saturating_duration_since(mark.0),
                self.runtime.num_workers(),
            );
            *mark = (now, total);
            share
        };
        SignalStats {
            delay_us: self.delay_us.take(),
            age_us: self.age_us.take(),
            missing_stamp: self.missing.swap(0, Ordering::Relaxed),
            malformed_stamp: self.malformed.swap(0, Ordering::Relaxed),
            global_queue: self.global_queue.take(),
            alive_tasks: self.alive_tasks.take(),
            busy,
        }
    }
}

/// The busy time of every worker of `runtime`, summed.
fn total_busy(runtime: &RuntimeMetrics) -> Duration {
    (0..runtime.num_workers())
        .map(|worker| runtime.worker_total_busy_duration(worker))
        .fold(Duration::ZERO, Duration::saturating_add)
}
