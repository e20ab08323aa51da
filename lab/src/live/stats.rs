//! What the live server's `/stats` route answers: the handler's count, what its limiter sees,
//! and the signals requests found as they reached the stack since the last read, as JSON, read
//! by the driver once a second.

use rampart_ratelimit::{BbrLimiter, BbrSnapshot};
use serde::{Deserialize, Serialize};

/// The server's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests the handler has finished since the server started.
    pub handled: u64,
    /// What the stack's limiter sees, for rampart's stacks.
    pub limiter: Option<LimiterStats>,
    /// What requests found as they reached the stack since the previous read (every stack).
    pub signals: SignalStats,
}

/// The candidate signals for the queue in front of the limiter, as the requests that reached
/// the stack since the previous `/stats` read found them (see the `signals` module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalStats {
    /// The runtime's scheduling delay a heartbeat measures, in microseconds: one reading per
    /// request that reached the stack, so its count is theirs.
    pub delay_us: Readings,
    /// The requests' age (now minus their `x-request-start` stamp), in microseconds.
    pub age_us: Readings,
    /// Requests without an `x-request-start` header.
    pub missing_stamp: u64,
    /// Requests whose `x-request-start` header could not be read.
    pub malformed_stamp: u64,
    /// tokio's global queue depth.
    pub global_queue: Readings,
    /// tokio's count of alive tasks.
    pub alive_tasks: Readings,
    /// The share of the time since the previous read the runtime's workers were busy (tokio's
    /// `worker_total_busy_duration`), when time passed.
    pub busy: Option<f64>,
}

impl SignalStats {
    /// Requests that reached the stack.
    pub fn requests(&self) -> u64 {
        self.delay_us.count
    }
}

/// Readings of one signal: how many, their sum and their maximum (0 without readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readings {
    /// How many readings.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
    /// The largest.
    pub max: u64,
}

impl Readings {
    /// Their mean, or `None` without readings.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The largest, or `None` without readings.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max as f64)
    }

    /// These readings and `other`'s together (the sum saturates).
    #[must_use]
    pub fn merged(self, other: Self) -> Self {
        Self {
            count: self.count.saturating_add(other.count),
            sum: self.sum.saturating_add(other.sum),
            max: self.max.max(other.max),
        }
    }
}

/// A rampart limiter's snapshot, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimiterStats {
    /// The CPU usage it reads (0 for a gate that never reads it).
    pub cpu: f64,
    /// Requests admitted and not yet completed.
    pub inflight: u64,
    /// The in-flight limit it has learned: `max_pass × min_rt`.
    pub max_inflight: u64,
    /// The most completions of one bucket of its window.
    pub max_pass: u64,
    /// The lowest bucket-mean response time of its window, in milliseconds.
    pub min_rt_ms: f64,
    /// Whether its gate says the service is overloaded.
    pub overloaded: bool,
    /// Its reading of the runtime's scheduling delay, in milliseconds, when it reads one.
    pub delay_ms: Option<f64>,
}

impl LimiterStats {
    /// What `limiter` sees now. Its scheduling delay is read when its configuration has a
    /// `max_delay` (the limiter was built inside the server's runtime, so it probes it).
    pub fn of(limiter: &BbrLimiter) -> Self {
        let snapshot = limiter.snapshot();
        let reads_delay = limiter.config().max_delay.is_some();
        Self::from_snapshot(&snapshot, reads_delay)
    }

    /// `snapshot` as JSON; its delay only when `reads_delay`.
    pub fn from_snapshot(snapshot: &BbrSnapshot, reads_delay: bool) -> Self {
        Self {
            cpu: snapshot.cpu,
            inflight: snapshot.inflight,
            max_inflight: snapshot.max_inflight,
            max_pass: snapshot.max_pass,
            min_rt_ms: snapshot.min_rt.as_secs_f64() * 1e3,
            overloaded: snapshot.overloaded,
            delay_ms: reads_delay.then_some(snapshot.delay.as_secs_f64() * 1e3),
        }
    }
}
