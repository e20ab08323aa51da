//! What the balancer's `poll_ready` must do: apply discovery, poll every waiting endpoint
//! once, then pick from the ready list only, and, with none ready, wait or fail as
//! configured.

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_balancer::WhenEmpty;
use rampart_core::Clock;
use tower::Service;

use super::{Listed, Sent, World};
use crate::endpoints::Readiness;
use crate::harness::caught;
use crate::stats::Stats;
use crate::{BROKEN, DEMOTED, FAILED_AFTER_TIMER, FAILED_FAST, REMOVED_BUSY, REPLACED};

impl World<'_> {
    /// The balancer's `poll_ready`, against the model; returns whether it was ready.
    pub(super) fn poll_ready(&mut self) -> Result<bool, TestCaseError> {
        let answer = caught(|| {
            self.balancer
                .poll_ready(&mut Context::from_waker(Waker::noop()))
        })
        .map_err(|message| TestCaseError::fail(format!("poll_ready panicked: {message}")))?;
        let polls = self.endpoints.take_polls();
        let ready = self.expect_poll_ready(&polls)?;
        match answer {
            Poll::Ready(Ok(())) => prop_assert!(ready, "poll_ready must be pending"),
            Poll::Ready(Err(error)) => {
                return Err(TestCaseError::fail(format!("poll_ready failed: {error}")));
            }
            Poll::Pending => prop_assert!(!ready, "poll_ready must be ready"),
        }
        Ok(ready)
    }

    /// What `poll_ready` must answer, given the endpoints' answers to its polls (`polls`, in
    /// order), and the model's state after it.
    fn expect_poll_ready(&mut self, polls: &[(usize, Readiness)]) -> Result<bool, TestCaseError> {
        if self.chosen.is_some() || self.fail_next {
            prop_assert!(
                polls.is_empty(),
                "a ready balancer polls nothing: {:?}",
                polls
            );
            return Ok(true);
        }
        for change in std::mem::take(&mut self.undelivered) {
            self.apply(change);
        }
        // Every endpoint of the waiting list is polled once.
        let mut waiting: Vec<usize> = self
            .listed
            .iter()
            .filter(|listed| !listed.ready)
            .map(|listed| listed.instance)
            .collect();
        prop_assert!(
            polls.len() >= waiting.len(),
            "{} waiting endpoints, {} polls",
            waiting.len(),
            polls.len()
        );
        let (promotions, picks) = polls.split_at(waiting.len());
        let mut promoted: Vec<usize> = promotions.iter().map(|(instance, _)| *instance).collect();
        waiting.sort_unstable();
        promoted.sort_unstable();
        prop_assert_eq!(&promoted, &waiting, "the waiting endpoints polled");
        for &(instance, readiness) in promotions {
            self.answered(instance, readiness)?;
        }
        // Then endpoints of the ready list, until one is ready.
        for (position, &(instance, readiness)) in picks.iter().enumerate() {
            let at = self
                .listed
                .iter()
                .position(|listed| listed.instance == instance);
            prop_assert!(
                at.is_some_and(|at| self.listed[at].ready),
                "picked instance {} from outside the ready list",
                instance
            );
            self.empty_deadline = None;
            if readiness == Readiness::Busy {
                self.coverage.hit(DEMOTED);
            }
            if self.answered(instance, readiness)? {
                prop_assert!(position + 1 == picks.len(), "polled on after a ready pick");
                let key = self.listed[at.unwrap_or_default()].key;
                self.chosen = Some((key, self.clock.now()));
                return Ok(true);
            }
        }
        prop_assert!(
            self.listed.iter().all(|listed| !listed.ready),
            "gave up with endpoints in the ready list"
        );
        match self.when_empty {
            WhenEmpty::Wait => Ok(false),
            WhenEmpty::FailFast { after: None } => {
                self.coverage.hit(FAILED_FAST);
                self.fail_next = true;
                Ok(true)
            }
            WhenEmpty::FailFast { after: Some(after) } => {
                let deadline = *self.empty_deadline.get_or_insert(self.now + after);
                if self.now < deadline {
                    return Ok(false);
                }
                self.coverage.hit(FAILED_AFTER_TIMER);
                self.empty_deadline = None;
                self.fail_next = true;
                Ok(true)
            }
        }
    }

    /// Applies an endpoint's answer to a poll: ready joins the ready list, busy the waiting
    /// list, broken is dropped. Returns whether it was ready.
    fn answered(&mut self, instance: usize, readiness: Readiness) -> Result<bool, TestCaseError> {
        prop_assert_eq!(readiness, self.endpoints.readiness(instance));
        let at = self
            .listed
            .iter()
            .position(|listed| listed.instance == instance)
            .ok_or_else(|| TestCaseError::fail(format!("polled unknown instance {instance}")))?;
        match readiness {
            Readiness::Ready => self.listed[at].ready = true,
            Readiness::Busy => self.listed[at].ready = false,
            Readiness::Broken => {
                self.coverage.hit(BROKEN);
                self.remove(at);
            }
        }
        Ok(readiness == Readiness::Ready)
    }

    fn apply(&mut self, change: Sent) {
        match change {
            Sent::Insert { key, instance } => {
                if let Some(at) = self.position(key) {
                    self.coverage.hit(REPLACED);
                    self.listed[at].instance = instance;
                    self.listed[at].ready = false;
                } else {
                    let prior = self.median_warm_lag();
                    self.stats.push(Stats::new(prior, self.tau));
                    self.listed.push(Listed {
                        key,
                        instance,
                        stats: self.stats.len() - 1,
                        ready: false,
                        picks: 0,
                    });
                }
            }
            Sent::Remove(key) => {
                if let Some(at) = self.position(key) {
                    self.remove(at);
                }
            }
        }
    }

    fn remove(&mut self, at: usize) {
        let removed = self.listed.swap_remove(at);
        if self.stats[removed.stats].inflight > 0 {
            self.coverage.hit(REMOVED_BUSY);
        }
    }

    /// The median latency of the endpoints that have completed requests (a new endpoint's
    /// prior), to the nanosecond.
    fn median_warm_lag(&self) -> Duration {
        let mut lags: Vec<f64> = self
            .listed
            .iter()
            .map(|listed| &self.stats[listed.stats])
            .filter(|stats| stats.is_warm())
            .map(Stats::lag_ns)
            .collect();
        lags.sort_by(f64::total_cmp);
        lags.get(lags.len() / 2)
            .map_or(Duration::ZERO, |lag| Duration::from_nanos(*lag as u64))
    }
}
