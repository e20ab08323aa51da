//! [`QueueDiscipline`]: which waiting request a [`SimBackend`](super::SimBackend)'s free worker
//! takes next, and which waiting requests its queue drops instead of serving.

use std::fmt;
use std::time::Duration;

use rampart_core::{ConfigError, check};
use tokio::time::Instant;

/// How a [`SimBackend`](super::SimBackend)'s queue hands waiting requests to its workers.
///
/// The default is first in, first out, and drops nothing: the backend then books each request
/// at arrival, exactly as it always has. Any other discipline decides at each worker's release,
/// among the requests waiting then:
///
/// - [`QueueOrder::AdaptiveLifo`] serves the newest request while the queue is backed up (its
///   oldest request has waited longer than a bound), the oldest otherwise: under overload the
///   requests served are the fresh ones, whose callers still wait.
/// - [`CoDel`] bounds the time a request may wait, as Facebook's servers do: the queue's timeout
///   is the interval, and becomes the target while the queue is standing (the shortest wait of
///   the requests taken over the last interval exceeded the target); a request that waited
///   longer than the timeout is dropped when a worker would take it, with [`QueueTimeout`].
/// - `drop_expired` drops, when a worker would take it, a request whose deadline has passed
///   (the deadline current when the request was called, read by a backend built with
///   [`SimBackend::new_with`](super::SimBackend::new_with)), with
///   [`DeadlineExceeded`](rampart_core::DeadlineExceeded).
///
/// A dropped request costs no worker time.
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::{CoDel, QueueDiscipline, QueueOrder, SimConfig};
///
/// let ms = Duration::from_millis;
/// let discipline = QueueDiscipline::default()
///     .with_order(QueueOrder::AdaptiveLifo { backed_up: ms(5) })
///     .with_codel(CoDel::new(ms(5), ms(100)))
///     .with_drop_expired(true);
/// let config = SimConfig::default().with_discipline(discipline);
/// assert!(config.validate().is_ok());
/// assert!(QueueDiscipline::default().is_fifo());
/// assert!(!discipline.is_fifo());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDiscipline {
    /// The order in which waiting requests are taken.
    pub order: QueueOrder,
    /// A bound on the time a request may wait, if any.
    pub codel: Option<CoDel>,
    /// Whether a request whose deadline has passed is dropped instead of served.
    pub drop_expired: bool,
}

/// The order in which a queue's waiting requests are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOrder {
    /// The oldest first.
    #[default]
    Fifo,
    /// The newest first while the oldest waiting request has waited longer than `backed_up`;
    /// the oldest first otherwise.
    AdaptiveLifo {
        /// How long the oldest request must have waited for the queue to count as backed up.
        backed_up: Duration,
    },
}

/// Facebook's variant of `CoDel` on a server's queue: the timeout of a waiting request is
/// `interval`, and `target` while the queue stands.
///
/// At the end of each interval (counted from the first request taken) the queue stands if the
/// shortest wait of the requests taken during it (zero for one that found a worker free)
/// exceeded `target`. Requests that waited longer than the timeout are dropped as a worker
/// would take them. Facebook runs it with a 5 ms target and a 100 ms interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoDel {
    /// The wait a standing queue allows.
    pub target: Duration,
    /// How long the shortest wait is watched before the queue's state is decided again, and the
    /// wait a queue that does not stand allows.
    pub interval: Duration,
}

impl CoDel {
    /// A bound of `target` on waiting while the queue stands, decided every `interval`.
    pub const fn new(target: Duration, interval: Duration) -> Self {
        Self { target, interval }
    }
}

impl QueueDiscipline {
    /// This discipline taking requests in `order`.
    #[must_use]
    pub fn with_order(self, order: QueueOrder) -> Self {
        Self { order, ..self }
    }

    /// This discipline bounding waits with `codel`.
    #[must_use]
    pub fn with_codel(self, codel: CoDel) -> Self {
        Self {
            codel: Some(codel),
            ..self
        }
    }

    /// This discipline dropping (or not) requests whose deadline has passed.
    #[must_use]
    pub fn with_drop_expired(self, drop_expired: bool) -> Self {
        Self {
            drop_expired,
            ..self
        }
    }

    /// Whether this is the default: first in, first out, dropping nothing.
    pub fn is_fifo(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the durations: `CoDel`'s target and interval must be positive.
    ///
    /// # Errors
    ///
    /// A zero `CoDel` target (`discipline.codel.target`) or interval
    /// (`discipline.codel.interval`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(codel) = self.codel {
            check::positive("discipline.codel.target", codel.target)?;
            check::positive("discipline.codel.interval", codel.interval)?;
        }
        Ok(())
    }
}

/// A [`SimBackend`](super::SimBackend) whose queue bounds waiting with [`CoDel`] dropped the
/// request: it had waited longer than the queue's timeout when a worker would have taken it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTimeout {
    waited: Duration,
}

impl QueueTimeout {
    /// The drop of a request that had waited `waited`.
    pub const fn new(waited: Duration) -> Self {
        Self { waited }
    }

    /// How long the request had waited.
    pub const fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for QueueTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulated backend dropped the request after {:?} in its queue",
            self.waited
        )
    }
}

impl std::error::Error for QueueTimeout {}

/// `CoDel`'s running state: the shortest wait of the current interval and the timeout it set.
#[derive(Debug)]
pub(crate) struct CoDelState {
    codel: CoDel,
    /// When the current interval ends; `None` before the first request is taken.
    interval_end: Option<Instant>,
    shortest: Duration,
    standing: bool,
}

impl CoDelState {
    pub(crate) fn new(codel: CoDel) -> Self {
        Self {
            codel,
            interval_end: None,
            shortest: Duration::MAX,
            standing: false,
        }
    }

    /// Notes a request taken at `now` after waiting `waited`; whether it is to be dropped.
    pub(crate) fn take(&mut self, now: Instant, waited: Duration) -> bool {
        match self.interval_end {
            None => self.interval_end = Some(now + self.codel.interval),
            Some(end) if now >= end => {
                self.standing = self.shortest > self.codel.target;
                self.shortest = Duration::MAX;
                // The next interval starts now: an idle gap does not count as intervals.
                self.interval_end = Some(now + self.codel.interval);
            }
            Some(_) => {}
        }
        self.shortest = self.shortest.min(waited);
        let timeout = if self.standing {
            self.codel.target
        } else {
            self.codel.interval
        };
        waited > timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_zero_codel_duration_is_a_config_error_naming_it() {
        let target = QueueDiscipline::default().with_codel(CoDel::new(Duration::ZERO, MS));
        assert_eq!(
            target.validate().unwrap_err().field(),
            "discipline.codel.target"
        );
        let interval = QueueDiscipline::default().with_codel(CoDel::new(MS, Duration::ZERO));
        assert_eq!(
            interval.validate().unwrap_err().field(),
            "discipline.codel.interval"
        );
    }

    #[test]
    fn codel_drops_past_the_interval_until_the_queue_stands_then_past_the_target() {
        let start = Instant::now();
        let mut codel = CoDelState::new(CoDel::new(5 * MS, 100 * MS));
        // First interval: the queue does not stand yet; only waits beyond 100 ms are dropped.
        assert!(!codel.take(start, 20 * MS));
        assert!(!codel.take(start + 50 * MS, 90 * MS));
        assert!(codel.take(start + 60 * MS, 101 * MS));
        // The shortest wait of that interval, 20 ms, exceeded the target: the queue stands.
        assert!(codel.take(start + 100 * MS, 6 * MS));
        assert!(!codel.take(start + 110 * MS, 5 * MS));
        // A request that found a worker free (zero wait) ends the standing at the next interval.
        assert!(!codel.take(start + 120 * MS, Duration::ZERO));
        assert!(codel.take(start + 150 * MS, 6 * MS));
        assert!(!codel.take(start + 200 * MS, 6 * MS));
    }
}
