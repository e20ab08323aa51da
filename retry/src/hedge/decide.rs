//! [`Hedger`]: when a request is hedged, and whether a hedge may go, given the time and the
//! state; no tower or tokio type.

use std::fmt;
use std::time::Duration;

use rampart_core::{ConfigError, Criticality, Deadline, Outcome};

use super::HedgeConfig;
use super::latency::{LatencyWindow, Quantiles};
use crate::{Budget, PushbackHold};

/// Why a hedge that was due was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HedgeRefusal {
    /// The budget it shares with retries refused the withdrawal.
    Budget,
    /// The request's deadline leaves less than the predicted latency (the window's median).
    Deadline,
    /// The request may not be hedged: the filter said so, or the policy could not copy it.
    Policy,
    /// A server's pushback holds the layer's hedges ([`Hedger::pushback_at`]).
    Pushback,
}

impl HedgeRefusal {
    /// The refusal's `outcome` label: `refused_budget`, `refused_deadline`, `refused_policy`,
    /// `refused_pushback`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Budget => "refused_budget",
            Self::Deadline => "refused_deadline",
            Self::Policy => "refused_policy",
            Self::Pushback => "refused_pushback",
        }
    }
}

/// The hedging rules, without tower types: the latency window the delay is read from, and
/// the budget hedges draw from.
///
/// A request's first copy [deposits](Self::deposit) (unless a retry layer outside did);
/// [`delay_at`](Self::delay_at) says how long to wait before a hedge (`None` while the window
/// is cold); when that wait is over, [`may_send_at`](Self::may_send_at) checks that no server
/// pushback holds hedges, then the deadline, then withdraws from the budget, in that order, so
/// a hedge refused for lack of time spends nothing. Answers feed the window through
/// [`observe_at`](Self::observe_at); a server's pushback holds the hedges through
/// [`pushback_at`](Self::pushback_at).
///
/// ```
/// use std::time::Duration;
/// use rampart_core::Criticality;
/// use rampart_retry::{HedgeConfig, HedgeRefusal, Hedger, RatioConfig};
///
/// let ms = Duration::from_millis;
/// // No reserve, 10 % of requests: 20 requests earn 2 hedges.
/// let budget = RatioConfig { ratio: 0.1, min_per_sec: 0, ..RatioConfig::default() }.build()?;
/// let hedger = Hedger::new(HedgeConfig::default().with_min_samples(20), budget)?;
/// for i in 0..20 {
///     hedger.deposit();
///     hedger.observe_at(ms(i), ms(5 + i)); // 5 to 24 ms, in the first second
/// }
/// assert_eq!(hedger.delay_at(ms(500)), None, "the first second is not over");
/// let now = Duration::from_secs(1);
/// // The 95th percentile: the 19th of 20, 23 ms, read as the top of its bin (≤ 6.25 % above).
/// assert_eq!(hedger.delay_at(now), Some(Duration::from_micros(23_551)));
/// let send = || hedger.may_send_at(now, None, Criticality::CRITICAL);
/// assert_eq!((send(), send(), send()), (Ok(()), Ok(()), Err(HedgeRefusal::Budget)));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
pub struct Hedger<B> {
    config: HedgeConfig,
    budget: B,
    latencies: LatencyWindow,
    /// Until when servers' pushback holds the hedges.
    hold: PushbackHold,
}

impl<B: Budget> Hedger<B> {
    /// Hedges per `config`, within `budget`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    pub fn new(config: HedgeConfig, budget: B) -> Result<Self, ConfigError> {
        config.validate()?;
        // The completed buckets cover the whole window, beside the current one.
        let latencies = LatencyWindow::new(
            config.window_buckets + 1,
            config.bucket(),
            config.quantile,
            config.min_samples,
        );
        Ok(Self {
            config,
            budget,
            latencies,
            hold: PushbackHold::new(),
        })
    }

    /// A new request: deposits into the budget, as a retry layer does for each request. A
    /// request under a retry layer (its context carries an attempt number) was counted there.
    #[inline]
    pub fn deposit(&self) {
        self.budget.deposit();
    }

    /// Reports the outcome of a request's answer to the budget (a token budget earns on a
    /// success and pays on a failure).
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        self.budget.record(outcome);
    }

    /// How long to wait for an answer before a hedge, as of `now`: the configured quantile of
    /// the latencies in the window's completed buckets, at least
    /// [`min_delay`](HedgeConfig::min_delay); `None` while they hold fewer than
    /// [`min_samples`](HedgeConfig::min_samples) (no hedge from a cold window).
    #[inline]
    pub fn delay_at(&self, now: Duration) -> Option<Duration> {
        self.latencies
            .quantiles_at(now)
            .map(|quantiles| self.delay_of(quantiles))
    }

    /// The predicted latency as of `now`: the median of the latencies in the window's
    /// completed buckets; `None` while the window is cold.
    #[inline]
    pub fn predicted_at(&self, now: Duration) -> Option<Duration> {
        self.latencies
            .quantiles_at(now)
            .map(|quantiles| Duration::from_micros(quantiles.median_micros.into()))
    }

    fn delay_of(&self, quantiles: Quantiles) -> Duration {
        Duration::from_micros(quantiles.delay_micros.into()).max(self.config.min_delay)
    }

    /// Counts a latency observed at `now`: an answer's, timed from when its copy was sent, or
    /// how long a losing first copy had run when the winner answered (a lower bound of its
    /// latency, beyond the hedge delay: without it the slowest latencies, cut short by their
    /// hedges, would leave the window and pull the delay down).
    #[inline]
    pub fn observe_at(&self, now: Duration, latency: Duration) {
        self.latencies.record_at(now, latency);
    }

    /// A server answered a copy at `now` with a pushback asking to wait `wait` before trying
    /// again (`Retry-After`, `grpc-retry-pushback-ms`): no hedge is sent until `now + wait`,
    /// as the retry layer holds its retries ([`PushbackHold`]). A wait longer than
    /// [`max_pushback`](HedgeConfig::max_pushback) holds nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_core::Criticality;
    /// use rampart_retry::{HedgeConfig, HedgeRefusal, Hedger, Unlimited};
    ///
    /// let s = Duration::from_secs;
    /// let hedger = Hedger::new(HedgeConfig::default(), Unlimited)?;
    /// hedger.pushback_at(s(1), s(2));
    /// hedger.pushback_at(s(1), s(60)); // past max_pushback: ignored
    /// let send = |at| hedger.may_send_at(at, None, Criticality::CRITICAL);
    /// assert_eq!(send(s(2)), Err(HedgeRefusal::Pushback));
    /// assert_eq!(send(s(3)), Ok(()), "held until 3 s");
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    #[cold]
    pub fn pushback_at(&self, now: Duration, wait: Duration) {
        if wait <= self.config.max_pushback {
            self.hold.extend_to(now.saturating_add(wait));
        }
    }

    /// Whether a hedge of a request of `criticality` with `deadline` may be sent at `now`: no
    /// server pushback holds hedges, the deadline leaves no less than the predicted latency,
    /// then the budget grants a withdrawal ([`Budget::withdraw_for`], spent on `Ok`).
    ///
    /// # Errors
    ///
    /// The refusal: [`HedgeRefusal::Pushback`] or [`HedgeRefusal::Deadline`] (checked first:
    /// nothing is spent), or [`HedgeRefusal::Budget`].
    pub fn may_send_at(
        &self,
        now: Duration,
        deadline: Option<Deadline>,
        criticality: Criticality,
    ) -> Result<(), HedgeRefusal> {
        if self.hold.holds_at(now) {
            return Err(HedgeRefusal::Pushback);
        }
        if let Some(deadline) = deadline {
            let remaining = deadline.remaining(now);
            let predicted = self.predicted_at(now).unwrap_or(Duration::ZERO);
            if remaining.is_zero() || remaining < predicted {
                return Err(HedgeRefusal::Deadline);
            }
        }
        if self.budget.withdraw_for(criticality) {
            Ok(())
        } else {
            Err(HedgeRefusal::Budget)
        }
    }

    /// [`delay_at`](Self::delay_at), and whether this call computed it (the first in a new
    /// bucket), for reporting a change once.
    #[inline]
    pub(crate) fn delay_reporting_at(&self, now: Duration) -> (Option<Duration>, bool) {
        let (quantiles, computed) = self.latencies.read_at(now);
        (
            quantiles.map(|quantiles| self.delay_of(quantiles)),
            computed,
        )
    }
}

impl<B> Hedger<B> {
    /// The budget hedges draw from.
    pub fn budget(&self) -> &B {
        &self.budget
    }

    /// The configuration.
    pub fn config(&self) -> &HedgeConfig {
        &self.config
    }
}

impl<B: fmt::Debug> fmt::Debug for Hedger<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedger")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RatioConfig, Unlimited};

    const MS: Duration = Duration::from_millis(1);

    fn warm<B: Budget>(budget: B) -> Hedger<B> {
        let hedger =
            Hedger::new(HedgeConfig::default().with_min_samples(10), budget).expect("valid");
        for _ in 0..10 {
            hedger.observe_at(Duration::ZERO, 20 * MS);
        }
        hedger
    }

    #[test]
    fn the_delay_is_at_least_the_minimum() {
        let hedger = Hedger::new(
            HedgeConfig::default()
                .with_min_samples(1)
                .with_min_delay(50 * MS),
            Unlimited,
        )
        .expect("valid");
        hedger.observe_at(Duration::ZERO, MS);
        assert_eq!(hedger.delay_at(Duration::from_secs(1)), Some(50 * MS));
        assert_eq!(
            hedger.predicted_at(Duration::from_secs(1)),
            Some(Duration::from_micros(1_023))
        );
    }

    #[test]
    fn a_deadline_shorter_than_the_median_refuses_before_the_budget_is_asked() {
        let budget = RatioConfig {
            ratio: 0.1,
            min_per_sec: 0,
            ..RatioConfig::default()
        }
        .build()
        .expect("valid");
        let hedger = warm(budget);
        for _ in 0..10 {
            hedger.deposit();
        }
        let now = Duration::from_secs(1);
        let median = hedger.predicted_at(now).expect("warm");
        assert_eq!(
            median,
            Duration::from_micros(20_479),
            "20 ms in [19 456, 20 479]"
        );
        let critical = Criticality::CRITICAL;
        let short = Deadline::after(now, median.saturating_sub(Duration::from_micros(1)));
        assert_eq!(
            hedger.may_send_at(now, Some(short), critical),
            Err(HedgeRefusal::Deadline)
        );
        let expired = Deadline::after(now, Duration::ZERO);
        assert_eq!(
            hedger.may_send_at(now, Some(expired), critical),
            Err(HedgeRefusal::Deadline)
        );
        // Nothing spent: the one hedge ten requests earned is still there.
        let enough = Deadline::after(now, median);
        assert_eq!(hedger.may_send_at(now, Some(enough), critical), Ok(()));
        assert_eq!(
            hedger.may_send_at(now, None, critical),
            Err(HedgeRefusal::Budget)
        );
    }

    #[test]
    fn the_delay_follows_a_slowdown_one_bucket_later() {
        let hedger = Hedger::new(HedgeConfig::default(), Unlimited).expect("valid");
        let second = Duration::from_secs(1);
        // Nine seconds of 100 answers of 5 ms.
        for at in 0..9 {
            for _ in 0..100 {
                hedger.observe_at(at * second, 5 * MS);
            }
        }
        let fast = hedger.delay_at(9 * second).expect("warm");
        assert_eq!(fast, Duration::from_micros(5_119));
        // Everything turns 4× slower in second 9: the next second's delay has moved.
        for _ in 0..100 {
            hedger.observe_at(9 * second, 20 * MS);
        }
        assert_eq!(
            hedger.delay_at(9 * second + 999 * MS),
            Some(fast),
            "once per bucket"
        );
        assert_eq!(
            hedger.delay_at(10 * second),
            Some(Duration::from_micros(20_479)),
            "a tenth of the window is slow: the 95th percentile is"
        );
        assert_eq!(
            hedger.predicted_at(10 * second),
            Some(Duration::from_micros(5_119))
        );
    }

    #[test]
    fn the_window_covers_its_whole_length() {
        let hedger =
            Hedger::new(HedgeConfig::default().with_min_samples(1), Unlimited).expect("valid");
        let second = Duration::from_secs(1);
        hedger.observe_at(Duration::ZERO, 20 * MS);
        // The default window is 10 s: second 0 counts until second 10 is over.
        assert_eq!(
            hedger.predicted_at(10 * second),
            Some(Duration::from_micros(20_479))
        );
        assert_eq!(hedger.predicted_at(11 * second), None, "then it has left");
    }

    #[test]
    fn refusals_have_their_labels() {
        assert_eq!(HedgeRefusal::Budget.as_str(), "refused_budget");
        assert_eq!(HedgeRefusal::Deadline.as_str(), "refused_deadline");
        assert_eq!(HedgeRefusal::Policy.as_str(), "refused_policy");
        assert_eq!(HedgeRefusal::Pushback.as_str(), "refused_pushback");
    }
}
