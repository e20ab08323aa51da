//! How rampart's errors map to HTTP statuses.

use std::error::Error;
use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, StatusCode, header};

/// A status (and `Retry-After` delay) for an error of one of rampart's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// The response's status.
    pub status: StatusCode,
    /// How long the client should wait before trying again, for refusals.
    pub retry_after: Option<Duration>,
}

impl Mapped {
    /// The `Retry-After` header (whole seconds, at least 1), when there is a delay.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
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
    pub fn of(&self, error: &(dyn Error + 'static)) -> Option<Mapped> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(mapped) = self.direct(error) {
                return Some(mapped);
            }
            current = error.source();
        }
        None
    }

    fn direct(&self, error: &(dyn Error + 'static)) -> Option<Mapped> {
        let refusal = |status| {
            Some(Mapped {
                status,
                retry_after: self.retry_after,
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
        // Out of time: no `Retry-After`, the caller's deadline has passed or is about to.
        let timeout = Some(Mapped {
            status: StatusCode::GATEWAY_TIMEOUT,
            retry_after: None,
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
}
