//! The budgets under test, counted as the layer uses them, and their reference models:
//! `RatioBudget` as its docs state it (`ratio × deposits + min_per_sec × ttl` over a window of
//! ten buckets, exact to the millionth, a clock stepping back read as no time passing), and
//! `TokenBudget` in thousandths of a token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, ManualClock, Outcome};
use rampart_retry::{Budget, BudgetSnapshot, RatioBudget, RatioConfig, TokenBudget, TokenConfig};

/// Millionths of a retry per retry (`RatioBudget`'s documented precision).
const UNIT: u128 = 1_000_000;
/// Thousandths of a token per token (`TokenBudget`'s documented precision).
const MILLI: u64 = 1_000;
/// Buckets of a `RatioBudget`'s window.
const BUCKETS: u64 = 10;

/// Which budget a case uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Choice {
    /// A `RatioBudget` whose clock starts at `start`.
    Ratio {
        config: RatioConfig,
        start: Duration,
    },
    Token(TokenConfig),
}

/// Small budgets, so that sequences of a few hundred operations run them dry and refill them.
pub(crate) fn choice() -> impl Strategy<Value = Choice> {
    let ratio = (
        prop::sample::select(vec![1_u64, 2, 10, 60]),
        prop::sample::select(vec![0.0, 0.1, 0.2, 0.6, 1.0, 2.5]),
        prop::sample::select(vec![0_u32, 0, 1, 2, 10]),
        prop::sample::select(vec![
            Duration::ZERO,
            Duration::from_nanos(123_456_789),
            Duration::from_secs(86_400),
        ]),
    )
        .prop_map(|(ttl, ratio, min_per_sec, start)| Choice::Ratio {
            config: RatioConfig {
                ttl: Duration::from_secs(ttl),
                ratio,
                min_per_sec,
            },
            start,
        });
    let token = (
        prop::sample::select(vec![1_u32, 2, 3, 10]),
        prop::sample::select(vec![0.001, 0.1, 0.25, 0.5, 1.0]),
    )
        .prop_map(|(max_tokens, token_ratio)| {
            Choice::Token(TokenConfig {
                max_tokens,
                token_ratio,
            })
        });
    prop_oneof![ratio, token]
}

/// The budget under test.
#[derive(Debug)]
pub(crate) enum Real {
    Ratio(Box<RatioBudget<ManualClock>>),
    Token(TokenBudget),
}

/// The budget under test, counting the layer's calls to it.
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) real: Real,
    pub(crate) calls: Calls<AtomicU64>,
}

/// How often the layer called each method of the budget.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Calls<T> {
    pub(crate) deposits: T,
    pub(crate) withdrawals_asked: T,
    pub(crate) withdrawals_granted: T,
    pub(crate) successes: T,
    pub(crate) failures: T,
}

impl Calls<AtomicU64> {
    pub(crate) fn load(&self) -> Calls<u64> {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Calls {
            deposits: load(&self.deposits),
            withdrawals_asked: load(&self.withdrawals_asked),
            withdrawals_granted: load(&self.withdrawals_granted),
            successes: load(&self.successes),
            failures: load(&self.failures),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Observed {
    /// Builds the chosen budget (its clock, if it has one, is `clock`).
    pub(crate) fn build(choice: Choice, clock: &ManualClock) -> Self {
        let real = match choice {
            Choice::Ratio { config, .. } => Real::Ratio(Box::new(
                config
                    .build_with(clock.clone())
                    .expect("a valid ratio budget"),
            )),
            Choice::Token(config) => Real::Token(config.build().expect("a valid token budget")),
        };
        Self {
            real,
            calls: Calls::default(),
        }
    }
}

impl Budget for Observed {
    fn deposit(&self) {
        bump(&self.calls.deposits);
        match &self.real {
            Real::Ratio(budget) => budget.deposit(),
            Real::Token(budget) => budget.deposit(),
        }
    }

    fn withdraw(&self) -> bool {
        bump(&self.calls.withdrawals_asked);
        let granted = match &self.real {
            Real::Ratio(budget) => budget.withdraw(),
            Real::Token(budget) => budget.withdraw(),
        };
        if granted {
            bump(&self.calls.withdrawals_granted);
        }
        granted
    }

    fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => bump(&self.calls.successes),
            Outcome::Failure => bump(&self.calls.failures),
            Outcome::Ignore => {}
        }
        match &self.real {
            Real::Ratio(budget) => budget.record(outcome),
            Real::Token(budget) => budget.record(outcome),
        }
    }

    fn snapshot(&self) -> BudgetSnapshot {
        match &self.real {
            Real::Ratio(budget) => budget.snapshot(),
            Real::Token(budget) => budget.snapshot(),
        }
    }
}

/// What the budget must hold.
#[derive(Debug)]
pub(crate) enum Model {
    Ratio(RatioModel),
    Token(TokenModel),
}

impl Model {
    pub(crate) fn new(choice: Choice) -> Self {
        match choice {
            Choice::Ratio { config, start } => Self::Ratio(RatioModel::new(config, start)),
            Choice::Token(config) => Self::Token(TokenModel::new(config)),
        }
    }

    pub(crate) fn deposit(&mut self, now: Duration) {
        if let Self::Ratio(model) = self {
            model.deposit(now);
        }
    }

    pub(crate) fn withdraw(&mut self, now: Duration) -> bool {
        match self {
            Self::Ratio(model) => model.withdraw(now),
            Self::Token(model) => model.withdraw(),
        }
    }

    pub(crate) fn record(&mut self, outcome: Outcome) {
        if let Self::Token(model) = self {
            model.record(outcome);
        }
    }

    /// A read of the budget at `now`: like a write, it moves the window to `now`'s bucket (a
    /// clock stepping back afterwards reads the window as it was then, not as it once was).
    pub(crate) fn observe(&mut self, now: Duration) {
        if let Self::Ratio(model) = self {
            model.write(now);
        }
    }

    /// Checks the real budget's balance against the model's, at the clock's instant.
    pub(crate) fn check(&self, real: &Real, clock: &ManualClock) -> Result<(), TestCaseError> {
        match (self, real) {
            (Self::Ratio(model), Real::Ratio(budget)) => model.check(budget, clock.now()),
            (Self::Token(model), Real::Token(budget)) => model.check(budget),
            _ => Err(TestCaseError::fail("the model is of another budget")),
        }
    }
}

/// `RatioBudget` as documented: deposits and withdrawals count for `ttl`, in ten buckets of
/// `ttl / 10` aligned to the budget's creation; a withdrawal is granted when
/// `ratio × deposits + min_per_sec × ttl − withdrawals` (in the window, in millionths) is at
/// least one retry. A clock stepping back is no time passing: records then land in the newest
/// bucket any operation (a read included) has reached.
#[derive(Debug)]
pub(crate) struct RatioModel {
    per_deposit: u128,
    reserve: u128,
    origin: Duration,
    bucket_nanos: u128,
    /// The newest bucket reached (by a write or a read).
    newest: u64,
    /// `(deposits, withdrawals)` per bucket number.
    buckets: BTreeMap<u64, (u64, u64)>,
}

impl RatioModel {
    fn new(config: RatioConfig, origin: Duration) -> Self {
        Self {
            per_deposit: (config.ratio * UNIT as f64).round() as u128,
            reserve: u128::from(config.min_per_sec) * config.ttl.as_nanos() * UNIT / 1_000_000_000,
            origin,
            bucket_nanos: config.ttl.as_nanos() / u128::from(BUCKETS),
            newest: 0,
            buckets: BTreeMap::new(),
        }
    }

    /// The bucket an operation at `now` sees and writes.
    fn bucket(&self, now: Duration) -> u64 {
        let since = now.saturating_sub(self.origin).as_nanos() / self.bucket_nanos;
        u64::try_from(since).unwrap_or(u64::MAX).max(self.newest)
    }

    /// `(deposits, withdrawals)` in the window ending with `now`'s bucket.
    pub(crate) fn counts(&self, now: Duration) -> (u64, u64) {
        let last = self.bucket(now);
        self.buckets
            .range(last.saturating_sub(BUCKETS - 1)..=last)
            .fold((0, 0), |(d, w), (_, (dd, ww))| (d + dd, w + ww))
    }

    /// The balance in millionths of a retry.
    fn balance(&self, now: Duration) -> u128 {
        let (deposits, withdrawals) = self.counts(now);
        (self.reserve + u128::from(deposits) * self.per_deposit)
            .saturating_sub(u128::from(withdrawals) * UNIT)
    }

    fn write(&mut self, now: Duration) -> &mut (u64, u64) {
        self.newest = self.bucket(now);
        let expired = self.newest.saturating_sub(BUCKETS - 1);
        self.buckets = self.buckets.split_off(&expired);
        self.buckets.entry(self.newest).or_default()
    }

    fn deposit(&mut self, now: Duration) {
        self.write(now).0 += 1;
    }

    fn withdraw(&mut self, now: Duration) -> bool {
        if self.balance(now) < UNIT {
            return false;
        }
        self.write(now).1 += 1;
        true
    }

    /// The documented bound, in the window at `now`: withdrawals ≤ ratio × deposits + reserve.
    /// It holds at the instant of each withdrawal (later, the deposits that paid for a
    /// withdrawal may expire before it does).
    pub(crate) fn check_bound(
        &self,
        budget: &RatioBudget<ManualClock>,
        now: Duration,
    ) -> Result<(), TestCaseError> {
        let (deposits, withdrawals) = budget.counts_at(now);
        prop_assert!(
            u128::from(withdrawals) * UNIT
                <= self.reserve + u128::from(deposits) * self.per_deposit,
            "overdrawn at {now:?}: {withdrawals} withdrawals for {deposits} deposits"
        );
        Ok(())
    }

    fn check(&self, budget: &RatioBudget<ManualClock>, now: Duration) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            budget.counts_at(now),
            self.counts(now),
            "(deposits, withdrawals) at {:?}",
            now
        );
        prop_assert_eq!(
            budget.snapshot().remaining,
            (self.balance(now) / UNIT) as f64,
            "remaining retries at {:?}",
            now
        );
        Ok(())
    }
}

/// `TokenBudget` as documented, in thousandths: full at first; a failure costs a token (not
/// below zero), a success earns `token_ratio` (not above full); a retry is allowed while more
/// than half the tokens remain, and costs nothing by itself.
#[derive(Debug)]
pub(crate) struct TokenModel {
    tokens: u64,
    max: u64,
    per_success: u64,
}

impl TokenModel {
    fn new(config: TokenConfig) -> Self {
        let max = u64::from(config.max_tokens) * MILLI;
        Self {
            tokens: max,
            max,
            per_success: (config.token_ratio * MILLI as f64).round() as u64,
        }
    }

    fn threshold(&self) -> u64 {
        self.max / 2
    }

    fn withdraw(&self) -> bool {
        self.tokens > self.threshold()
    }

    fn record(&mut self, outcome: Outcome) {
        self.tokens = match outcome {
            Outcome::Success => (self.tokens + self.per_success).min(self.max),
            Outcome::Failure => self.tokens.saturating_sub(MILLI),
            Outcome::Ignore => self.tokens,
        };
    }

    fn check(&self, budget: &TokenBudget) -> Result<(), TestCaseError> {
        prop_assert_eq!(budget.tokens(), self.tokens as f64 / MILLI as f64, "tokens");
        prop_assert_eq!(
            budget.snapshot().remaining,
            (self.tokens as f64 - self.threshold() as f64) / MILLI as f64,
            "tokens above the threshold"
        );
        Ok(())
    }
}
