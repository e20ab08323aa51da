use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Clock, SystemClock, saturating_nanos};

/// How often the background thread refreshes the coarse time.
const TICK: Duration = Duration::from_millis(1);

/// Marks a coarse time that no thread refreshes (the thread could not be started).
const NO_TICKER: u64 = u64::MAX;

/// The latest [`SystemClock`] reading, in nanoseconds, as published by the ticker thread.
static COARSE_NANOS: AtomicU64 = AtomicU64::new(NO_TICKER);
static TICKER: OnceLock<()> = OnceLock::new();

/// A millisecond-grade clock whose read is a single memory load.
///
/// One background thread per process (named `rampart-coarse-clock`, started by the first
/// `CoarseClock::new()`) copies [`SystemClock`]'s reading into a shared variable every
/// millisecond; `now()` reads that variable. Readings therefore lag the true time by up to
/// about a millisecond, which is invisible to a rolling window whose buckets are 100 ms wide
/// and saves the ~10 ns of a TSC read on every event.
///
/// It shares [`SystemClock`]'s origin, so instants from the two clocks are comparable (the
/// coarse one is at most about a millisecond behind). If the thread cannot be started, `now()`
/// reads [`SystemClock`] instead: slower, never wrong.
///
/// # Cost
///
/// The ticker wakes a thousand times a second for the life of the process: about 2 % of one
/// core on our 2-vCPU virtual machine, mostly in the kernel's timer handling. Choose it where
/// a component reads the clock on every request at high rates and its buckets are wide, not
/// by default.
///
/// ```
/// use rampart_core::{Clock, CoarseClock, SystemClock};
///
/// let coarse = CoarseClock::new();
/// let precise = SystemClock::new();
/// assert!(coarse.now() <= precise.now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CoarseClock {
    _private: (),
}

impl CoarseClock {
    /// The process's coarse clock; the first call starts its ticker thread.
    pub fn new() -> Self {
        TICKER.get_or_init(start_ticker);
        Self { _private: () }
    }

    /// The interval at which the coarse time is refreshed: its resolution.
    pub const fn resolution() -> Duration {
        TICK
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

fn publish(clock: SystemClock) {
    let now = saturating_nanos(clock.now()).min(NO_TICKER - 1);
    // `fetch_max` keeps the value monotonic even if a stale store were to race a newer one.
    COARSE_NANOS.fetch_max(now, Ordering::Relaxed);
}

fn start_ticker() {
    let clock = SystemClock::new();
    // Publish before the thread runs, so the very first read is already current. The
    // sentinel is larger than any reading, so the first store has to replace it, not max it.
    COARSE_NANOS.store(
        saturating_nanos(clock.now()).min(NO_TICKER - 1),
        Ordering::Relaxed,
    );
    let spawned = std::thread::Builder::new()
        .name("rampart-coarse-clock".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                publish(clock);
            }
        });
    if spawned.is_err() {
        COARSE_NANOS.store(NO_TICKER, Ordering::Relaxed);
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Duration {
        match COARSE_NANOS.load(Ordering::Relaxed) {
            NO_TICKER => SystemClock::new().now(),
            nanos => Duration::from_nanos(nanos),
        }
    }

    /// A tick: its readings stand still between them.
    #[inline]
    fn recent_resolution(&self) -> Duration {
        TICK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_runs_ahead_of_the_system_clock_and_never_decreases() {
        let coarse = CoarseClock::new();
        let system = SystemClock::new();
        let mut previous = coarse.now();
        for _ in 0..10_000 {
            let now = coarse.now();
            assert!(now >= previous);
            assert!(now <= system.now());
            previous = now;
        }
    }

    #[test]
    fn moves_forward_while_time_passes() {
        // Wait on the clock itself, not on a sleep: the loop ends as soon as the ticker has
        // published a newer time, and the assertion is that it does so at all.
        let coarse = CoarseClock::new();
        let start = coarse.now();
        let system = SystemClock::new();
        let deadline = system.now() + Duration::from_secs(10);
        while coarse.now() == start && system.now() < deadline {
            std::thread::yield_now();
        }
        assert!(coarse.now() > start, "the coarse clock never moved");
    }
}
