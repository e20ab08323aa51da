//! [`Retrier`]: the retry decision, without tower or tokio.
//!
//! After each attempt of a request, a [`Retrier`] says what follows ([`Next`]): stop (and
//! why), or retry a copy of the request after a wait. It applies the rules in a fixed order:
//! the policy's [`Decision`], a server's pushback holding the layer's retries, the attempt
//! limit, the existence of a copy, for a request with a
//! deadline the time left (now, and once the wait is over), the budget (asked last, so that
//! only a retry that would otherwise happen spends it), then the wait (the policy's, or the
//! [`Backoff`]'s drawn from the request's jitter generator).
//!
//! For requests with a deadline it also predicts how long an attempt takes: the smoothed
//! latency of the successful attempts it was told of ([`Retrier::observe`]).
//!
//! The layer's response future only sequences: it runs the attempt, reports its outcome
//! ([`Retrier::record`]), asks the policy for its decision and the retrier for the next step,
//! sleeps and calls again. Everything here takes plain values, so it can be tested and
//! benchmarked alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastrand::Rng;
use rampart_core::{ConfigError, Criticality, Outcome, RequestContext, saturating_nanos};

use crate::{Budget, Decision, PushbackHold, RetryConfig};

mod attempts;

pub use self::attempts::{Attempts, Next, StopReason};

/// Spreads consecutive requests' jitter seeds over the whole `u64` range.
const SEED_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The weight of a new sample in the predicted latency: 1/2^`SMOOTHING_SHIFT` = 1/8, as TCP's
/// smoothed round-trip time (RFC 6298).
const SMOOTHING_SHIFT: u32 = 3;

/// The retry rules of a layer: its configuration's attempt limit and backoff, its budget,
/// and the source of its requests' jitter seeds.
///
/// Shared by every request; each request keeps its own [`Attempts`].
///
/// ```
/// use rampart_core::Outcome;
/// use rampart_retry::{Decision, Next, RetryConfig, Retrier, StopReason, TokenConfig};
///
/// let retrier = Retrier::new(RetryConfig::default().with_seed(1), TokenConfig::default().build()?)?;
/// let mut attempts = retrier.start(); // the first attempt is under way
/// let mut copy = Some("GET /stock/7"); // a copy for a retry, since one may follow
///
/// // The first attempt failed, and the policy would retry it.
/// retrier.record(Outcome::Failure);
/// let Next::Retry { wait, request } = retrier.decide(&mut attempts, Decision::Retry, &mut copy) else {
///     panic!("the budget is full");
/// };
/// assert_eq!(request, "GET /stock/7");
/// assert!(wait <= std::time::Duration::from_millis(25)); // the first backoff's ceiling
/// assert_eq!(attempts.made(), 2);
///
/// // The retry succeeded: the policy stops.
/// retrier.record(Outcome::Success);
/// let next = retrier.decide(&mut attempts, Decision::Stop, &mut None::<&str>);
/// assert_eq!(next, Next::Stop(StopReason::Policy));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Retrier<B> {
    config: RetryConfig,
    budget: B,
    /// The next request's jitter seed.
    seeds: AtomicU64,
    /// The predicted latency of an attempt, in nanoseconds: the smoothed latency of the
    /// successful attempts observed; 0 before the first.
    predicted: AtomicU64,
    /// Until when servers' pushback holds the retries.
    hold: PushbackHold,
}

impl<B: Budget> Retrier<B> {
    /// Retries per `config`, within `budget`; the jitter seeds start at `config.seed`, or at a
    /// random one.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    pub fn new(config: RetryConfig, budget: B) -> Result<Self, ConfigError> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(Self {
            config,
            budget,
            seeds: AtomicU64::new(seed),
            predicted: AtomicU64::new(0),
            hold: PushbackHold::new(),
        })
    }

    /// A new request, its first attempt under way: deposits into the budget, unless the
    /// request is already [charged](RequestContext::charged) to it (a layer outside sharing
    /// the budget deposited). The request's criticality and deadline are the current
    /// [`RequestContext`]'s (read once; outside any scope: [`Criticality::CRITICAL`] and no
    /// deadline).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rampart_core::RequestContext;
    /// use rampart_retry::{Budget, RatioConfig, Retrier, RetryConfig};
    ///
    /// // Each request earns one retry.
    /// let earning = RatioConfig { ratio: 1.0, min_per_sec: 0, ..RatioConfig::default() };
    /// let budget = Arc::new(earning.build()?);
    /// let retrier = Retrier::new(RetryConfig::default(), Arc::clone(&budget))?;
    /// retrier.start();
    /// assert_eq!(budget.snapshot().remaining, 1.0);
    /// {
    ///     // A request that a layer sharing the budget deposited for already.
    ///     let _charged = RequestContext::new().with_charged(budget.id()).enter();
    ///     retrier.start();
    /// }
    /// assert_eq!(budget.snapshot().remaining, 1.0, "no second deposit");
    /// retrier.start();
    /// assert_eq!(budget.snapshot().remaining, 2.0);
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn start(&self) -> Attempts {
        let context = RequestContext::current();
        let deposit = !context.is_charged_to(self.budget.id());
        self.start_charging(context.criticality().unwrap_or_default(), deposit)
            .with_deadline(context.deadline())
    }

    /// A new request of `criticality`, its first attempt under way: deposits into the budget.
    ///
    /// ```
    /// use rampart_core::{Criticality, Outcome};
    /// use rampart_retry::{Decision, Next, RatioConfig, Retrier, RetryConfig, StopReason};
    ///
    /// // No reserve; 10 requests at a ratio of 0.4 earn 4 retries.
    /// let budget = RatioConfig { ratio: 0.4, min_per_sec: 0, ..RatioConfig::default() }.build()?;
    /// let retrier = Retrier::new(RetryConfig::default(), budget)?;
    /// let retry = |criticality| {
    ///     let mut attempts = retrier.start_for(criticality);
    ///     retrier.record(Outcome::Failure);
    ///     retrier.decide(&mut attempts, Decision::Retry, &mut Some(()))
    /// };
    /// // Sheddable retries may spend only half of what the budget earned: 2 of the 4.
    /// let granted = (0..10)
    ///     .filter(|_| matches!(retry(Criticality::SHEDDABLE), Next::Retry { .. }))
    ///     .count();
    /// assert_eq!(granted, 2);
    /// assert_eq!(retry(Criticality::SHEDDABLE), Next::Stop(StopReason::BudgetExhausted));
    /// // A critical request still gets its retry.
    /// assert!(matches!(retry(Criticality::CRITICAL), Next::Retry { .. }));
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    pub fn start_for(&self, criticality: Criticality) -> Attempts {
        self.start_charging(criticality, true)
    }

    /// A new request of `criticality`, its first attempt under way, depositing into the budget
    /// if `deposit` (not when a layer outside sharing the budget did).
    #[inline]
    pub(crate) fn start_charging(&self, criticality: Criticality, deposit: bool) -> Attempts {
        if deposit {
            self.budget.deposit();
        }
        Attempts {
            made: 1,
            previous_wait: Duration::ZERO,
            rng: None,
            criticality,
            deadline: None,
        }
    }

    /// Whether another attempt may follow the ones `attempts` made: whether a copy of the
    /// request is worth keeping.
    #[inline]
    pub fn allows_another(&self, attempts: &Attempts) -> bool {
        attempts.made < self.config.max_attempts
    }

    /// Reports an attempt's outcome to the budget (a token budget earns on a success and pays
    /// on a failure).
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        self.budget.record(outcome);
    }

    /// Reports the latency of a successful attempt to the prediction: the predicted latency
    /// moves an eighth of the way to it (the first sets it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_retry::{Retrier, RetryConfig, Unlimited};
    ///
    /// let retrier = Retrier::new(RetryConfig::default(), Unlimited)?;
    /// assert_eq!(retrier.predicted(), Duration::ZERO); // nothing observed yet
    /// retrier.observe(Duration::from_millis(80));
    /// retrier.observe(Duration::from_millis(160));
    /// assert_eq!(retrier.predicted(), Duration::from_millis(90)); // 80 + (160 - 80) / 8
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    pub fn observe(&self, latency: Duration) {
        // At least a nanosecond, so that 0 keeps meaning "nothing observed".
        let sample = saturating_nanos(latency).max(1);
        let _ = self
            .predicted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else if sample >= old {
                    old + ((sample - old) >> SMOOTHING_SHIFT)
                } else {
                    (old - ((old - sample) >> SMOOTHING_SHIFT)).max(1)
                })
            });
    }

    /// The predicted latency of an attempt: the smoothed latency of the successful attempts
    /// [observed](Self::observe), zero before the first.
    #[inline]
    pub fn predicted(&self) -> Duration {
        Duration::from_nanos(self.predicted.load(Ordering::Relaxed))
    }

    /// Whether an attempt of `attempts`' request starting at `now` can finish before its
    /// deadline: some time remains, and no less than the [predicted](Self::predicted) latency.
    /// Always true for a request without a deadline.
    #[inline]
    pub fn time_for_attempt(&self, attempts: &Attempts, now: Duration) -> bool {
        attempts
            .deadline
            .is_none_or(|deadline| self.fits(deadline.remaining(now)))
    }

    /// Whether an attempt fits in `remaining`: some time, and no less than the predicted
    /// latency.
    fn fits(&self, remaining: Duration) -> bool {
        !remaining.is_zero() && remaining >= self.predicted()
    }

    /// What follows the last of `attempts`, which the policy judged `decision`: a retry of the
    /// request in `copy` (taken out of it), or a stop. Neither the request's deadline nor
    /// servers' pushback holds are consulted (both need the time): use
    /// [`decide_at`](Self::decide_at).
    ///
    /// A retry needs, in this order: a policy asking for one, an attempt left, a copy, and a
    /// withdrawal from the budget, as the request's criticality
    /// ([`Budget::withdraw_for`]: lower classes stop first as the budget runs low). Its wait is the one the policy asked for
    /// ([`Decision::RetryAfter`]; one longer than [`max_pushback`](RetryConfig::max_pushback),
    /// or [`Decision::DontRetry`], stops with [`StopReason::Pushback`] before anything else is
    /// asked) or the backoff's, drawn from the request's jitter
    /// generator (seeded from the layer's seeds on the first retry granted). A granted retry
    /// counts in [`Attempts::made`].
    #[inline]
    pub fn decide<Req>(
        &self,
        attempts: &mut Attempts,
        decision: Decision,
        copy: &mut Option<Req>,
    ) -> Next<Req> {
        self.decide_within(attempts, decision, copy, None)
    }

    /// What follows the last of `attempts`, ended at `now`, which the policy judged
    /// `decision`: as [`decide`](Self::decide), and for a request with a deadline, no retry
    /// that cannot finish before it ([`StopReason::NoTimeLeft`]). After the copy and before the
    /// budget (which a retry skipped for lack of time does not spend), such a request needs
    /// some time left at `now`, no less than the [predicted](Self::predicted) latency, and the
    /// same once the wait is over: a wait that would end after the deadline, or leave less than
    /// the predicted latency, is not taken. (Its wait is drawn before the budget is asked.)
    ///
    /// With [`hold_on_pushback`](RetryConfig::hold_on_pushback), a pushback
    /// ([`Decision::RetryAfter`]) holds the layer's retries until `now` plus its wait, and no
    /// retry is granted while one holds them ([`StopReason::Pushback`]), checked right after
    /// the policy: see [`PushbackHold`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_core::Deadline;
    /// use rampart_retry::{Backoff, Decision, Next, Retrier, RetryConfig, StopReason, Unlimited};
    ///
    /// let ms = Duration::from_millis;
    /// let config = RetryConfig::default().with_backoff(Backoff::Constant(ms(20)));
    /// let retrier = Retrier::new(config, Unlimited)?;
    /// retrier.observe(ms(50)); // attempts take 50 ms
    /// let request = |deadline| retrier.start_for(Default::default()).with_deadline(Some(deadline));
    ///
    /// // At 0 ms, a deadline at 100 ms: 20 ms of backoff and a 50 ms attempt fit.
    /// let mut attempts = request(Deadline::at(ms(100)));
    /// let next = retrier.decide_at(&mut attempts, Decision::Retry, &mut Some(()), ms(0));
    /// assert_eq!(next, Next::Retry { wait: ms(20), request: () });
    ///
    /// // A deadline at 60 ms: 60 ms left, but only 40 once the backoff is over.
    /// let mut attempts = request(Deadline::at(ms(60)));
    /// let next = retrier.decide_at(&mut attempts, Decision::Retry, &mut Some(()), ms(0));
    /// assert_eq!(next, Next::Stop(StopReason::NoTimeLeft));
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn decide_at<Req>(
        &self,
        attempts: &mut Attempts,
        decision: Decision,
        copy: &mut Option<Req>,
        now: Duration,
    ) -> Next<Req> {
        self.decide_within(attempts, decision, copy, Some(now))
    }

    /// [`decide`](Self::decide), with the deadline checked at `now` if given.
    fn decide_within<Req>(
        &self,
        attempts: &mut Attempts,
        decision: Decision,
        copy: &mut Option<Req>,
        now: Option<Duration>,
    ) -> Next<Req> {
        let asked = match decision {
            Decision::Stop => return Next::Stop(StopReason::Policy),
            Decision::DontRetry => return Next::Stop(StopReason::Pushback),
            Decision::Retry => None,
            Decision::RetryAfter(wait) if wait > self.config.max_pushback => {
                return Next::Stop(StopReason::Pushback);
            }
            Decision::RetryAfter(wait) => Some(wait),
        };
        // A pushback holds every retry of the layer for its delay, this request's own included
        // if an earlier one holds them already.
        if let Some(now) = now
            && self.config.hold_on_pushback
        {
            let held = self.hold.holds_at(now);
            if let Some(wait) = asked {
                self.hold.extend_to(now.saturating_add(wait));
            }
            if held {
                return Next::Stop(StopReason::Pushback);
            }
        }
        if !self.allows_another(attempts) {
            return Next::Stop(StopReason::MaxAttempts);
        }
        if copy.is_none() {
            return Next::Stop(StopReason::NoCopy);
        }
        // For a request with a deadline, the wait is drawn before the budget is asked: a retry
        // whose wait leaves too little time stops without spending it.
        let mut drawn = None;
        if let (Some(deadline), Some(now)) = (attempts.deadline, now) {
            let remaining = deadline.remaining(now);
            if !self.fits(remaining) {
                return Next::Stop(StopReason::NoTimeLeft);
            }
            let wait = asked.unwrap_or_else(|| self.backoff_wait(attempts));
            if !self.fits(remaining.saturating_sub(wait)) {
                return Next::Stop(StopReason::NoTimeLeft);
            }
            drawn = Some(wait);
        }
        if !self.budget.withdraw_for(attempts.criticality) {
            return Next::Stop(StopReason::BudgetExhausted);
        }
        let Some(request) = copy.take() else {
            return Next::Stop(StopReason::NoCopy);
        };
        // The jitter generator is seeded on the first retry granted (or, for a request with a
        // deadline, on its first draw), whatever the retry's wait.
        self.rng(attempts);
        let wait = drawn
            .or(asked)
            .unwrap_or_else(|| self.backoff_wait(attempts));
        attempts.previous_wait = wait;
        attempts.made += 1;
        Next::Retry { wait, request }
    }

    /// The backoff's wait before the next retry of `attempts`, drawn from the request's jitter
    /// generator (seeded from the layer's seeds on its first draw).
    fn backoff_wait(&self, attempts: &mut Attempts) -> Duration {
        let (made, previous_wait) = (attempts.made, attempts.previous_wait);
        self.config
            .backoff
            .delay(made, previous_wait, self.rng(attempts))
    }

    /// The request's jitter generator, seeded from the layer's seeds on first use.
    fn rng<'a>(&self, attempts: &'a mut Attempts) -> &'a mut Rng {
        attempts.rng.get_or_insert_with(|| {
            Rng::with_seed(self.seeds.fetch_add(SEED_STEP, Ordering::Relaxed))
        })
    }
}

impl<B> Retrier<B> {
    /// Whether servers' pushback holds the layer's retries at `now`: a retry decided earlier
    /// whose wait ends now is not sent ([`hold_on_pushback`](RetryConfig::hold_on_pushback)).
    #[inline]
    pub fn holds_retries_at(&self, now: Duration) -> bool {
        self.config.hold_on_pushback && self.hold.holds_at(now)
    }

    /// Whether a server's pushback has ever held the layer's retries: until then no retry
    /// needs the time read to check the hold.
    #[inline]
    pub fn ever_held(&self) -> bool {
        self.config.hold_on_pushback && self.hold.ever_held()
    }

    /// The budget every request draws from.
    pub fn budget(&self) -> &B {
        &self.budget
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests;
