use std::sync::OnceLock;
use std::time::Duration;

use super::Clock;

/// The process's monotonic clock: the default clock of every rampart component.
///
/// It reads the CPU's time-stamp counter where the CPU declares it invariant (constant rate,
/// not stopped in sleep states: every x86-64 server CPU of the last decade, and the `AArch64`
/// system counter), scaled to nanoseconds by a calibration against the operating system's
/// monotonic clock. Elsewhere it reads the operating system's monotonic clock, exactly as
/// [`std::time::Instant`] does. The [`quanta`] crate provides both; its calibration runs once
/// per process (typically 10–20 ms, at most 200 ms) when the first `SystemClock` is built.
///
/// # Why not `std::time::Instant`
///
/// On a virtual machine `Instant::now()` goes through the kernel's virtual-dynamic clock code
/// and costs ~24 ns (measured on our 2-vCPU KVM benchmark machine, where the TSC read costs
/// ~10 ns: see the `window` benchmark's `clock` group). A clock read is the most expensive step of
/// a request's fast path, so the cheaper correct source wins.
///
/// # Origin
///
/// All `SystemClock`s of a process share one origin (the first clock built), so instants
/// read from different instances are comparable. `SystemClock` is a zero-sized, `Copy` handle.
///
/// ```
/// use rampart_core::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// let a = clock.now();
/// let b = SystemClock::new().now();
/// assert!(b >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    _private: (),
}

struct Base {
    clock: quanta::Clock,
    origin: quanta::Instant,
}

static BASE: OnceLock<Base> = OnceLock::new();

#[inline]
fn base() -> &'static Base {
    BASE.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.now();
        Base { clock, origin }
    })
}

impl SystemClock {
    /// The process's clock. The first call in a process calibrates the time-stamp counter.
    pub fn new() -> Self {
        base();
        Self { _private: () }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        let base = base();
        base.clock.now().saturating_duration_since(base.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_decrease_on_one_thread() {
        let clock = SystemClock::new();
        let mut previous = clock.now();
        for _ in 0..10_000 {
            let now = clock.now();
            assert!(now >= previous, "{now:?} < {previous:?}");
            previous = now;
        }
    }

    fn busy_wait(for_at_least: Duration) {
        let start = std::time::Instant::now();
        while start.elapsed() < for_at_least {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn measures_the_same_intervals_as_the_operating_system_clock() {
        // Not a timing test: each interval of one clock is read *inside* an interval of the
        // other, so the inequalities hold however the thread is preempted; the slack covers
        // the calibration error (parts per million) and two reads.
        let clock = SystemClock::new();
        let slack = |d: Duration| d / 100 + Duration::from_micros(2);

        let std_start = std::time::Instant::now();
        let ours_start = clock.now();
        busy_wait(Duration::from_millis(5));
        let ours = clock.now().saturating_sub(ours_start);
        let outer = std_start.elapsed();
        assert!(
            ours <= outer + slack(outer),
            "ours {ours:?} inside std {outer:?}"
        );

        let ours_start = clock.now();
        let std_start = std::time::Instant::now();
        busy_wait(Duration::from_millis(5));
        let inner = std_start.elapsed();
        let ours = clock.now().saturating_sub(ours_start);
        assert!(
            ours + slack(inner) >= inner,
            "ours {ours:?} around std {inner:?}"
        );
    }
}
