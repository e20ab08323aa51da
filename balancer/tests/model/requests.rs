//! What the balancer's `call` and response futures must do: send to the endpoint `poll_ready`
//! chose (or fail with `NoEndpoints`), and end each request on its endpoint's statistics once:
//! its outcome on completion, a failure on a panic, nothing but the in-flight count on
//! cancellation.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rampart_balancer::NoEndpoints;
use rampart_core::{Clock, Outcome};
use tower::Service;

use super::{Phase, Request, World};
use crate::endpoints::{Call, Command};
use crate::harness::{self, Cancellation, INJECTED, Polled, caught};
use crate::{
    CALL_PANIC, CALL_UNREADY, CANCEL_FRESH, CANCEL_PENDING, DROP_POISONED, FAILURE, PANIC_CAUGHT,
    PANIC_UNWINDING, UNWOUND,
};
use rampart_testkit::sequence::{self, Catch};

/// What the model expects of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pending,
    Ok,
    Failed,
    NoEndpoints,
    Panic,
}

impl World<'_> {
    pub(super) fn call(&mut self) -> Result<(), TestCaseError> {
        let id = self.next_id;
        self.next_id += 1;
        let called = caught(|| self.balancer.call(id));
        let Some((key, started)) = self.chosen.take() else {
            if !self.fail_next {
                self.coverage.hit(CALL_UNREADY);
            }
            self.fail_next = false;
            let future = sequence::called(called)?;
            self.requests.push(Request {
                id,
                future: Some(Box::pin(future)),
                phase: Phase::NoEndpoint,
                polled: false,
            });
            return Ok(());
        };
        let at = self
            .position(key)
            .ok_or_else(|| TestCaseError::fail("the chosen endpoint is gone"))?;
        self.listed[at].picks += 1;
        let (instance, stats) = (self.listed[at].instance, self.listed[at].stats);
        self.stats[stats].begin();
        let not_injected = "the endpoint's call panicked, not the balancer's";
        let Some(future) = sequence::armed_call(called, &mut self.panic_next_call, not_injected)?
        else {
            self.coverage.hit(CALL_PANIC);
            self.fail(stats, started);
            return Ok(());
        };
        self.calls.push((Call::new(instance, id), Command::Hold));
        self.requests.push(Request {
            id,
            future: Some(Box::pin(future)),
            phase: Phase::Sent {
                call: self.calls.len() - 1,
                stats,
                started,
            },
            polled: false,
        });
        Ok(())
    }

    /// A request counted in `stats` since `started` ends as a failure now.
    fn fail(&mut self, stats: usize, started: Duration) {
        self.coverage.hit(FAILURE);
        self.stats[stats].end(started, self.clock.now(), Some(Outcome::Failure));
    }

    pub(super) fn resolve(&mut self, at: Index, command: Command) {
        let pending: Vec<usize> = self
            .requests
            .iter()
            .filter_map(|request| match request.phase {
                Phase::Sent { call, .. } if self.calls[call].1 == Command::Hold => Some(call),
                _ => None,
            })
            .collect();
        if let Some(&call) = sequence::pick(&pending, at) {
            self.calls[call].1 = command;
            self.endpoints.log().command(call, command);
        }
    }

    pub(super) fn poll(&mut self, mut request: Request, catch: Catch) -> Result<(), TestCaseError> {
        let (future, polled) = sequence::poll(&mut request.future, catch);
        request.polled = true;
        let expect = match request.phase {
            Phase::NoEndpoint => Expect::NoEndpoints,
            Phase::Sent {
                call,
                stats,
                started,
            } => {
                let now = self.clock.now();
                match self.calls[call].1 {
                    Command::Hold => Expect::Pending,
                    Command::Succeed => {
                        self.calls[call].0.live = false;
                        self.stats[stats].end(started, now, Some(Outcome::Success));
                        Expect::Ok
                    }
                    Command::Fail => {
                        self.calls[call].0.live = false;
                        self.fail(stats, started);
                        Expect::Failed
                    }
                    Command::Panic => {
                        // A failure whether or not the caller catches the panic.
                        self.fail(stats, started);
                        if catch == Catch::Unwinding {
                            self.calls[call].0.live = false;
                        }
                        request.phase = Phase::Poisoned { call };
                        Expect::Panic
                    }
                    Command::Reject => unreachable!("the balancer's model never rejects a call"),
                }
            }
            Phase::Poisoned { .. } => Expect::Pending,
        };
        match (expect, polled) {
            (Expect::Pending, Polled::Pending) => {
                request.future = future;
                self.requests.push(request);
            }
            (Expect::Ok, Polled::Ready(Ok(value))) => {
                prop_assert_eq!(value, request.id, "the response to request {}", request.id);
            }
            (Expect::Failed, Polled::Ready(Err(error))) if error.is::<std::io::Error>() => {}
            (Expect::NoEndpoints, Polled::Ready(Err(error))) if error.is::<NoEndpoints>() => {}
            (Expect::Panic, Polled::Panicked(message)) => {
                prop_assert!(
                    message.starts_with(INJECTED),
                    "unexpected panic: {}",
                    message
                );
                if let Some(future) = future {
                    self.coverage.hit(PANIC_CAUGHT);
                    request.future = Some(future);
                    self.requests.push(request);
                } else {
                    self.coverage.hit(PANIC_UNWINDING);
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

    pub(super) fn cancel(&mut self, request: Request, how: Cancellation) {
        if how == Cancellation::Unwound {
            self.coverage.hit(UNWOUND);
        }
        harness::cancel(request.future, how);
        match request.phase {
            Phase::NoEndpoint => {}
            Phase::Sent {
                call,
                stats,
                started,
            } => {
                self.coverage.hit(if request.polled {
                    CANCEL_PENDING
                } else {
                    CANCEL_FRESH
                });
                self.calls[call].0.live = false;
                self.stats[stats].end(started, self.clock.now(), None);
            }
            Phase::Poisoned { call } => {
                self.coverage.hit(DROP_POISONED);
                self.calls[call].0.live = false;
            }
        }
    }
}
