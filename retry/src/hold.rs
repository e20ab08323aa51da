//! The pushback hold: a server's pushback pauses all of a layer's retries, not only the
//! pushed-back request's.
//!
//! A server that answers "retry after 1 s" says it is overloaded for that long. Each of its
//! clients' requests learns it alone, but they all retry toward the same server: if each honoured
//! it only for itself, a client sending five requests a second into a server that sheds 40 % of
//! them would still retry two a second, into the overload. So with
//! [`hold_on_pushback`](crate::RetryConfig::hold_on_pushback) (the default), a pushback holds
//! the layer's retries until its delay is over: no retry is granted while a pushback holds,
//! and none is sent while one does (a retry decided before a newer pushback arrived is dropped
//! when its wait ends). The pushed-back request's own retry waits exactly the delay, so it goes
//! ahead when the pushback stayed alone; under sustained pushback retries stop, as the server
//! asked, and resume by themselves a delay after the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::saturating_nanos;

/// Until when a layer's retries are held, on the layer's clock.
///
/// ```
/// use std::time::Duration;
/// use rampart_retry::PushbackHold;
///
/// let s = Duration::from_secs;
/// let hold = PushbackHold::new();
/// assert!(!hold.ever_held() && !hold.holds_at(s(5)));
/// hold.extend_to(s(10));
/// hold.extend_to(s(7)); // a shorter pushback does not shorten the hold
/// assert!(hold.ever_held());
/// assert!(hold.holds_at(s(9)));
/// assert!(!hold.holds_at(s(10)), "the delay is over at its end");
/// ```
#[derive(Debug, Default)]
pub struct PushbackHold {
    /// The end of the hold in nanoseconds since the clock's origin, plus one, so that 0 means
    /// never held (a hold ending at the origin is over before anything can be held).
    until: AtomicU64,
}

impl PushbackHold {
    /// A hold that holds nothing yet.
    pub const fn new() -> Self {
        Self {
            until: AtomicU64::new(0),
        }
    }

    /// Holds retries until `until` at least (a later end already set stays).
    #[inline]
    pub fn extend_to(&self, until: Duration) {
        let end = saturating_nanos(until).saturating_add(1);
        self.until.fetch_max(end, Ordering::Relaxed);
    }

    /// Whether retries are held at `now`: a hold ends at its instant.
    #[inline]
    pub fn holds_at(&self, now: Duration) -> bool {
        saturating_nanos(now).saturating_add(1) < self.until.load(Ordering::Relaxed)
    }

    /// Whether any pushback has ever held the retries: until then, nothing needs the time.
    #[inline]
    pub fn ever_held(&self) -> bool {
        self.until.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_hold_covers_its_span_and_ends_at_its_instant() {
        let hold = PushbackHold::new();
        hold.extend_to(100 * MS);
        assert!(hold.holds_at(Duration::ZERO));
        assert!(hold.holds_at(Duration::from_nanos(99_999_999)));
        assert!(!hold.holds_at(100 * MS));
        assert!(!hold.holds_at(200 * MS));
    }

    #[test]
    fn the_latest_end_wins_whatever_the_order() {
        let hold = PushbackHold::new();
        hold.extend_to(300 * MS);
        hold.extend_to(200 * MS);
        assert!(hold.holds_at(250 * MS));
        hold.extend_to(400 * MS);
        assert!(hold.holds_at(350 * MS) && !hold.holds_at(400 * MS));
    }

    #[test]
    fn a_hold_at_the_origin_or_past_the_representable_is_well_defined() {
        let hold = PushbackHold::new();
        hold.extend_to(Duration::ZERO);
        assert!(hold.ever_held(), "it was asked for");
        assert!(!hold.holds_at(Duration::ZERO));
        hold.extend_to(Duration::MAX);
        assert!(hold.holds_at(Duration::from_secs(1 << 30)));
    }
}
