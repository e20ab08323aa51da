//! The live server's handler work: a deterministic busy loop burning a calibrated amount of
//! CPU, cut into slices between which a yielding handler gives the runtime its thread back.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How the handler spends its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// Four slices with `tokio::task::yield_now()` between them: the runtime may poll other
    /// tasks (accept connections, read requests, run the limiter) three times per request.
    Yielding,
    /// One slice: the worker thread is the handler's until the work is done.
    Blocking,
}

impl Handler {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Yielding => "yielding",
            Self::Blocking => "blocking",
        }
    }
}

/// How many slices a yielding handler cuts its work into.
pub const SLICES: u32 = 4;

/// One request's CPU work: `rounds` of the busy loop, in slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Rounds of [`spin`] per slice.
    rounds_per_slice: u64,
    handler: Handler,
}

impl Work {
    /// Work of `rounds` busy-loop rounds per request, spent as `handler` does.
    pub fn new(rounds: u64, handler: Handler) -> Self {
        Self {
            rounds_per_slice: (rounds / u64::from(SLICES)).max(1),
            handler,
        }
    }

    /// Work taking about `per_request` of CPU on this machine, measured now: the fastest of
    /// several timed runs of the loop (the one least disturbed by other processes).
    pub fn calibrate(per_request: Duration, handler: Handler) -> Self {
        const PROBE: u64 = 50_000;
        let fastest = (0..20)
            .map(|_| {
                let started = Instant::now();
                spin(PROBE);
                started.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_millis(1))
            .max(Duration::from_nanos(1));
        let rounds = per_request.as_secs_f64() / fastest.as_secs_f64() * PROBE as f64;
        Self::new(rounds as u64, handler)
    }

    /// Rounds of the busy loop per request.
    pub fn rounds(&self) -> u64 {
        self.rounds_per_slice * u64::from(SLICES)
    }

    /// How the work is spent.
    pub fn handler(&self) -> Handler {
        self.handler
    }

    /// Does one request's work: all at once, or in [`SLICES`] slices with a yield to the
    /// runtime between two.
    pub async fn run(self) -> u64 {
        match self.handler {
            Handler::Blocking => spin(self.rounds()),
            Handler::Yielding => {
                let mut folded = 0;
                for slice in 0..SLICES {
                    if slice > 0 {
                        tokio::task::yield_now().await;
                    }
                    folded ^= spin(self.rounds_per_slice);
                }
                folded
            }
        }
    }
}

/// `rounds` of an FNV-style hash over a counter: a loop the compiler cannot shorten, whose
/// time is proportional to `rounds`.
pub fn spin(rounds: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..black_box(rounds) {
        hash ^= round;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    black_box(hash)
}
