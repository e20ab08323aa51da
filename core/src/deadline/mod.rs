//! [`Deadline`]: when the caller of a request stops waiting, as an instant of the layers'
//! clock; and [`grpc_timeout`], its form on the wire.
//!
//! A server-side layer turns the remaining time a request brings (`grpc-timeout: 250m`) into a
//! deadline by adding it to its clock's current instant, and makes it current with the rest of
//! the request's context ([`RequestContext`](crate::RequestContext)); every layer inside
//! compares it with its own clock's instants; a client-side layer writes what remains of it on
//! each outgoing call. Every layer that reads one must therefore read a clock of the same
//! origin: all [`SystemClock`](crate::SystemClock)s of a process share theirs, as do clones of
//! one `TokioClock` or `ManualClock`.
//!
//! ```
//! use std::time::Duration;
//! use rampart_core::{Clock, Deadline, ManualClock};
//!
//! let clock = ManualClock::new();
//! let deadline = Deadline::after(clock.now(), Duration::from_millis(250));
//! clock.advance(Duration::from_millis(100));
//! assert_eq!(deadline.remaining(clock.now()), Duration::from_millis(150));
//! assert!(!deadline.is_expired(clock.now()));
//! clock.advance(Duration::from_millis(150));
//! assert!(deadline.is_expired(clock.now()));
//! assert_eq!(deadline.remaining(clock.now()), Duration::ZERO);
//! ```

pub mod grpc_timeout;

use std::fmt;
use std::time::Duration;

/// The instant, on the layers' clock, after which a request's caller no longer waits for its
/// answer. Ordered: the earlier deadline is the smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    instant: Duration,
}

impl Deadline {
    /// The deadline at `instant` (read from the layers' clock).
    pub const fn at(instant: Duration) -> Self {
        Self { instant }
    }

    /// The deadline `timeout` after `now`, saturating at the clock's last instant.
    pub fn after(now: Duration, timeout: Duration) -> Self {
        Self {
            instant: now.saturating_add(timeout),
        }
    }

    /// The instant of the deadline.
    pub const fn instant(self) -> Duration {
        self.instant
    }

    /// The time left at `now`: zero once the deadline has passed.
    #[inline]
    pub fn remaining(self, now: Duration) -> Duration {
        self.instant.saturating_sub(now)
    }

    /// Whether the deadline has passed at `now` (no time is left).
    #[inline]
    pub fn is_expired(self, now: Duration) -> bool {
        now >= self.instant
    }
}

/// The request's deadline passed before its answer came: the caller has stopped waiting, and
/// the work was abandoned.
///
/// Returned (boxed in `tower::BoxError`) by the layers that enforce a deadline, and by the
/// retry layer when no time is left for another attempt. It lives here so that every layer
/// recognises it: a retry policy never retries it, the HTTP mapping answers it with 504.
///
/// ```
/// use rampart_core::DeadlineExceeded;
///
/// let err: Box<dyn std::error::Error + Send + Sync> = DeadlineExceeded::new().into();
/// assert!(err.is::<DeadlineExceeded>());
/// assert_eq!(err.to_string(), "deadline exceeded");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadlineExceeded {
    _private: (),
}

impl DeadlineExceeded {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// Whether `error`, or any error in its `source()` chain, is a [`DeadlineExceeded`].
    pub fn is_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(error) = current {
            if error.is::<Self>() {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_expired_from_its_instant_on_and_remaining_never_negative() {
        let deadline = Deadline::at(Duration::from_millis(100));
        assert!(!deadline.is_expired(Duration::from_millis(99)));
        assert!(deadline.is_expired(Duration::from_millis(100)));
        assert_eq!(
            deadline.remaining(Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        assert_eq!(deadline.remaining(Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn a_timeout_past_the_clocks_end_saturates() {
        let deadline = Deadline::after(Duration::from_secs(1), Duration::MAX);
        assert_eq!(deadline.instant(), Duration::MAX);
        assert!(
            Deadline::at(Duration::ZERO) < deadline,
            "the earlier is the smaller"
        );
    }

    #[test]
    fn deadline_exceeded_is_found_through_wrapping_errors() {
        #[derive(Debug)]
        struct Wrapper(DeadlineExceeded);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("call failed")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert!(DeadlineExceeded::is_in(&Wrapper(DeadlineExceeded::new())));
        assert!(!DeadlineExceeded::is_in(&fmt::Error));
    }
}
