use std::time::Duration;

use super::Clock;

/// A clock that reads `tokio::time::Instant`, so it follows `tokio::time::pause()`.
///
/// Under paused time (`#[tokio::test(start_paused = true)]`, or `tokio::time::pause()`), time
/// only moves when the test advances it or when the runtime auto-advances to the next timer,
/// so a simulation that reads this clock is deterministic and runs a simulated minute in
/// milliseconds. Outside paused time it reads the operating system's monotonic clock.
///
/// The origin is the instant the clock was built; clones share it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use rampart_core::{Clock, TokioClock};
///
/// let clock = TokioClock::new();
/// tokio::time::sleep(Duration::from_secs(3600)).await; // paused: returns at once
/// assert_eq!(clock.now(), Duration::from_secs(3600));
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is tokio's current instant.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// A clock whose origin is `origin`.
    pub fn with_origin(origin: tokio::time::Instant) -> Self {
        Self { origin }
    }

    /// The tokio instant this clock counts from.
    pub fn origin(&self) -> tokio::time::Instant {
        self.origin
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time_exactly() {
        let clock = TokioClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(1234)).await;
        assert_eq!(clock.now(), Duration::from_millis(1234));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), Duration::from_millis(61_234));
    }

    #[tokio::test(start_paused = true)]
    async fn an_origin_in_the_future_reads_as_zero() {
        let clock = TokioClock::with_origin(tokio::time::Instant::now() + Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(clock.now(), Duration::from_secs(1));
    }
}
