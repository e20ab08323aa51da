//! [`RetryPolicy`]: which attempts to retry, and how to copy a request for another attempt.

use std::fmt;
use std::time::Duration;

use rampart_core::{Classify, DeadlineExceeded, DefaultClassifier, Outcome, Rejected, StripedArc};

use crate::GaveUp;
use crate::pushback::{NoPushback, Pushback, ReadPushback};
use tower::BoxError;

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Return this attempt's result.
    Stop,
    /// Retry, after the backoff's wait (budget and attempts permitting).
    Retry,
    /// Retry after this wait instead of the backoff's: the server asked (`Retry-After`,
    /// `grpc-retry-pushback-ms`); longer than
    /// [`max_pushback`](crate::RetryConfig::max_pushback), it is not waited and the request
    /// stops.
    RetryAfter(Duration),
    /// Stop: the server asked for no retry ([`Pushback::DontRetry`]), or the error says a
    /// retry layer below already gave up ([`GaveUp`]).
    DontRetry,
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

    /// Marks a response (an answer the policy wanted retried) that the layer gave up on, with
    /// [`RetryConfig::mark_gave_up`](crate::RetryConfig::mark_gave_up) set: what an error
    /// carries in [`GaveUp`], for an answer that is not an error. The default does nothing;
    /// [`Policy`] asks its pushback reader (`HttpPushback` inserts a [`GaveUpMark`] into the
    /// response's extensions).
    fn mark_gave_up(&self, response: &mut Res, mark: GaveUpMark) {
        let _ = (response, mark);
    }
}

/// A response the retry layer gave up on (see [`RetryPolicy::mark_gave_up`]): why, after how
/// many attempts. A server that answers its caller from it should mark its own answer "don't
/// retry" ([`pushback::dont_retry_header`](crate::pushback::dont_retry_header)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUpMark {
    /// Why the layer stopped.
    pub reason: crate::StopReason,
    /// Attempts made, the first included.
    pub attempts: u32,
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
type NeverRetryCheck = fn(&(dyn std::error::Error + 'static)) -> bool;

/// The checks of a policy, shared by its clones (one per request): counted per stripe of
/// threads, so that requests on two cores write no common count; none at all (nothing to
/// count, nothing to clone) until a check is added.
type NeverRetry = Option<StripedArc<Box<[NeverRetryCheck]>>>;

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
/// - **Pushback:** after a failure, the reader `R` ([`with_pushback`](Self::with_pushback);
///   default: none) reads what the server asked: a wait ([`Decision::RetryAfter`], in place of
///   the backoff) or no retry ([`Decision::DontRetry`]). An error that is, or wraps, a
///   [`GaveUp`] saying so is never retried either: the layer below has retried already.
/// - Requests are copied with `K` (default: `Clone`); [`with_cloner`](Self::with_cloner)
///   takes a function returning `None` for requests that cannot be replayed.
///
/// A timeout of the *whole* call is not an attempt failure: put `tower::timeout` outside the
/// retry layer and it cancels the retries with the call. Put per-attempt timeouts in
/// [`RetryConfig::attempt_timeout`](crate::RetryConfig::attempt_timeout).
#[derive(Clone)]
pub struct Policy<L = DefaultClassifier, K = ByClone, R = NoPushback> {
    classifier: L,
    cloner: K,
    never_retry: NeverRetry,
    pushback: R,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            classifier: DefaultClassifier,
            cloner: ByClone,
            never_retry: None,
            pushback: NoPushback,
        }
    }
}

impl Policy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<L, K, R> Policy<L, K, R> {
    /// The same policy, classifying attempts with `classifier` (for example `HttpClassifier`,
    /// which also retries 5xx and 429 responses).
    pub fn with_classifier<L2>(self, classifier: L2) -> Policy<L2, K, R> {
        Policy {
            classifier,
            cloner: self.cloner,
            never_retry: self.never_retry,
            pushback: self.pushback,
        }
    }

    /// The same policy, copying requests with `cloner`.
    pub fn with_cloner<K2>(self, cloner: K2) -> Policy<L, K2, R> {
        Policy {
            classifier: self.classifier,
            cloner,
            never_retry: self.never_retry,
            pushback: self.pushback,
        }
    }

    /// The same policy, reading the server's pushback after each failure with `reader`
    /// (`HttpPushback` with feature `http`, or a function of the attempt's result).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_retry::pushback::Pushback;
    /// use rampart_retry::{Decision, Policy, RetryPolicy};
    ///
    /// // A backend whose errors say "busy 40": retry after 40 ms.
    /// let policy = Policy::new().with_pushback(|result: Result<&u8, &tower::BoxError>| {
    ///     let busy = result.err()?.to_string().strip_prefix("busy ")?.parse().ok()?;
    ///     Some(Pushback::After(Duration::from_millis(busy)))
    /// });
    /// let err: tower::BoxError = "busy 40".into();
    /// let outcome = RetryPolicy::<u8, u8>::classify(&policy, Err(&err));
    /// let decision = RetryPolicy::<u8, u8>::decide(&policy, outcome, Err(&err));
    /// assert_eq!(decision, Decision::RetryAfter(Duration::from_millis(40)));
    /// ```
    pub fn with_pushback<R2>(self, reader: R2) -> Policy<L, K, R2> {
        Policy {
            classifier: self.classifier,
            cloner: self.cloner,
            never_retry: self.never_retry,
            pushback: reader,
        }
    }

    /// The same policy, never retrying an error (or an error in its `source()` chain) for which
    /// `check` is true.
    #[must_use]
    pub fn never_retry(mut self, check: fn(&(dyn std::error::Error + 'static)) -> bool) -> Self {
        let checks = self.checks().iter().copied().chain([check]).collect();
        self.never_retry = Some(StripedArc::new(checks));
        self
    }

    /// The same policy, never retrying errors of type `E` (or wrapping one).
    #[must_use]
    pub fn never_retry_type<E: std::error::Error + 'static>(self) -> Self {
        self.never_retry(<dyn std::error::Error + 'static>::is::<E>)
    }

    /// The [`never_retry`](Self::never_retry) checks.
    fn checks(&self) -> &[NeverRetryCheck] {
        self.never_retry.as_deref().map_or(&[], |checks| checks)
    }

    fn is_final(&self, error: &BoxError) -> bool {
        let error: &(dyn std::error::Error + 'static) = error.as_ref();
        if Rejected::is_in(error) || DeadlineExceeded::is_in(error) {
            return true;
        }
        let mut current = Some(error);
        while let Some(error) = current {
            if self.checks().iter().any(|check| check(error)) {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl<L, K, R, Req, Res> RetryPolicy<Req, Res> for Policy<L, K, R>
where
    L: Classify<Res, BoxError>,
    K: CloneRequest<Req>,
    R: ReadPushback<Res>,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        self.classifier.classify(result)
    }

    #[inline]
    fn decide(&self, outcome: Outcome, result: Result<&Res, &BoxError>) -> Decision {
        match (outcome, result) {
            (_, Err(error)) if self.is_final(error) => Decision::Stop,
            (_, Err(error)) if gave_up(error) => Decision::DontRetry,
            (Outcome::Failure, _) => match self.pushback.pushback(result) {
                None => Decision::Retry,
                Some(Pushback::After(wait)) => Decision::RetryAfter(wait),
                Some(Pushback::DontRetry) => Decision::DontRetry,
            },
            _ => Decision::Stop,
        }
    }

    #[inline]
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self.cloner.clone_request(request)
    }

    fn mark_gave_up(&self, response: &mut Res, mark: GaveUpMark) {
        self.pushback.mark_gave_up(response, mark);
    }
}

/// Whether `error` is, or wraps, a [`GaveUp`] saying not to retry.
fn gave_up(error: &BoxError) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(error) = current {
        if error
            .downcast_ref::<GaveUp>()
            .is_some_and(GaveUp::dont_retry)
        {
            return true;
        }
        current = error.source();
    }
    false
}

impl<L: fmt::Debug, K: fmt::Debug, R> fmt::Debug for Policy<L, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("classifier", &self.classifier)
            .field("cloner", &self.cloner)
            .field("never_retry", &self.checks().len())
            .field("pushback", &std::any::type_name::<R>())
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
    fn the_pushback_reader_decides_after_a_failure_only() {
        let policy = Policy::new().with_pushback(|result: Result<&u8, &BoxError>| match result {
            Ok(&wait) => Some(Pushback::After(Duration::from_millis(wait.into()))),
            Err(_) => Some(Pushback::DontRetry),
        });
        let decide = |result| {
            let outcome = RetryPolicy::<u8, u8>::classify(&policy, result);
            RetryPolicy::<u8, u8>::decide(&policy, outcome, result)
        };
        assert_eq!(decide(Ok(&5)), Decision::Stop, "a success is not retried");
        let err: BoxError = std::io::Error::other("reset").into();
        assert_eq!(decide(Err(&err)), Decision::DontRetry);
        let rejected: BoxError = Rejected::new().into();
        assert_eq!(
            decide(Err(&rejected)),
            Decision::Stop,
            "never retried first"
        );
    }

    #[test]
    fn an_error_that_a_retry_layer_below_gave_up_on_is_not_retried() {
        #[derive(Debug)]
        struct Wrapped(GaveUp);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("call failed")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let gave_up = |reason| GaveUp::new(reason, 3, "reset".into());
        let err: BoxError = gave_up(crate::StopReason::MaxAttempts).into();
        assert_eq!(decide(&Policy::new(), Err(&err)), Decision::DontRetry);
        let err: BoxError = Wrapped(gave_up(crate::StopReason::BudgetExhausted)).into();
        assert_eq!(decide(&Policy::new(), Err(&err)), Decision::DontRetry);
        let err: BoxError = gave_up(crate::StopReason::NoCopy).into();
        assert_eq!(
            decide(&Policy::new(), Err(&err)),
            Decision::Retry,
            "a request that could not be copied may be retried above"
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
