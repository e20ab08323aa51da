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
/// # Recent time
///
/// [`recent`](Clock::recent) reads the kernel's coarse monotonic clock on Linux
/// (`CLOCK_MONOTONIC_COARSE`: the time of the kernel's latest tick, one vDSO call, no
/// time-stamp counter read, ~3 ns), at most a tick old ([`recent_resolution`](Clock::recent_resolution):
/// 1–10 ms, 4 ms on most distributions' kernels); elsewhere it is `now`. Its origin is the
/// same moment as `now`'s, but it is a source of its own: compare recent readings with recent
/// readings only.
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
    /// The kernel's coarse clock at the origin, in nanoseconds, and its resolution; `None`
    /// where the kernel does not answer for it (then `recent` is `now`).
    #[cfg(target_os = "linux")]
    coarse: Option<(u64, Duration)>,
}

static BASE: OnceLock<Base> = OnceLock::new();

#[inline]
fn base() -> &'static Base {
    BASE.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.now();
        Base {
            clock,
            origin,
            #[cfg(target_os = "linux")]
            coarse: kernel_coarse_origin(),
        }
    })
}

/// `CLOCK_MONOTONIC_COARSE`: the time the kernel keeps at each of its ticks, read from the
/// vDSO without a system call or a time-stamp counter read.
#[cfg(target_os = "linux")]
#[inline]
fn kernel_coarse_nanos() -> u64 {
    use rustix::time::{ClockId, clock_gettime};
    let time = clock_gettime(ClockId::MonotonicCoarse);
    // A monotonic clock's fields are never negative.
    (time.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(time.tv_nsec as u64)
}

/// The kernel's coarse clock now and its resolution (the kernel's tick, 1–10 ms), if the
/// kernel answers for it: asked once through the fallible call, so that the reads after it,
/// through the infallible one, cannot fail.
#[cfg(target_os = "linux")]
fn kernel_coarse_origin() -> Option<(u64, Duration)> {
    use rustix::time::{ClockId, DynamicClockId, clock_getres, clock_gettime_dynamic};
    clock_gettime_dynamic(DynamicClockId::Known(ClockId::MonotonicCoarse)).ok()?;
    let res = clock_getres(ClockId::MonotonicCoarse);
    let resolution = Duration::new(
        u64::try_from(res.tv_sec).ok()?,
        u32::try_from(res.tv_nsec).ok()?,
    );
    Some((kernel_coarse_nanos(), resolution))
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

    /// On Linux the kernel's coarse clock (`CLOCK_MONOTONIC_COARSE`, one vDSO call: no
    /// time-stamp counter read), at most a kernel tick (1–10 ms) old; elsewhere `now`.
    #[cfg(target_os = "linux")]
    #[inline]
    fn recent(&self) -> Duration {
        match base().coarse {
            Some((origin, _)) => Duration::from_nanos(kernel_coarse_nanos().saturating_sub(origin)),
            None => self.now(),
        }
    }

    /// On Linux the kernel's tick; elsewhere zero (`recent` is `now`).
    #[cfg(target_os = "linux")]
    #[inline]
    fn recent_resolution(&self) -> Duration {
        base()
            .coarse
            .map_or(Duration::ZERO, |(_, resolution)| resolution)
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

    #[test]
    fn recent_readings_never_decrease_and_follow_time() {
        let clock = SystemClock::new();
        let start = clock.recent();
        let mut previous = start;
        let deadline = clock.now() + Duration::from_secs(10);
        // Wait on the clock itself: the loop ends once the recent reading has moved by more
        // than its resolution, and the assertion is that it does so at all.
        while clock.recent() <= start + clock.recent_resolution() && clock.now() < deadline {
            let recent = clock.recent();
            assert!(recent >= previous, "{recent:?} < {previous:?}");
            previous = recent;
            std::hint::spin_loop();
        }
        assert!(clock.recent() > start + clock.recent_resolution());
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
