//! From what a live run recorded to figures: per phase (goodput as a share of capacity,
//! percentiles of successes, shed, timeouts) and per second (the same, and what the limiter
//! saw).

use std::time::Duration;

use super::observe::Observation;
use super::stats::LimiterStats;
use crate::sim::{self, Fate, Record, between, quantile_ms};

/// Width of a series bin.
pub const BIN: Duration = Duration::from_secs(1);

/// How many requests ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answered 200 within the timeout.
    pub ok: u64,
    /// Answered 503: shed by the stack.
    pub shed: u64,
    /// No whole answer within the timeout.
    pub timeout: u64,
    /// Another status, or no connection.
    pub error: u64,
}

impl Tally {
    /// Counts `records` by fate.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut tally = Self::default();
        for record in records {
            let count = match record.fate {
                Fate::Served => &mut tally.ok,
                Fate::Refused => &mut tally.shed,
                Fate::TimedOut => &mut tally.timeout,
                Fate::Failed => &mut tally.error,
            };
            *count += 1;
        }
        tally
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.ok + self.shed + self.timeout + self.error
    }
}

/// One phase's figures for one stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseFigures {
    /// Successes per second, as a share of capacity.
    pub goodput: f64,
    /// Median latency of successes, in milliseconds (NaN without successes).
    pub p50_ms: f64,
    /// 99th percentile latency of successes, in milliseconds (NaN without successes).
    pub p99_ms: f64,
    /// Requests sent in the phase.
    pub sent: u64,
    /// Share of the requests sent that were shed.
    pub shed: f64,
    /// Share that timed out.
    pub timeouts: f64,
    /// Share that failed otherwise.
    pub errors: f64,
}

/// The figures of the requests sent in `[from, to)`, against `capacity` requests per second.
pub fn phase(records: &[Record], from: Duration, to: Duration, capacity: f64) -> PhaseFigures {
    let inside: Vec<&Record> = between(records, from, to).collect();
    let tally = Tally::of(inside.iter().copied());
    let successes = sim::success_latencies(inside.iter().copied());
    let seconds = to.saturating_sub(from).as_secs_f64();
    let share = |count: u64| count as f64 / (tally.total() as f64).max(1.0);
    PhaseFigures {
        goodput: tally.ok as f64 / seconds / capacity,
        p50_ms: quantile_ms(successes.clone(), 0.5),
        p99_ms: quantile_ms(successes, 0.99),
        sent: tally.total(),
        shed: share(tally.shed),
        timeouts: share(tally.timeout),
        errors: share(tally.error),
    }
}

/// Per-second series of the client's side of a run of `duration`: `offered` and `goodput`
/// (shares of capacity), `p99_ms` of successes, `shed` and `timeouts` (shares of the requests
/// sent in the second).
pub fn client_series(
    records: &[Record],
    duration: Duration,
    capacity: f64,
) -> Vec<(&'static str, Vec<f64>)> {
    let per_second = BIN.as_secs_f64() * capacity;
    let share = |fate: Fate| {
        move |_: std::ops::Range<Duration>, bin: &[&Record]| {
            bin.iter().filter(|r| r.fate == fate).count() as f64 / (bin.len() as f64).max(1.0)
        }
    };
    vec![
        (
            "offered",
            sim::series(records, duration, BIN, |_, bin| {
                bin.len() as f64 / per_second
            }),
        ),
        (
            "goodput",
            sim::series(records, duration, BIN, |_, bin| {
                bin.iter().filter(|r| r.is_good()).count() as f64 / per_second
            }),
        ),
        (
            "p99_ms",
            sim::series(records, duration, BIN, |_, bin| {
                quantile_ms(sim::success_latencies(bin.iter().copied()), 0.99)
            }),
        ),
        (
            "shed",
            sim::series(records, duration, BIN, share(Fate::Refused)),
        ),
        (
            "timeouts",
            sim::series(records, duration, BIN, share(Fate::TimedOut)),
        ),
    ]
}

/// Per-second series of the server's side, from looks taken at the start of each second and
/// at the end of the run: for second `k`, the limiter as seen at its end (`cpu`, `inflight`,
/// `max_inflight`, `min_rt_ms`, `delay_ms`; NaN without a limiter or an answer), and over it
/// the server process's CPU use (`server_cpu`, in CPUs) and the handler's completions
/// (`handled`, a share of capacity).
pub fn server_series(
    seen: &[Observation],
    duration: Duration,
    capacity: f64,
) -> Vec<(&'static str, Vec<f64>)> {
    let bins = (duration.as_secs_f64() / BIN.as_secs_f64()).ceil() as usize;
    let limiter = |read: fn(&LimiterStats) -> Option<f64>| -> Vec<f64> {
        (0..bins)
            .map(|bin| {
                seen.get(bin + 1)
                    .and_then(|look| look.stats.as_ref()?.limiter.as_ref())
                    .and_then(read)
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };
    let rate = |read: fn(&Observation) -> Option<f64>, per: f64| -> Vec<f64> {
        (0..bins)
            .map(|bin| match (seen.get(bin), seen.get(bin + 1)) {
                (Some(first), Some(last)) => match (read(first), read(last)) {
                    (Some(a), Some(b)) if last.at > first.at => {
                        (b - a) / last.at.saturating_sub(first.at).as_secs_f64() / per
                    }
                    _ => f64::NAN,
                },
                _ => f64::NAN,
            })
            .collect()
    };
    vec![
        ("cpu", limiter(|l| Some(l.cpu))),
        ("inflight", limiter(|l| Some(l.inflight as f64))),
        ("max_inflight", limiter(|l| Some(l.max_inflight as f64))),
        ("min_rt_ms", limiter(|l| Some(l.min_rt_ms))),
        ("delay_ms", limiter(|l| l.delay_ms)),
        ("server_cpu", rate(|look| look.cpu_seconds, 1.0)),
        (
            "handled",
            rate(
                |look| look.stats.as_ref().map(|stats| stats.handled as f64),
                capacity,
            ),
        ),
    ]
}
