//! From the `/stats` reads to the figures of the candidate signals for the queue in front of
//! the limiter: per second (beside what each limiter saw) and per phase (the "signals by
//! phase" table, beside the clients' p99 and timeouts), so that one sees which signal rises
//! before the clients time out and which stays quiet while the server copes.

use std::time::Duration;

use serde::Serialize;

use super::aggregate::{BIN, PhaseFigures};
use super::observe::Observation;
use super::stats::{Readings, SignalStats};

/// The signals requests found during second `bin`: what the read at its end took (reads
/// happen at the start of each second; a read that got no answer leaves its second without).
fn second(seen: &[Observation], bin: usize) -> Option<&SignalStats> {
    Some(&seen.get(bin + 1)?.stats.as_ref()?.signals)
}

/// Milliseconds of a figure in microseconds (NaN for none).
fn ms(us: Option<f64>) -> f64 {
    us.map_or(f64::NAN, |us| us / 1e3)
}

/// Per-second series of the signals requests found as they reached the stack, from looks
/// taken at the start of each second and at the end of the run (NaN for a second without an
/// answer, or a mean or max without a request): `reached` (requests that reached the stack,
/// a share of capacity), `delay_mean_ms` and `delay_max_ms` (the heartbeat's scheduling
/// delay), `age_mean_ms` and `age_max_ms` (the requests' age), `queue_mean` and `queue_max`
/// (tokio's global queue depth), `tasks_mean` and `tasks_max` (alive tasks), `busy` (the
/// worker's busy share over the second) and `unstamped` (requests whose age could not be
/// read).
pub fn signal_series(
    seen: &[Observation],
    duration: Duration,
    capacity: f64,
) -> Vec<(&'static str, Vec<f64>)> {
    let bins = (duration.as_secs_f64() / BIN.as_secs_f64()).ceil() as usize;
    let each = |read: &dyn Fn(&SignalStats) -> f64| -> Vec<f64> {
        (0..bins)
            .map(|bin| second(seen, bin).map_or(f64::NAN, read))
            .collect()
    };
    let reached = (0..bins)
        .map(
            |bin| match (seen.get(bin), seen.get(bin + 1), second(seen, bin)) {
                (Some(first), Some(last), Some(signals)) if last.at > first.at => {
                    let seconds = last.at.saturating_sub(first.at).as_secs_f64();
                    signals.requests() as f64 / seconds / capacity
                }
                _ => f64::NAN,
            },
        )
        .collect();
    let plain = |value: Option<f64>| value.unwrap_or(f64::NAN);
    vec![
        ("reached", reached),
        ("delay_mean_ms", each(&|s| ms(s.delay_us.mean()))),
        ("delay_max_ms", each(&|s| ms(s.delay_us.max()))),
        ("age_mean_ms", each(&|s| ms(s.age_us.mean()))),
        ("age_max_ms", each(&|s| ms(s.age_us.max()))),
        ("queue_mean", each(&|s| plain(s.global_queue.mean()))),
        ("queue_max", each(&|s| plain(s.global_queue.max()))),
        ("tasks_mean", each(&|s| plain(s.alive_tasks.mean()))),
        ("tasks_max", each(&|s| plain(s.alive_tasks.max()))),
        ("busy", each(&|s| plain(s.busy))),
        (
            "unstamped",
            each(&|s| s.missing_stamp.saturating_add(s.malformed_stamp) as f64),
        ),
    ]
}

/// One stack's signals over one phase, beside its clients' p99 and timeouts (NaN where there
/// is nothing to measure).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSignals {
    /// The stack.
    pub stack: String,
    /// The phase (`2×`).
    pub phase: String,
    /// The seconds whose reads count: those wholly inside the phase, with an answer (none
    /// for a phase shorter than a second).
    pub seconds: u32,
    /// Requests that reached the stack in them.
    pub requests: u64,
    /// The scheduling delay the heartbeat measured, mean and max, in milliseconds.
    pub delay_mean_ms: f64,
    /// See `delay_mean_ms`.
    pub delay_max_ms: f64,
    /// The requests' age as they reached the stack, mean and max, in milliseconds.
    pub age_mean_ms: f64,
    /// See `age_mean_ms`.
    pub age_max_ms: f64,
    /// tokio's global queue depth, mean and max.
    pub queue_mean: f64,
    /// See `queue_mean`.
    pub queue_max: f64,
    /// tokio's alive tasks, mean and max.
    pub tasks_mean: f64,
    /// See `tasks_mean`.
    pub tasks_max: f64,
    /// The worker's busy share, the mean of the seconds'.
    pub busy: f64,
    /// Requests whose age could not be read.
    pub unstamped: u64,
    /// The clients' 99th percentile latency of successes over the phase, in milliseconds.
    pub p99_ms: f64,
    /// The share of the phase's requests that timed out.
    pub timeouts: f64,
}

/// `stack`'s signals over `phase`, which ran from `from` to `to`, from its looks `seen`, and
/// its clients' `figures` over the phase.
pub fn phase_signals(
    stack: &str,
    phase: &str,
    (from, to): (Duration, Duration),
    seen: &[Observation],
    figures: &PhaseFigures,
) -> PhaseSignals {
    let inside = (0..seen.len()).filter(|&bin| {
        let start = BIN.saturating_mul(u32::try_from(bin).unwrap_or(u32::MAX));
        start >= from && start.saturating_add(BIN) <= to
    });
    let (mut seconds, mut busy_sum, mut busy_seconds, mut unstamped) = (0, 0.0, 0, 0_u64);
    let [mut delay, mut age, mut queue, mut tasks] = [Readings::default(); 4];
    for signals in inside.filter_map(|bin| second(seen, bin)) {
        seconds += 1;
        delay = Readings::merged(delay, signals.delay_us);
        age = Readings::merged(age, signals.age_us);
        queue = Readings::merged(queue, signals.global_queue);
        tasks = Readings::merged(tasks, signals.alive_tasks);
        unstamped = unstamped
            .saturating_add(signals.missing_stamp)
            .saturating_add(signals.malformed_stamp);
        if let Some(busy) = signals.busy {
            busy_sum += busy;
            busy_seconds += 1;
        }
    }
    let plain = |value: Option<f64>| value.unwrap_or(f64::NAN);
    PhaseSignals {
        stack: stack.to_owned(),
        phase: phase.to_owned(),
        seconds,
        requests: delay.count,
        delay_mean_ms: ms(delay.mean()),
        delay_max_ms: ms(delay.max()),
        age_mean_ms: ms(age.mean()),
        age_max_ms: ms(age.max()),
        queue_mean: plain(queue.mean()),
        queue_max: plain(queue.max()),
        tasks_mean: plain(tasks.mean()),
        tasks_max: plain(tasks.max()),
        busy: if busy_seconds == 0 {
            f64::NAN
        } else {
            busy_sum / f64::from(busy_seconds)
        },
        unstamped,
        p99_ms: figures.p99_ms,
        timeouts: figures.timeouts,
    }
}
