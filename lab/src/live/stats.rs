//! What the live server's `/stats` route answers: the handler's count and what its limiter
//! sees, as JSON, read by the driver once a second.

use rampart_ratelimit::{BbrLimiter, BbrSnapshot};
use serde::{Deserialize, Serialize};

/// The server's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests the handler has finished since the server started.
    pub handled: u64,
    /// What the stack's limiter sees, for rampart's stacks.
    pub limiter: Option<LimiterStats>,
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
