//! One request's retry state ([`Attempts`]), and what follows an attempt ([`Next`], [`StopReason`]).

use std::time::Duration;

use fastrand::Rng;
use rampart_core::{Criticality, Deadline};

#[cfg(doc)]
use crate::{Budget, Decision, Retrier, RetryConfig};

/// The retry state of one request: the attempts made, the previous wait, the jitter generator.
///
/// Made by [`Retrier::start`]; [`Retrier::decide`] counts each retry it grants.
#[derive(Debug, Clone)]
pub struct Attempts {
    /// Attempts made, the first included; a retry counts from the moment it is granted.
    pub(super) made: u32,
    /// The previous wait (for decorrelated jitter).
    pub(super) previous_wait: Duration,
    /// The jitter generator, seeded on the first retry granted.
    pub(super) rng: Option<Rng>,
    /// The request's criticality, which its withdrawals ask for.
    pub(super) criticality: Criticality,
    /// The request's deadline, if it has one.
    pub(super) deadline: Option<Deadline>,
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
