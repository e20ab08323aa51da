//! The scheduling-delay signal: how late the server's runtime runs work that is ready.
//!
//! On a tokio server, a request waits in the socket and in the runtime's run queue before any
//! tower layer sees it. While it waits it is invisible to the limiter's in-flight count: with a
//! handler that never yields (or a runtime whose few workers are saturated) the limiter sees one
//! request in flight while hundreds queue in front of it and their clients time out. The CPU
//! signal says the process is busy, but not that the busy-ness has turned into waiting.
//!
//! A [`SchedulingDelay`] measures that wait directly, as the Hodor overload detector of
//! `LinkedIn` measures a thread's lag: a heartbeat task (`DelayProbe`, feature `tokio`) asks
//! the runtime to wake it at a given instant and notes how late it actually runs. Work that becomes ready now (a request whose
//! bytes just arrived) waits about as long. The limiter sheds every request while the delay
//! exceeds [`BbrConfig::max_delay`](crate::BbrConfig::max_delay): a shed request costs the
//! runtime a few microseconds instead of a whole handler, so the queue drains.
//!
//! A late heartbeat alone also comes from outside: a busy host that preempts the process
//! makes it late without any queue of the server's own. So the probe reads no delay while
//! the runtime's workers are less than 80 % busy (a runtime with a queue in front of its
//! handlers is a busy one). A source of your own should do the same.
//!
//! The reading is live: while the heartbeat is overdue, the delay is the time since it was due
//! (it grows while the runtime is stuck, without waiting for the heartbeat to run); once it
//! has run, the delay it measured holds until its next due instant.
//!
//! ```
//! use std::time::Duration;
//! use rampart_ratelimit::{ManualDelay, SchedulingDelay};
//!
//! let delay = ManualDelay::new();
//! assert_eq!(delay.delay(Duration::from_secs(1)), Duration::ZERO);
//! delay.set(Duration::from_millis(40));
//! assert_eq!(delay.delay(Duration::from_secs(1)), Duration::from_millis(40));
//! ```

#[cfg(feature = "tokio")]
pub(crate) mod probe;
pub(crate) mod source;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tokio")]
use self::probe::DelayProbe;
use self::source::SchedulingDelay;

/// The interval of the heartbeat a limiter with this `max_delay` starts: a tenth of it, from
/// 1 ms (tokio's timer resolution) to 50 ms; 1 ms for the default 10 ms.
///
/// Short, because what the heartbeat measured holds until its next due instant: a long
/// interval lets a late runtime admit work for that long after each beat. In the
/// `overload-runtime-blocking` lab scenario (a handler that never yields) goodput at 3×
/// capacity was 91 % with a 1 ms heartbeat, 87 % with 2 ms, 78 % with 5 ms and 66 % with
/// 10 ms. A beat costs one timer wake (about a microsecond of CPU).
pub fn probe_interval(max_delay: Duration) -> Duration {
    (max_delay / 10).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

/// A heartbeat on the current tokio runtime, beating every [`probe_interval`], or `None`
/// outside a runtime or without the `tokio` feature.
pub(crate) fn probe_current_runtime(max_delay: Duration) -> Option<Arc<dyn SchedulingDelay>> {
    #[cfg(feature = "tokio")]
    {
        DelayProbe::spawn(rampart_core::SystemClock::new(), probe_interval(max_delay))
            .ok()
            .map(|probe| Arc::new(probe) as Arc<dyn SchedulingDelay>)
    }
    #[cfg(not(feature = "tokio"))]
    {
        let _ = max_delay;
        None
    }
}
