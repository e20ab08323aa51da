//! [`RetryPolicy`]: which attempts to retry, and how to copy a request for another attempt.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Classify, DeadlineExceeded, DefaultClassifier, Outcome, Rejected};
use tower::BoxError;

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Return this attempt's result.
    Stop,
    /// Retry, after the backoff's wait (budget and attempts permitting).
    Retry,
    /// Retry after this wait instead of the backoff's: the server asked (`Retry-After`,
    /// `grpc-retry-pushback-ms`).
    RetryAfter(Duration),
}

/// Decides which attempts are retried, and copies requests for retries.
///
/// The [`Retry`](crate::Retry) layer asks it after every attempt: [`classify`](Self::classify)
/// feeds the budget (a token budget earns on success and pays on failure),
/// [`decide`](Self::decide) chooses, and [`clone_request`](Self::clone_request) keeps a copy of
/// the request for the next attempt (`None`: the request cannot be retried).
pub trait RetryPolicy<Req, Res> {
    /// How the attempt counts.
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome;

    /// Whether to retry after an attempt that counted as `outcome`.
    fn decide(&self, outcome: Outcome, result: Result<&Res, &BoxError>) -> Decision;

    /// A copy of `request` for another attempt, or `None` if it cannot be copied.
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

/// Copies a request for a retry.
pub trait CloneRequest<Req> {
    /// A copy of `request`, or `None` if it cannot be copied (a streamed body).
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

impl<Req, F> CloneRequest<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self(request)
    }
}

/// Says an error must never be retried.
type NeverRetry = Arc<[fn(&(dyn std::error::Error + 'static)) -> bool]>;

/// The default policy: retry what the classifier calls a failure, never an error that says
/// retrying is pointless.
///
/// - An attempt the classifier `L` (default: `Err` is a failure) calls
///   [`Failure`](Outcome::Failure) is retried.
/// - **Never retried:** an error that is, or wraps, a local rejection
///   ([`rampart_core::Rejected`], which `rampart-breaker` returns while it throttles):
///   retrying it only adds load to a client that is already shedding; an error that is, or
///   wraps, [`rampart_core::DeadlineExceeded`] (the request's deadline has passed: its caller
///   no longer waits); and any error a [`never_retry`](Self::never_retry) check recognises
///   (for example your framework's own "deadline exceeded").
/// - Requests are copied with `K` (default: `Clone`); [`with_cloner`](Self::with_cloner)
///   takes a function returning `None` for requests that cannot be replayed.
///
/// A timeout of the *whole* call is not an attempt failure: put `tower::timeout` outside the
/// retry layer and it cancels the retries with the call. Put per-attempt timeouts in
/// [`RetryConfig::attempt_timeout`](crate::RetryConfig::attempt_timeout).
#[derive(Clone)]
pub struct Policy<L = DefaultClassifier, K = ByClone> {
    classifier: L,
    cloner: K,
    never_retry: NeverRetry,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            classifier: DefaultClassifier,
            cloner: ByClone,
            never_retry: Arc::new([]),
        }
    }
}

impl Policy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<L, K> Policy<L, K> {
    /// The same policy, classifying attempts with `classifier` (for example `HttpClassifier`,
    /// which also retries 5xx and 429 responses).
    pub fn with_classifier<L2>(self, classifier: L2) -> Policy<L2, K> {
        Policy {
            classifier,
            cloner: self.cloner,
            never_retry: self.never_retry,
        }
    }

    /// The same policy, copying requests with `cloner`.
    pub fn with_cloner<K2>(self, cloner: K2) -> Policy<L, K2> {
        Policy {
            classifier: self.classifier,
            cloner,
            never_retry: self.never_retry,
        }
    }

    /// The same policy, never retrying an error (or an error in its `source()` chain) for which
    /// `check` is true.
    #[must_use]
    pub fn never_retry(mut self, check: fn(&(dyn std::error::Error + 'static)) -> bool) -> Self {
        self.never_retry = self.never_retry.iter().copied().chain([check]).collect();
        self
    }

    /// The same policy, never retrying errors of type `E` (or wrapping one).
    #[must_use]
    pub fn never_retry_type<E: std::error::Error + 'static>(self) -> Self {
        self.never_retry(<dyn std::error::Error + 'static>::is::<E>)
    }

    fn is_final(&self, error: &BoxError) -> bool {
        let error: &(dyn std::error::Error + 'static) = error.as_ref();
        if Rejected::is_in(error) || DeadlineExceeded::is_in(error) {
            return true;
        }
        let mut current = Some(error);
        while let Some(error) = current {
            if self.never_retry.iter().any(|check| check(error)) {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl<L, K, Req, Res> RetryPolicy<Req, Res> for Policy<L, K>
where
    L: Classify<Res, BoxError>,
    K: CloneRequest<Req>,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        self.classifier.classify(result)
    }

    #[inline]
    fn decide(&self, outcome: Outcome, result: Result<&Res, &BoxError>) -> Decision {
        match (outcome, result) {
            (_, Err(error)) if self.is_final(error) => Decision::Stop,
            (Outcome::Failure, _) => Decision::Retry,
            _ => Decision::Stop,
        }
    }

    #[inline]
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self.cloner.clone_request(request)
    }
}

impl<L: fmt::Debug, K: fmt::Debug> fmt::Debug for Policy<L, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("classifier", &self.classifier)
            .field("cloner", &self.cloner)
            .field("never_retry", &self.never_retry.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FrameworkDeadline;

    impl fmt::Display for FrameworkDeadline {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("deadline exceeded")
        }
    }

    impl std::error::Error for FrameworkDeadline {}

    fn decide(policy: &Policy, result: Result<&u8, &BoxError>) -> Decision {
        let outcome = RetryPolicy::<u8, u8>::classify(policy, result);
        RetryPolicy::<u8, u8>::decide(policy, outcome, result)
    }

    #[test]
    fn failures_are_retried_and_successes_are_not() {
        let policy = Policy::new();
        assert_eq!(decide(&policy, Ok(&1)), Decision::Stop);
        let err: BoxError = std::io::Error::other("reset").into();
        assert_eq!(decide(&policy, Err(&err)), Decision::Retry);
    }

    #[test]
    fn local_rejections_are_never_retried() {
        let err: BoxError = Rejected::new().into();
        assert_eq!(decide(&Policy::new(), Err(&err)), Decision::Stop);
    }

    #[test]
    fn deadline_exceeded_is_never_retried_even_wrapped() {
        #[derive(Debug)]
        struct CallFailed(rampart_core::DeadlineExceeded);
        impl fmt::Display for CallFailed {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("call failed")
            }
        }
        impl std::error::Error for CallFailed {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err: BoxError = rampart_core::DeadlineExceeded::new().into();
        assert_eq!(decide(&Policy::new(), Err(&err)), Decision::Stop);
        let wrapped: BoxError = CallFailed(rampart_core::DeadlineExceeded::new()).into();
        assert_eq!(decide(&Policy::new(), Err(&wrapped)), Decision::Stop);
    }

    #[test]
    fn errors_a_check_recognises_are_never_retried() {
        let policy = Policy::new().never_retry_type::<FrameworkDeadline>();
        let err: BoxError = FrameworkDeadline.into();
        assert_eq!(decide(&policy, Err(&err)), Decision::Stop);
        assert_eq!(
            decide(&Policy::new(), Err(&err)),
            Decision::Retry,
            "not by default"
        );
    }

    #[test]
    fn requests_are_copied_by_clone_or_by_a_function() {
        assert_eq!(
            RetryPolicy::<String, ()>::clone_request(&Policy::new(), &"a".to_owned()),
            Some("a".to_owned())
        );
        let streamed = Policy::new().with_cloner(|_: &String| None);
        assert_eq!(
            RetryPolicy::<String, ()>::clone_request(&streamed, &"a".to_owned()),
            None
        );
    }
}
