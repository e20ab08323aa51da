//! Deadline-aware admission: the [`BbrLimiter`] methods that refuse a request whose deadline
//! has passed, or would pass before the request could finish at the current load.
//!
//! The prediction uses what the limiter already measures. The best bucket of the window shows
//! the service's throughput (`max_pass` per bucket) and its response time without queueing
//! (the lowest bucket mean, `min_rt`); together they give the concurrency it sustains,
//! `L = throughput × min_rt`. A request admitted with `n` others in flight waits for the
//! `n + 1 − L` ahead of it beyond that concurrency to drain at the throughput, then takes
//! `min_rt`:
//!
//! `predicted = min_rt + max(0, n + 1 − L) / throughput`
//!
//! Below its proven concurrency a service answers in `min_rt`, so under ordinary load only a
//! request with less time left than the service's typical response is refused; above it, the
//! queue the request would join counts. A limiter that has measured nothing yet predicts
//! nothing: only expired requests are refused.

use std::time::Duration;

use rampart_core::{Clock, Criticality, Deadline, DeadlineExceeded, RequestContext};

use crate::bbr::Stats;
use crate::cpu::CpuUsage;
use crate::{BbrLimiter, DeadlineRefusal, WouldMissDeadline};

/// # Deadlines
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// Whether a request with `deadline` may be admitted at `now`: refused if the deadline has
    /// passed, or if less time is left than the request's
    /// [predicted completion](Self::predicted_completion_at). Counts the refusal (with the
    /// current context's criticality) and the time left; changes nothing else: a refused
    /// request never reaches the window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_core::{Clock, Deadline, ManualClock};
    /// use rampart_ratelimit::{BbrConfig, DeadlineRefusal, ManualCpu};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = BbrConfig::default().build_with(clock.clone(), ManualCpu::new(0.1))?;
    /// // Teach it a 20 ms response time.
    /// for _ in 0..10 {
    ///     let permit = limiter.acquire()?;
    ///     clock.advance(Duration::from_millis(20));
    ///     permit.complete();
    /// }
    /// clock.advance(Duration::from_millis(100)); // the bucket ends
    /// let now = clock.now();
    /// assert!(limiter.check_deadline_at(now, Deadline::after(now, Duration::from_millis(50))).is_ok());
    /// let short = limiter.check_deadline_at(now, Deadline::after(now, Duration::from_millis(5)));
    /// assert!(matches!(short, Err(DeadlineRefusal::WouldMiss(_))));
    /// let gone = limiter.check_deadline_at(now, Deadline::at(now));
    /// assert!(matches!(gone, Err(DeadlineRefusal::Expired(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DeadlineRefusal`] saying why.
    pub fn check_deadline_at(
        &self,
        now: Duration,
        deadline: Deadline,
    ) -> Result<(), DeadlineRefusal> {
        self.check_deadline_as(
            (now, now),
            deadline,
            RequestContext::current().criticality(),
        )
    }

    /// As [`check_deadline_at`](Self::check_deadline_at), for a request of `criticality`
    /// (`None`: it said none), counted under its class: `now` read from the clock's `now`
    /// measures the time left, `at` (the request's arrival, perhaps the recent time) reads
    /// the statistics.
    #[inline]
    pub(crate) fn check_deadline_as(
        &self,
        (now, at): (Duration, Duration),
        deadline: Deadline,
        criticality: Option<Criticality>,
    ) -> Result<(), DeadlineRefusal> {
        let class = criticality.unwrap_or_default().class();
        let remaining = deadline.remaining(now);
        self.metrics().remaining(remaining);
        if deadline.is_expired(now) {
            self.metrics().expired(class);
            return Err(DeadlineRefusal::Expired(DeadlineExceeded::new()));
        }
        let stats = self.stats_in(self.window_bucket_at(at), at);
        match predict_secs(&stats, self.inflight(), self.buckets_per_second()) {
            Some(predicted) if predicted > remaining.as_secs_f64() => {
                self.metrics().would_miss(class);
                Err(DeadlineRefusal::WouldMiss(WouldMissDeadline::new(
                    remaining,
                    Duration::from_secs_f64(predicted),
                )))
            }
            _ => Ok(()),
        }
    }

    /// How long a request admitted at `now` is predicted to take at the current load (see the
    /// module docs); `None` while the window holds no response time.
    pub fn predicted_completion_at(&self, now: Duration) -> Option<Duration> {
        let stats = self.stats_in(self.window_bucket_at(now), now);
        predict_secs(&stats, self.inflight(), self.buckets_per_second())
            .map(Duration::from_secs_f64)
    }
}

/// The predicted completion, in seconds, of a request joining `inflight` others, from `stats`
/// measured in buckets of which there are `buckets_per_second` a second.
#[inline]
fn predict_secs(stats: &Stats, inflight: u64, buckets_per_second: f64) -> Option<f64> {
    if !stats.measured {
        return None;
    }
    let min_rt = stats.min_rt_us / 1e6;
    let throughput = stats.max_pass as f64 * buckets_per_second;
    let proven = throughput * min_rt;
    let queued = (inflight as f64 + 1.0 - proven).max(0.0);
    Some(min_rt + queued / throughput)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(max_pass: u64, min_rt_ms: f64) -> Stats {
        Stats {
            max_pass,
            min_rt_us: min_rt_ms * 1e3,
            max_inflight: 0,
            last_rt_us: 0.0,
            measured: true,
        }
    }

    #[test]
    fn below_its_proven_concurrency_a_service_answers_in_its_minimum_response_time() {
        // 80 per 100 ms bucket at 10 ms: 800 a second, 8 in flight.
        let stats = stats(80, 10.0);
        for inflight in [0, 3, 7] {
            let predicted = predict_secs(&stats, inflight, 10.0).expect("measured");
            assert!((predicted - 0.010).abs() < 1e-9, "{inflight}: {predicted}");
        }
    }

    #[test]
    fn beyond_it_the_queue_ahead_drains_at_the_throughput() {
        let stats = stats(80, 10.0);
        // 48 in flight: 41 beyond the 8 it sustains, at 800 a second: 51.25 ms more.
        let predicted = predict_secs(&stats, 48, 10.0).expect("measured");
        assert!((predicted - 0.06125).abs() < 1e-9, "{predicted}");
    }

    #[test]
    fn nothing_measured_predicts_nothing() {
        let unmeasured = Stats {
            measured: false,
            ..stats(1, 0.001)
        };
        assert_eq!(predict_secs(&unmeasured, 100, 10.0), None);
    }
}
