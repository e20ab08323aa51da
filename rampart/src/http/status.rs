//! How rampart's errors map to HTTP statuses.

use std::error::Error;
use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, StatusCode, header};

/// The header of an answer that says not to retry, and its value (as `rampart-retry`'s
/// `pushback::DONT_RETRY_HEADER` and `DONT_RETRY_VALUE`, which read it).
const DONT_RETRY_HEADER: &str = "rampart-retry";
const DONT_RETRY_VALUE: &str = "no";

/// A status (and `Retry-After` delay) for an error of one of rampart's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// The response's status.
    pub status: StatusCode,
    /// How long the client should wait before trying again, for refusals.
    pub retry_after: Option<Duration>,
    /// Whether the answer tells the caller not to retry: this service's own retries toward
    /// its backend gave up (a `rampart_retry::GaveUp` saying so), so only the hop next to the
    /// failure retries.
    pub dont_retry: bool,
}

impl Mapped {
    /// The `Retry-After` header (whole seconds, at least 1), when there is a delay; for an
    /// answer that says not to retry, `rampart-retry: no` instead (which
    /// `rampart_retry::pushback::HttpPushback` reads on the caller's side).
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self.dont_retry {
            headers.insert(
                header::HeaderName::from_static(DONT_RETRY_HEADER),
                HeaderValue::from_static(DONT_RETRY_VALUE),
            );
            return headers;
        }
        if let Some(wait) = self.retry_after {
            let seconds = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        headers
    }
}

/// How rampart's errors map to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorStatus {
    overloaded: StatusCode,
    retry_after: Option<Duration>,
}

impl Default for ErrorStatus {
    /// `Overloaded` → 503; refusals carry `Retry-After: 1` (the limiter's default cooldown).
    fn default() -> Self {
        Self {
            overloaded: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(1)),
        }
    }
}

impl ErrorStatus {
    /// The mapping, answering the limiter's `Overloaded` with `status` (429 or 503 are the
    /// usual choices).
    #[must_use]
    pub fn with_overloaded(self, status: StatusCode) -> Self {
        Self {
            overloaded: status,
            ..self
        }
    }

    /// The mapping, with this `Retry-After` delay on refusals (`None`: no header).
    #[must_use]
    pub fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..self
        }
    }

    /// The status for `error`, or for the first of rampart's errors in its `source()` chain;
    /// `None` when there is none.
    ///
    /// A `rampart_retry::GaveUp` that says not to retry (this service's retries toward its
    /// backend gave up, with `RetryConfig::with_mark_gave_up`) marks the answer
    /// [`dont_retry`](Mapped::dont_retry): the status of the error it wraps, or 503 when that
    /// is the application's own.
    pub fn of(&self, error: &(dyn Error + 'static)) -> Option<Mapped> {
        let mut gave_up = false;
        let mut current = Some(error);
        while let Some(error) = current {
            gave_up |= says_dont_retry(error);
            if let Some(mut mapped) = self.direct(error) {
                if gave_up {
                    mapped.dont_retry = true;
                    mapped.retry_after = None;
                }
                return Some(mapped);
            }
            current = error.source();
        }
        gave_up.then_some(Mapped {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
            dont_retry: true,
        })
    }

    fn direct(&self, error: &(dyn Error + 'static)) -> Option<Mapped> {
        let refusal = |status| {
            Some(Mapped {
                status,
                retry_after: self.retry_after,
                dont_retry: false,
            })
        };
        #[cfg(feature = "ratelimit")]
        if error.is::<rampart_ratelimit::Overloaded>() {
            return refusal(self.overloaded);
        }
        if error.is::<rampart_core::Rejected>() {
            return refusal(StatusCode::SERVICE_UNAVAILABLE);
        }
        #[cfg(feature = "balancer")]
        if error.is::<rampart_balancer::NoEndpoints>() {
            return refusal(StatusCode::SERVICE_UNAVAILABLE);
        }
        // The caller's quota is spent: 429, and `Retry-After` when its next token is due.
        #[cfg(feature = "quota")]
        if let Some(refused) = error.downcast_ref::<rampart_quota::QuotaExceeded>() {
            return Some(Mapped {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(refused.retry_after()),
                dont_retry: false,
            });
        }
        // Out of time: no `Retry-After`, the caller's deadline has passed or is about to.
        let timeout = Some(Mapped {
            status: StatusCode::GATEWAY_TIMEOUT,
            retry_after: None,
            dont_retry: false,
        });
        if error.is::<rampart_core::DeadlineExceeded>() {
            return timeout;
        }
        #[cfg(feature = "ratelimit")]
        if error.is::<rampart_ratelimit::WouldMissDeadline>() {
            return timeout;
        }
        #[cfg(feature = "retry")]
        if error.is::<rampart_retry::AttemptTimedOut>() {
            return timeout;
        }
        None
    }
}

/// Whether `error` is a retry layer's give-up that tells the caller not to retry.
fn says_dont_retry(error: &(dyn Error + 'static)) -> bool {
    #[cfg(feature = "retry")]
    if let Some(gave_up) = error.downcast_ref::<rampart_retry::GaveUp>() {
        return gave_up.dont_retry();
    }
    let _ = error;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(tower::BoxError);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn status(error: &tower::BoxError) -> Option<StatusCode> {
        ErrorStatus::default().of(&**error).map(|m| m.status)
    }

    #[test]
    fn a_spent_quota_is_429_with_retry_after_its_next_token() {
        let refused = |ms| -> tower::BoxError {
            rampart_quota::QuotaExceeded::new(Duration::from_millis(ms)).into()
        };
        let mapped = ErrorStatus::default().of(&*refused(2_500)).expect("mapped");
        assert_eq!(mapped.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(mapped.retry_after, Some(Duration::from_millis(2_500)));
        assert_eq!(mapped.headers()[header::RETRY_AFTER], "3");
        // Whole seconds, at least 1; found through wrappers too.
        let wrapped: tower::BoxError = Box::new(Wrapped(refused(10)));
        let mapped = ErrorStatus::default().of(&*wrapped).expect("mapped");
        assert_eq!(mapped.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(mapped.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn each_layers_error_has_its_status() {
        assert_eq!(
            status(&rampart_core::Rejected::new().into()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            status(&rampart_ratelimit::Overloaded::new().into()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            status(&rampart_balancer::NoEndpoints::new().into()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            status(&rampart_retry::AttemptTimedOut::new().into()),
            Some(StatusCode::GATEWAY_TIMEOUT)
        );
        assert_eq!(
            status(&rampart_core::DeadlineExceeded::new().into()),
            Some(StatusCode::GATEWAY_TIMEOUT)
        );
        assert_eq!(
            status(
                &rampart_ratelimit::WouldMissDeadline::new(
                    Duration::from_millis(8),
                    Duration::from_millis(30)
                )
                .into()
            ),
            Some(StatusCode::GATEWAY_TIMEOUT)
        );
        assert_eq!(status(&"boom".into()), None);
    }

    #[test]
    fn wrapped_errors_are_found_through_their_sources() {
        let wrapped = Wrapped(rampart_ratelimit::Overloaded::new().into());
        assert_eq!(
            status(&(Box::new(wrapped) as tower::BoxError)),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_and_configurable() {
        let shed: tower::BoxError = rampart_ratelimit::Overloaded::new().into();
        let headers = |mapping: ErrorStatus| mapping.of(&*shed).unwrap().headers();
        assert_eq!(headers(ErrorStatus::default())[header::RETRY_AFTER], "1");
        let long = ErrorStatus::default().with_retry_after(Some(Duration::from_millis(2_500)));
        assert_eq!(headers(long)[header::RETRY_AFTER], "3");
        assert!(headers(ErrorStatus::default().with_retry_after(None)).is_empty());
        let timed_out: [tower::BoxError; 3] = [
            rampart_retry::AttemptTimedOut::new().into(),
            rampart_core::DeadlineExceeded::new().into(),
            rampart_ratelimit::WouldMissDeadline::new(Duration::ZERO, Duration::from_millis(1))
                .into(),
        ];
        for error in timed_out {
            assert!(
                ErrorStatus::default()
                    .of(&*error)
                    .unwrap()
                    .headers()
                    .is_empty(),
                "{error}"
            );
        }
    }

    #[test]
    fn an_answer_whose_retries_gave_up_tells_the_caller_not_to_retry() {
        use rampart_retry::{GaveUp, StopReason};
        let gave_up = |source: tower::BoxError| -> tower::BoxError {
            GaveUp::new(StopReason::MaxAttempts, 3, source).into()
        };
        // The backend shed the last attempt: its status, and "don't retry" instead of a delay.
        let mapped = ErrorStatus::default()
            .of(&*gave_up(rampart_ratelimit::Overloaded::new().into()))
            .unwrap();
        assert_eq!(mapped.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(mapped.dont_retry);
        let headers = mapped.headers();
        assert_eq!(headers["rampart-retry"], "no");
        assert!(!headers.contains_key(header::RETRY_AFTER));
        // The application's own error under it: 503, still "don't retry".
        let own = ErrorStatus::default()
            .of(&*gave_up("connection reset".into()))
            .unwrap();
        assert_eq!(
            (own.status, own.dont_retry),
            (StatusCode::SERVICE_UNAVAILABLE, true)
        );
        // A refusal not wrapped in a give-up is retried after its delay, as before.
        let shed: tower::BoxError = rampart_ratelimit::Overloaded::new().into();
        assert!(!ErrorStatus::default().of(&*shed).unwrap().dont_retry);
        // The header the caller's retry layer reads.
        assert_eq!(
            (DONT_RETRY_HEADER, DONT_RETRY_VALUE),
            rampart_retry::pushback::dont_retry_header(false)
        );
    }
}
