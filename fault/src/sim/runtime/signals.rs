//! What a `SimRuntime` shows a limiter: the heartbeat's scheduling delay and the CPU meter.

use std::time::Duration;

/// The heartbeat task: every `interval` it asks to run, joins the back of the run queue (it
/// costs no CPU), and notes how late it ran, as a heartbeat on tokio does.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Duration,
    /// When it next asks to run (in the past while it waits in the run queue).
    due: Duration,
    /// How late it ran the last time.
    measured: Duration,
    /// Whether it waits in the run queue.
    queued: bool,
}

impl Heartbeat {
    /// A heartbeat first due `interval` after the origin.
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            due: interval,
            measured: Duration::ZERO,
            queued: false,
        }
    }

    /// When it next asks to run, unless it waits in the run queue already.
    pub(super) fn next_due(&self) -> Option<Duration> {
        (!self.queued).then_some(self.due)
    }

    /// It joined the run queue.
    pub(super) fn queue(&mut self) {
        self.queued = true;
    }

    /// A worker ran it at `now`.
    pub(super) fn run(&mut self, now: Duration) {
        self.measured = now.saturating_sub(self.due);
        self.due = now.saturating_add(self.interval);
        self.queued = false;
    }

    /// The runtime is idle until `until`: every beat before it runs on time. Takes them in one
    /// step, leaving the last one (or one at `until`) to run as usual.
    pub(super) fn run_idle_until(&mut self, until: Duration) {
        if self.queued || self.due >= until {
            return;
        }
        let interval = self.interval.as_nanos().max(1);
        let beats = until.saturating_sub(self.due).as_nanos() / interval;
        let skip = Duration::from_nanos(u64::try_from(beats * interval).unwrap_or(u64::MAX));
        if !skip.is_zero() {
            self.due = self.due.saturating_add(skip);
            self.measured = Duration::ZERO;
        }
    }

    /// The scheduling delay at `now`: how long it has been overdue, or, when it is not, how
    /// late it ran the last time.
    pub(super) fn delay_at(&self, now: Duration) -> Duration {
        if now >= self.due {
            now.saturating_sub(self.due)
        } else {
            self.measured
        }
    }
}

/// Busy worker time over `cpus ×` the time since the previous read, as a CPU-usage counter.
#[derive(Debug)]
pub(super) struct Meter {
    cpus: usize,
    /// Worker time since `last_read` of work that has ended.
    banked: Duration,
    last_read: Duration,
    last: f64,
}

impl Meter {
    pub(super) fn new(cpus: usize) -> Self {
        Self {
            cpus,
            banked: Duration::ZERO,
            last_read: Duration::ZERO,
            last: 0.0,
        }
    }

    /// A worker was busy from `start` to `end`, which has passed.
    pub(super) fn bank(&mut self, start: Duration, end: Duration) {
        self.banked += end.saturating_sub(start.max(self.last_read));
    }

    /// The reading at `now`, with workers busy since each of `busy_since` (their work not
    /// ended); a second read at the same instant repeats the last.
    pub(super) fn read(
        &mut self,
        now: Duration,
        busy_since: impl Iterator<Item = Duration>,
    ) -> f64 {
        let elapsed = now.saturating_sub(self.last_read);
        if elapsed.is_zero() {
            return self.last;
        }
        let ongoing: Duration = busy_since
            .map(|start| now.saturating_sub(start.max(self.last_read)))
            .sum();
        let busy = self.banked + ongoing;
        // Whole nanoseconds, so that simple fractions come out exact.
        let capacity = elapsed.as_nanos().saturating_mul(self.cpus as u128);
        self.last = (busy.as_nanos() as f64 / capacity as f64).min(1.0);
        self.banked = Duration::ZERO;
        self.last_read = now;
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn idle_beats_run_on_time_in_one_step() {
        let mut heartbeat = Heartbeat::new(5 * MS);
        heartbeat.queue();
        heartbeat.run(12 * MS);
        assert_eq!(heartbeat.delay_at(13 * MS), 7 * MS);
        heartbeat.run_idle_until(40 * MS);
        // Beats at 17, 22, 27, 32 ran on time; the one at 37 is left to run.
        assert_eq!(heartbeat.next_due(), Some(37 * MS));
        assert_eq!(heartbeat.delay_at(36 * MS), Duration::ZERO);
        heartbeat.run_idle_until(37 * MS);
        assert_eq!(heartbeat.next_due(), Some(37 * MS), "nothing before 37 ms");
    }

    #[test]
    fn the_meter_counts_ended_and_ongoing_work_once() {
        let mut meter = Meter::new(2);
        meter.bank(Duration::ZERO, 4 * MS);
        // One worker busy 0–4 ms, the other since 6 ms: 4 + 4 ms of 2 × 10 ms.
        assert_eq!(meter.read(10 * MS, [6 * MS].into_iter()), 0.4);
        // The second worker's work ends at 12 ms: only its part after the read counts.
        meter.bank(6 * MS, 12 * MS);
        assert_eq!(meter.read(20 * MS, std::iter::empty()), 0.1);
        assert_eq!(meter.read(20 * MS, std::iter::empty()), 0.1);
    }
}
