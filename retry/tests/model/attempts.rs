//! What polling a response future must give: an attempt's end, the budget's decision, the
//! backoff's wait and the retry, as the model predicts them.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, DeadlineExceeded, Outcome, Rejected};
use rampart_retry::{AttemptTimedOut, Backoff};
use tower::BoxError;

use super::{Phase, Request, World};
use crate::backend::{Attempt, Command};
use crate::harness::{INJECTED, Polled};
use crate::{
    DEADLINE_CUT, EXPIRED, GRANTED, NO_TIME_LEFT, PANIC_CAUGHT, PANIC_UNWINDING, PREDICTED,
    READY_TOO_LATE, REFUSED, REJECTED, RETRY_CALL_PANIC, TIMED_OUT, WAIT_TOO_LONG,
};
use rampart_testkit::sequence::{self, Catch, ms};

/// How an attempt's result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Ok,
    Failed,
    Rejected,
    TimedOut,
    /// Cut at the request's deadline, or ended without an attempt for lack of time:
    /// `DeadlineExceeded`.
    Deadline,
}

/// What the model expects of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pending,
    Ready(Ended),
    Panic,
}

impl World<'_> {
    pub(super) fn poll(&mut self, mut request: Request, catch: Catch) -> Result<(), TestCaseError> {
        let attempts_before = self.attempts.len();
        let (future, polled) = sequence::poll(&mut request.future, catch);
        request.polled = true;
        // Whether a retry went ahead: a random backoff's wait is unknown to the model.
        let retried = self.backend.log().calls().len() > attempts_before
            || matches!(polled, Polled::Panicked(_));
        // Whether the poll ended the request: a random wait may have ended before the time
        // ran out for the retry.
        let ended = matches!(polled, Polled::Ready(_));
        let expect = self.predict(&mut request, retried, ended);
        match (expect, polled) {
            (Expect::Pending, Polled::Pending) => {
                request.future = future;
                self.requests.push(request);
            }
            (Expect::Ready(ended), Polled::Ready(result)) => {
                check_result(request.id, ended, &result)?;
            }
            (Expect::Panic, Polled::Panicked(message)) => {
                prop_assert!(
                    message.starts_with(INJECTED),
                    "unexpected panic: {}",
                    message
                );
                if let Phase::Poisoned { attempt: Some(_) } = request.phase {
                    let goal = match catch {
                        Catch::Around => PANIC_CAUGHT,
                        Catch::Unwinding => PANIC_UNWINDING,
                    };
                    self.coverage.hit(goal);
                }
                if let Some(future) = future {
                    request.future = Some(future);
                    self.requests.push(request);
                } else if let Phase::Poisoned {
                    attempt: Some(attempt),
                } = request.phase
                {
                    // Dropped during the unwinding, with the attempt that panicked.
                    self.attempts[attempt].0.live = false;
                }
            }
            (expect, polled) => {
                return Err(TestCaseError::fail(format!(
                    "request {}: the model expects {expect:?}, the poll gave {polled:?}",
                    request.id
                )));
            }
        }
        Ok(())
    }

    /// What polling `request` must give, and the model's state after it. `retried` says
    /// whether the layer called the backend again in this poll, `polled_ready` whether the poll
    /// ended the request.
    fn predict(&mut self, request: &mut Request, retried: bool, polled_ready: bool) -> Expect {
        loop {
            match request.phase {
                Phase::Expired => {
                    self.coverage.hit(EXPIRED);
                    return Expect::Ready(Ended::Deadline);
                }
                Phase::Attempt {
                    attempt,
                    timeout,
                    cut,
                    started,
                } => {
                    let ended = match self.attempt_end(request, attempt, timeout, cut) {
                        Ok(ended) => ended,
                        Err(expect) => return expect,
                    };
                    self.attempts[attempt].0.live = false;
                    if ended == Ended::Ok {
                        self.calls.successes += 1;
                        self.budget.record(Outcome::Success);
                        if request.deadline.is_some() {
                            self.observe(self.now.saturating_sub(started));
                        }
                    } else {
                        self.calls.failures += 1;
                        self.budget.record(Outcome::Failure);
                    }
                    let attempts_left = request.attempts < self.max_attempts;
                    if matches!(ended, Ended::Failed | Ended::TimedOut) && attempts_left {
                        let (shortest, longest) =
                            wait_bounds(self.backoff, request.attempts, request.previous_longest);
                        let Some(longest) = self.wait_within_deadline(request, shortest, longest)
                        else {
                            return Expect::Ready(ended);
                        };
                        self.calls.withdrawals_asked += 1;
                        if self.budget.withdraw(self.clock.now()) {
                            self.calls.withdrawals_granted += 1;
                            self.coverage.hit(GRANTED);
                            if request.deadline.is_some() && self.predicted > 0 {
                                self.coverage.hit(PREDICTED);
                            }
                            request.previous_longest = longest;
                            request.phase = Phase::Waiting {
                                earliest: self.now + ceil_ms(shortest),
                                latest: self.now + ceil_ms(longest),
                            };
                            continue;
                        }
                        self.coverage.hit(REFUSED);
                    } else if ended == Ended::Rejected && attempts_left {
                        self.coverage.hit(REJECTED);
                    }
                    return Expect::Ready(ended);
                }
                Phase::Waiting { earliest, latest } => {
                    let over = self.now >= latest
                        || (self.now >= earliest && self.ready && (retried || polled_ready));
                    if !over {
                        return Expect::Pending;
                    }
                    request.phase = Phase::Ready;
                }
                Phase::Ready => {
                    if !self.ready {
                        return Expect::Pending;
                    }
                    if let Some(deadline) = request.deadline
                        && !self.fits(deadline.saturating_sub(self.now))
                    {
                        self.coverage.hit(READY_TOO_LATE);
                        return Expect::Ready(Ended::Deadline);
                    }
                    request.attempts += 1;
                    if std::mem::take(&mut self.panic_next_call) {
                        self.coverage.hit(RETRY_CALL_PANIC);
                        request.phase = Phase::Poisoned { attempt: None };
                        return Expect::Panic;
                    }
                    self.attempts
                        .push((Attempt::new((), request.id), Command::Hold));
                    request.phase = self.attempt(self.attempts.len() - 1, request.deadline);
                }
                Phase::Poisoned { .. } => return Expect::Pending,
            }
        }
    }

    /// How attempt number `attempt` of `request`, with its timeout, ends in this poll: an end,
    /// or what the poll gives while it does not end (pending, or its panic).
    fn attempt_end(
        &self,
        request: &mut Request,
        attempt: usize,
        timeout: Option<Duration>,
        cut: bool,
    ) -> Result<Ended, Expect> {
        if timeout.is_some_and(|timeout| self.now >= timeout) {
            let (goal, ended) = if cut {
                (DEADLINE_CUT, Ended::Deadline)
            } else {
                (TIMED_OUT, Ended::TimedOut)
            };
            self.coverage.hit(goal);
            return Ok(ended);
        }
        match self.attempts[attempt].1 {
            Command::Hold => Err(Expect::Pending),
            Command::Panic => {
                request.phase = Phase::Poisoned {
                    attempt: Some(attempt),
                };
                Err(Expect::Panic)
            }
            Command::Succeed => Ok(Ended::Ok),
            Command::Fail => Ok(Ended::Failed),
            Command::Reject => Ok(Ended::Rejected),
        }
    }

    /// For a request with a deadline, whether the layer may take a wait between `shortest`
    /// and `longest` before a retry, and the longest it may then be: one that leaves an
    /// attempt's time. `None`: the retry is skipped (before the budget is asked).
    fn wait_within_deadline(
        &self,
        request: &Request,
        shortest: Duration,
        longest: Duration,
    ) -> Option<Duration> {
        let Some(deadline) = request.deadline else {
            return Some(longest);
        };
        let remaining = deadline.saturating_sub(self.now);
        if !self.fits(remaining) {
            self.coverage.hit(NO_TIME_LEFT);
            return None;
        }
        // Sure when even the longest wait leaves an attempt's time, impossible when not even
        // the shortest does, and otherwise told by whether the layer asked the budget.
        let takes = if self.fits(remaining.saturating_sub(longest)) {
            true
        } else if !self.fits(remaining.saturating_sub(shortest)) {
            false
        } else {
            self.observed.calls.load().withdrawals_asked > self.calls.withdrawals_asked
        };
        if !takes {
            self.coverage.hit(WAIT_TOO_LONG);
            return None;
        }
        Some(longest.min(remaining.saturating_sub(Duration::from_nanos(self.predicted))))
    }
}

/// Checks a response against the model's expectation.
fn check_result(
    id: u32,
    ended: Ended,
    result: &Result<u32, BoxError>,
) -> Result<(), TestCaseError> {
    let expected = match (ended, result) {
        (Ended::Ok, Ok(value)) => *value == id,
        (Ended::Failed, Err(error)) => error.is::<std::io::Error>(),
        (Ended::Rejected, Err(error)) => error.is::<Rejected>(),
        (Ended::TimedOut, Err(error)) => error.is::<AttemptTimedOut>(),
        (Ended::Deadline, Err(error)) => error.is::<DeadlineExceeded>(),
        _ => false,
    };
    prop_assert!(
        expected,
        "request {}: expected {:?}, got {:?}",
        id,
        ended,
        result
    );
    Ok(())
}

fn ceil_ms(wait: Duration) -> Duration {
    ms(u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// The shortest and longest wait the backoff may choose before retry number `retry`, given
/// the longest the previous wait may have been.
fn wait_bounds(backoff: Backoff, retry: u32, previous_longest: Duration) -> (Duration, Duration) {
    let mut rng = fastrand::Rng::with_seed(0);
    match backoff {
        Backoff::Exponential {
            base,
            factor,
            cap,
            jitter: true,
        } => {
            let ceiling = Backoff::Exponential {
                base,
                factor,
                cap,
                jitter: false,
            };
            (
                Duration::ZERO,
                ceiling.delay(retry, Duration::ZERO, &mut rng),
            )
        }
        Backoff::Decorrelated { base, cap } => (
            base,
            previous_longest
                .max(base)
                .saturating_mul(3)
                .min(cap)
                .max(base),
        ),
        exact => {
            let wait = exact.delay(retry, previous_longest, &mut rng);
            (wait, wait)
        }
    }
}
