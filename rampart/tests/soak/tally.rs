//! What became of each request the soak sent: one fate each, counted.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::StatusCode;
use rampart::Rejected;
use rampart::balancer::NoEndpoints;
use tower::BoxError;

use super::probe::Buffered;

/// How one request ended (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Answered 2xx.
    Succeeded,
    /// Refused by the client's breaker (never retried).
    BreakerRejected,
    /// Refused by the client's balancer: no endpoint ready, on its last attempt.
    NoEndpoints,
    /// Failed with attempts left, and the retry budget refused the next one.
    BudgetExhausted,
    /// Shed by a server's limiter (503) on its last attempt.
    Shed,
    /// Answered with another 5xx (an injected error) on its last attempt.
    FailedStatus,
    /// No answer (the server was stopped) on its last attempt.
    FailedTransport,
    /// Anything else: a status no server here sends.
    Unexpected,
}

impl Fate {
    /// Every fate, in report order.
    pub const ALL: [Self; 8] = [
        Self::Succeeded,
        Self::BreakerRejected,
        Self::NoEndpoints,
        Self::BudgetExhausted,
        Self::Shed,
        Self::FailedStatus,
        Self::FailedTransport,
        Self::Unexpected,
    ];

    /// The fate of a request that ended with `result` after `reached` attempts reached an
    /// endpoint, when it may make `max_attempts` attempts. Also returns its attempts: those
    /// that reached an endpoint, plus the one the breaker refused.
    pub fn of(result: &Result<Buffered, BoxError>, reached: u32, max_attempts: u32) -> (Self, u32) {
        let retryable = match result {
            Ok(response) if response.status().is_success() => return (Self::Succeeded, reached),
            Err(error) if error.is::<Rejected>() => return (Self::BreakerRejected, reached + 1),
            Ok(response) => {
                response.status().is_server_error()
                    || response.status() == StatusCode::TOO_MANY_REQUESTS
            }
            Err(_) => true,
        };
        let fate = if !retryable {
            Self::Unexpected
        } else if reached < max_attempts {
            Self::BudgetExhausted
        } else {
            match result {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => Self::Shed,
                Ok(_) => Self::FailedStatus,
                Err(error) if error.is::<NoEndpoints>() => Self::NoEndpoints,
                Err(_) => Self::FailedTransport,
            }
        };
        (fate, reached)
    }

    /// Whether the request was refused by one of rampart's layers (as opposed to failing).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::BreakerRejected | Self::NoEndpoints | Self::BudgetExhausted | Self::Shed
        )
    }
}

/// Requests counted by fate, and the attempts they made.
#[derive(Debug, Default)]
pub struct Tally {
    fates: [AtomicU64; Fate::ALL.len()],
    attempts: AtomicU64,
}

impl Tally {
    /// Counts a request that ended with `fate` after `attempts` attempts.
    pub fn record(&self, fate: Fate, attempts: u32) {
        self.fates[fate as usize].fetch_add(1, Ordering::Relaxed);
        self.attempts
            .fetch_add(u64::from(attempts), Ordering::Relaxed);
    }

    /// Requests that ended with `fate`.
    pub fn count(&self, fate: Fate) -> u64 {
        self.fates[fate as usize].load(Ordering::Relaxed)
    }

    /// Requests counted, whatever their fate.
    pub fn total(&self) -> u64 {
        Fate::ALL.iter().map(|&fate| self.count(fate)).sum()
    }

    /// Attempts made by the requests counted.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }
}
