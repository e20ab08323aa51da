//! The retry decision's unit tests: one request's attempts ended as the response future ends them.

use std::sync::Mutex;

use super::*;
use rampart_core::Deadline;

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
        let next = request
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
    let next = request
        .retrier
        .decide_at(&mut request.attempts, Decision::Stop, &mut Some(7), MS);
    assert_eq!(next, Next::Stop(StopReason::Policy));
    let next = request
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
                Some(now) => retrier.decide_at(&mut attempts, Decision::Retry, &mut Some(()), now),
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
