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
use rampart_core::{ConfigError, Criticality, Deadline, Outcome, RequestContext, saturating_nanos};

use crate::{Budget, Decision, PushbackHold, RetryConfig};

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

/// The retry state of one request: the attempts made, the previous wait, the jitter generator.
///
/// Made by [`Retrier::start`]; [`Retrier::decide`] counts each retry it grants.
#[derive(Debug, Clone)]
pub struct Attempts {
    /// Attempts made, the first included; a retry counts from the moment it is granted.
    made: u32,
    /// The previous wait (for decorrelated jitter).
    previous_wait: Duration,
    /// The jitter generator, seeded on the first retry granted.
    rng: Option<Rng>,
    /// The request's criticality, which its withdrawals ask for.
    criticality: Criticality,
    /// The request's deadline, if it has one.
    deadline: Option<Deadline>,
}

impl Attempts {
    /// The attempts of a request that made none (its deadline had passed): no deposit.
    pub(crate) fn none() -> Self {
        Self {
            made: 0,
            previous_wait: Duration::ZERO,
            rng: None,
            criticality: Criticality::default(),
            deadline: None,
        }
    }

    /// Attempts made so far, the first included (and a retry granted but not yet sent).
    pub fn made(&self) -> u32 {
        self.made
    }

    /// The request's criticality, as [`Retrier::start`] read it or
    /// [`Retrier::start_for`] was given it: its retries withdraw as this class
    /// ([`Budget::withdraw_for`]).
    pub fn criticality(&self) -> Criticality {
        self.criticality
    }

    /// The request's deadline, as [`Retrier::start`] read it or [`with_deadline`](Self::with_deadline)
    /// set it: [`Retrier::decide_at`] grants no retry that cannot finish before it.
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// These attempts, for a request whose deadline is `deadline` (`None`: no deadline).
    #[must_use]
    pub fn with_deadline(self, deadline: Option<Deadline>) -> Self {
        Self { deadline, ..self }
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Next<Req> {
    /// Return this attempt's result.
    Stop(StopReason),
    /// Send `request` again after `wait`.
    Retry {
        /// The wait before the retry.
        wait: Duration,
        /// The copy of the request to send.
        request: Req,
    },
}

/// Why a request gets no more attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The policy said stop: the attempt succeeded, or failed with an error never retried.
    Policy,
    /// The request made [`max_attempts`](RetryConfig::max_attempts) attempts.
    MaxAttempts,
    /// There is no copy of the request to send (it could not be copied).
    NoCopy,
    /// The budget refused the retry.
    BudgetExhausted,
    /// The request's deadline leaves too little time for another attempt: less than the
    /// predicted latency remains now, or would remain once the wait is over.
    NoTimeLeft,
    /// The server asked for no retry ([`Decision::DontRetry`]), or for a wait longer than
    /// [`max_pushback`](RetryConfig::max_pushback); or a server's pushback holds the layer's
    /// retries ([`hold_on_pushback`](RetryConfig::hold_on_pushback)).
    Pushback,
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

    /// A new request, its first attempt under way: deposits into the budget. The request's
    /// criticality and deadline are the current [`RequestContext`]'s (read once; outside any
    /// scope: [`Criticality::CRITICAL`] and no deadline).
    #[inline]
    pub fn start(&self) -> Attempts {
        let context = RequestContext::current();
        self.start_for(context.criticality().unwrap_or_default())
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
        self.budget.deposit();
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
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{Backoff, BudgetSnapshot};

    const MS: Duration = Duration::from_millis(1);

    /// A budget that grants `grants` retries, then refuses, and writes down every call.
    #[derive(Debug, Default)]
    struct Ledger {
        grants: u64,
        deposits: AtomicU64,
        withdrawals: AtomicU64,
        outcomes: Mutex<Vec<Outcome>>,
    }

    impl Budget for Ledger {
        fn deposit(&self) {
            self.deposits.fetch_add(1, Ordering::Relaxed);
        }

        fn withdraw(&self) -> bool {
            self.withdrawals.fetch_add(1, Ordering::Relaxed) < self.grants
        }

        fn record(&self, outcome: Outcome) {
            self.outcomes.lock().expect("not poisoned").push(outcome);
        }

        fn snapshot(&self) -> BudgetSnapshot {
            BudgetSnapshot { remaining: 0.0 }
        }
    }

    fn retrier(config: RetryConfig, grants: u64) -> Retrier<Ledger> {
        let ledger = Ledger {
            grants,
            ..Ledger::default()
        };
        Retrier::new(config.with_seed(42), ledger).expect("valid")
    }

    /// One request, its attempts ended as the response future ends them: the outcome to the
    /// budget, then the decision.
    struct Request {
        retrier: Retrier<Ledger>,
        attempts: Attempts,
    }

    impl Request {
        fn new(config: RetryConfig, grants: u64) -> Self {
            let retrier = retrier(config, grants);
            let attempts = retrier.start();
            Self { retrier, attempts }
        }

        fn end(&mut self, outcome: Outcome, decision: Decision, copy: &mut Option<u8>) -> Next<u8> {
            self.retrier.record(outcome);
            self.retrier.decide(&mut self.attempts, decision, copy)
        }

        fn withdrawals(&self) -> u64 {
            self.retrier.budget().withdrawals.load(Ordering::Relaxed)
        }

        fn outcomes(&self) -> Vec<Outcome> {
            self.retrier
                .budget()
                .outcomes
                .lock()
                .expect("not poisoned")
                .clone()
        }
    }

    /// Waits of 10, 20, 40 ms… without jitter.
    fn doubling() -> Backoff {
        Backoff::Exponential {
            base: 10 * MS,
            factor: 2.0,
            cap: Duration::from_secs(1),
            jitter: false,
        }
    }

    #[test]
    fn a_request_deposits_once_and_starts_at_one_attempt() {
        let request = Request::new(RetryConfig::default(), 9);
        assert_eq!(request.attempts.made(), 1);
        assert_eq!(request.retrier.budget().deposits.load(Ordering::Relaxed), 1);
        assert!(request.retrier.allows_another(&request.attempts));
        let single = Request::new(RetryConfig::default().with_max_attempts(1), 9);
        assert!(
            !single.retrier.allows_another(&single.attempts),
            "no copy worth keeping"
        );
    }

    #[test]
    fn a_success_stops_without_asking_the_budget() {
        let (mut request, mut copy) = (Request::new(RetryConfig::default(), 9), Some(7));
        let next = request.end(Outcome::Success, Decision::Stop, &mut copy);
        assert_eq!(next, Next::Stop(StopReason::Policy));
        assert_eq!(request.withdrawals(), 0);
        assert_eq!(request.outcomes(), [Outcome::Success]);
        assert_eq!((request.attempts.made(), copy), (1, Some(7)));
    }

    #[test]
    fn an_error_the_policy_never_retries_stops_without_asking_the_budget() {
        let (mut request, mut copy) = (Request::new(RetryConfig::default(), 9), Some(7));
        let next = request.end(Outcome::Failure, Decision::Stop, &mut copy);
        assert_eq!(next, Next::Stop(StopReason::Policy));
        assert_eq!(request.withdrawals(), 0);
        assert_eq!(request.outcomes(), [Outcome::Failure]);
        assert_eq!((request.attempts.made(), copy), (1, Some(7)));
    }

    #[test]
    fn the_attempt_limit_stops_before_the_budget_is_asked() {
        let mut request = Request::new(RetryConfig::default().with_max_attempts(3), 9);
        for made in 2..=3 {
            let next = request.end(Outcome::Failure, Decision::Retry, &mut Some(7));
            assert!(matches!(next, Next::Retry { request: 7, .. }), "{next:?}");
            assert_eq!(request.attempts.made(), made);
        }
        assert!(!request.retrier.allows_another(&request.attempts));
        let mut copy = Some(7);
        let next = request.end(Outcome::Failure, Decision::Retry, &mut copy);
        assert_eq!(next, Next::Stop(StopReason::MaxAttempts));
        assert_eq!(request.withdrawals(), 2, "the third failure asked nothing");
        assert_eq!((request.attempts.made(), copy), (3, Some(7)));
    }

    #[test]
    fn a_request_without_a_copy_stops_without_asking_the_budget() {
        let mut request = Request::new(RetryConfig::default(), 9);
        let next = request.end(Outcome::Failure, Decision::Retry, &mut None);
        assert_eq!(next, Next::Stop(StopReason::NoCopy));
        assert_eq!(request.withdrawals(), 0);
    }

    #[test]
    fn a_budget_refusal_stops() {
        let mut request = Request::new(RetryConfig::default(), 0);
        let next = request.end(Outcome::Failure, Decision::Retry, &mut Some(7));
        assert_eq!(next, Next::Stop(StopReason::BudgetExhausted));
        assert_eq!(request.withdrawals(), 1);
        assert_eq!(request.attempts.made(), 1, "a refused retry is not counted");
    }

    #[test]
    fn a_granted_retry_waits_the_backoffs_delay_for_its_number() {
        let config = RetryConfig::default()
            .with_max_attempts(4)
            .with_backoff(doubling());
        let mut request = Request::new(config, 9);
        for wait in [10 * MS, 20 * MS, 40 * MS] {
            let next = request.end(Outcome::Failure, Decision::Retry, &mut Some(7));
            assert_eq!(next, Next::Retry { wait, request: 7 });
        }
        assert_eq!(request.withdrawals(), 3);
    }

    #[test]
    fn the_policys_wait_replaces_the_backoffs() {
        let mut request = Request::new(RetryConfig::default().with_backoff(doubling()), 9);
        let next = request.end(Outcome::Failure, Decision::RetryAfter(7 * MS), &mut Some(7));
        assert_eq!(
            next,
            Next::Retry {
                wait: 7 * MS,
                request: 7
            }
        );
    }

    #[test]
    fn dont_retry_and_a_wait_past_max_pushback_stop_before_anything_is_asked() {
        let config = RetryConfig::default().with_max_pushback(100 * MS);
        let (mut request, mut copy) = (Request::new(config.clone(), 9), Some(7));
        let next = request.end(Outcome::Failure, Decision::DontRetry, &mut copy);
        assert_eq!(next, Next::Stop(StopReason::Pushback));
        let next = request.end(Outcome::Failure, Decision::RetryAfter(101 * MS), &mut copy);
        assert_eq!(next, Next::Stop(StopReason::Pushback));
        assert_eq!(request.withdrawals(), 0);
        assert_eq!((request.attempts.made(), copy), (1, Some(7)));
        let next = request.end(Outcome::Failure, Decision::RetryAfter(100 * MS), &mut copy);
        assert_eq!(
            next,
            Next::Retry {
                wait: 100 * MS,
                request: 7
            },
            "the maximum itself is waited"
        );
        let huge = Decision::RetryAfter(Duration::MAX);
        let mut request = Request::new(RetryConfig::default(), 9);
        assert_eq!(
            request.end(Outcome::Failure, huge, &mut Some(7)),
            Next::Stop(StopReason::Pushback),
            "past the default 30 s"
        );
    }

    #[test]
    fn jitter_is_drawn_from_the_seed_of_the_requests_first_granted_retry() {
        // Seeds go to requests in the order their first retry is granted, whatever its wait.
        let retrier = retrier(RetryConfig::default(), 9);
        let (mut first, mut second) = (retrier.start(), retrier.start());
        let _ = retrier.decide(&mut first, Decision::RetryAfter(7 * MS), &mut Some(1));
        let next = retrier.decide(&mut second, Decision::Retry, &mut Some(2));
        let mut rng = Rng::with_seed(42_u64.wrapping_add(SEED_STEP));
        let wait = Backoff::default().delay(1, Duration::ZERO, &mut rng);
        assert_eq!(next, Next::Retry { wait, request: 2 });
    }

    /// A request of `request`'s retrier with a deadline at `deadline` ms.
    fn with_deadline(request: &Request, deadline: u64) -> Attempts {
        request
            .retrier
            .start()
            .with_deadline(Some(Deadline::at(Duration::from_millis(deadline))))
    }

    #[test]
    fn a_retry_without_time_left_stops_without_asking_the_budget() {
        let request = Request::new(RetryConfig::default().with_backoff(doubling()), 9);
        request.retrier.observe(30 * MS);
        // At 80 ms: 20 ms left with a deadline at 100 ms, less than the 30 ms predicted; none
        // with one at 80 ms.
        for deadline in [100, 80] {
            let mut attempts = with_deadline(&request, deadline);
            let mut copy = Some(7);
            let next =
                request
                    .retrier
                    .decide_at(&mut attempts, Decision::Retry, &mut copy, 80 * MS);
            assert_eq!(next, Next::Stop(StopReason::NoTimeLeft));
            assert_eq!((attempts.made(), copy), (1, Some(7)));
        }
        assert_eq!(request.withdrawals(), 0);
        // 40 ms left: the first backoff (10 ms) leaves 30 ms, the predicted latency: granted.
        let mut attempts = with_deadline(&request, 120);
        let next = request
            .retrier
            .decide_at(&mut attempts, Decision::Retry, &mut Some(7), 80 * MS);
        assert_eq!(
            next,
            Next::Retry {
                wait: 10 * MS,
                request: 7
            }
        );
        assert_eq!(request.withdrawals(), 1);
    }

    #[test]
    fn a_wait_the_policy_asks_for_past_the_deadline_is_not_taken() {
        // Two pushbacks of one layer at one instant: the first would hold the second.
        let request = Request::new(RetryConfig::default().with_hold_on_pushback(false), 9);
        let mut attempts = with_deadline(&request, 100);
        let asked = Decision::RetryAfter(100 * MS);
        let next = request
            .retrier
            .decide_at(&mut attempts, asked, &mut Some(7), Duration::ZERO);
        assert_eq!(next, Next::Stop(StopReason::NoTimeLeft));
        let next = request.retrier.decide_at(
            &mut attempts,
            Decision::RetryAfter(99 * MS),
            &mut Some(7),
            Duration::ZERO,
        );
        assert_eq!(
            next,
            Next::Retry {
                wait: 99 * MS,
                request: 7
            }
        );
    }

    #[test]
    fn the_policy_the_attempt_limit_and_the_copy_come_before_the_deadline() {
        let mut request = Request::new(RetryConfig::default().with_max_attempts(1), 9);
        request.attempts = with_deadline(&request, 0);
        let next =
            request
                .retrier
                .decide_at(&mut request.attempts, Decision::Stop, &mut Some(7), MS);
        assert_eq!(next, Next::Stop(StopReason::Policy));
        let next =
            request
                .retrier
                .decide_at(&mut request.attempts, Decision::Retry, &mut Some(7), MS);
        assert_eq!(next, Next::Stop(StopReason::MaxAttempts));
        let request = Request::new(RetryConfig::default(), 9);
        let mut attempts = with_deadline(&request, 0);
        let next = request
            .retrier
            .decide_at(&mut attempts, Decision::Retry, &mut None::<u8>, MS);
        assert_eq!(next, Next::Stop(StopReason::NoCopy));
    }

    #[test]
    fn without_a_deadline_deciding_at_an_instant_decides_as_before() {
        let waits = |at: Option<Duration>| {
            let retrier = retrier(RetryConfig::default().with_max_attempts(10), 30);
            let mut waits = Vec::new();
            for _ in 0..5 {
                let mut attempts = retrier.start();
                while let Next::Retry { wait, .. } = match at {
                    None => retrier.decide(&mut attempts, Decision::Retry, &mut Some(())),
                    Some(now) => {
                        retrier.decide_at(&mut attempts, Decision::Retry, &mut Some(()), now)
                    }
                } {
                    waits.push(wait);
                }
            }
            waits
        };
        assert_eq!(waits(None).len(), 30, "the budget's 30 grants");
        assert_eq!(waits(Some(Duration::from_secs(3600))), waits(None));
    }

    #[test]
    fn the_prediction_follows_successes_an_eighth_at_a_time() {
        let request = Request::new(RetryConfig::default(), 0);
        let retrier = &request.retrier;
        assert_eq!(retrier.predicted(), Duration::ZERO);
        retrier.observe(Duration::ZERO);
        assert_eq!(
            retrier.predicted(),
            Duration::from_nanos(1),
            "observed: never zero"
        );
        retrier.observe(80 * MS);
        retrier.observe(80 * MS);
        assert!(retrier.predicted() < 20 * MS, "{:?}", retrier.predicted());
        for _ in 0..200 {
            retrier.observe(80 * MS);
        }
        assert!(
            retrier.predicted() > 79 * MS,
            "converges: {:?}",
            retrier.predicted()
        );
        let before = retrier.predicted();
        retrier.observe(Duration::ZERO);
        assert_eq!(
            retrier.predicted(),
            before.saturating_sub(before / 8),
            "an eighth of the way down"
        );
        assert!(retrier.predicted() > 69 * MS && retrier.predicted() <= 70 * MS);
        // A request without a deadline always has time; one whose deadline is past never.
        let attempts = retrier.start();
        assert!(retrier.time_for_attempt(&attempts, Duration::MAX));
        let attempts = attempts.with_deadline(Some(Deadline::at(Duration::from_secs(1))));
        assert!(retrier.time_for_attempt(&attempts, 900 * MS));
        assert!(
            !retrier.time_for_attempt(&attempts, 950 * MS),
            "50 ms left, 70 predicted"
        );
        assert!(!retrier.time_for_attempt(&attempts, Duration::from_secs(1)));
    }

    #[test]
    fn a_seed_reproduces_the_waits() {
        let waits = |seed: u64| {
            let config = RetryConfig::default().with_max_attempts(10).with_seed(seed);
            let ledger = Ledger {
                grants: 100,
                ..Ledger::default()
            };
            let retrier = Retrier::new(config, ledger).expect("valid");
            let mut waits = Vec::new();
            for _ in 0..5 {
                let mut attempts = retrier.start();
                while let Next::Retry { wait, .. } =
                    retrier.decide(&mut attempts, Decision::Retry, &mut Some(()))
                {
                    waits.push(wait);
                }
            }
            waits
        };
        assert_eq!(waits(7).len(), 45);
        assert_eq!(waits(7), waits(7));
        assert_ne!(waits(7), waits(8));
    }
}
