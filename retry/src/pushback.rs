//! Server pushback: a server's answer saying when to retry, or not to.
//!
//! A server under load knows better than its clients when a retry can succeed. It says so in
//! its answer, and the [`Retry`](crate::Retry) layer obeys through its policy's
//! [`ReadPushback`] hook ([`Policy::with_pushback`](crate::Policy::with_pushback)):
//!
//! - **gRPC** (proposal A6): `grpc-retry-pushback-ms`, a non-negative decimal integer, is the
//!   delay before the next attempt; a negative or malformed value (not an integer, empty, or
//!   sent more than once) asks the client not to retry at all, as A6 specifies.
//! - **HTTP**: `Retry-After` in delta-seconds is the delay; an HTTP-date, or any other value,
//!   is ignored (the retry waits its backoff), since a date needs a wall clock the layer does
//!   not read and a malformed `Retry-After` is not, in HTTP, a refusal.
//! - **"Don't retry"** across HTTP hops: [`DONT_RETRY_HEADER`]` = `[`DONT_RETRY_VALUE`]
//!   (`rampart-retry: no`), which a server writes on the answers it sheds and on the failures
//!   its own retries gave up on ([`GaveUp`](crate::GaveUp)); for gRPC the same mark is a
//!   negative `grpc-retry-pushback-ms` ([`GRPC_DONT_RETRY`]). [`dont_retry_header`] says which
//!   header to write.
//!
//! A broken or hostile server cannot hold a client: a delay longer than
//! [`RetryConfig::max_pushback`](crate::RetryConfig::max_pushback) (30 s by default) is not
//! waited (the request stops with its answer, [`StopReason::Pushback`](crate::StopReason)),
//! nor one that would end past the request's deadline ([`StopReason::NoTimeLeft`](crate::StopReason)).
//! A value too large to represent is such a delay. The delay replaces the backoff for that
//! retry; the budget is still asked. It also holds the layer's other retries until it is over
//! ([`PushbackHold`](crate::PushbackHold), on by default), so that under sustained pushback a
//! client stops retrying into the server's overload, as the server asked.
//!
//! ```
//! use std::time::Duration;
//! use rampart_retry::pushback::{Pushback, grpc_pushback_ms, retry_after};
//!
//! assert_eq!(grpc_pushback_ms(b"250"), Pushback::After(Duration::from_millis(250)));
//! assert_eq!(grpc_pushback_ms(b"-1"), Pushback::DontRetry);
//! assert_eq!(grpc_pushback_ms(b"soon"), Pushback::DontRetry); // malformed: A6 says don't retry
//! assert_eq!(retry_after(b"3"), Some(Pushback::After(Duration::from_secs(3))));
//! assert_eq!(retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None); // a date: ignored
//! ```

use std::time::Duration;

use tower::BoxError;

use crate::GaveUpMark;

/// What a server asked of the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pushback {
    /// Retry no sooner than this (replacing the backoff's wait).
    After(Duration),
    /// Do not retry this request.
    DontRetry,
}

/// gRPC's pushback metadata key (proposal A6).
pub const GRPC_PUSHBACK: &str = "grpc-retry-pushback-ms";
/// The `grpc-retry-pushback-ms` value that says "don't retry": any negative value does.
pub const GRPC_DONT_RETRY: &str = "-1";
/// The HTTP header that marks an answer "don't retry" between rampart services.
pub const DONT_RETRY_HEADER: &str = "rampart-retry";
/// [`DONT_RETRY_HEADER`]'s value saying "don't retry" (compared ignoring ASCII case).
pub const DONT_RETRY_VALUE: &str = "no";

/// Reads a `grpc-retry-pushback-ms` value as A6 specifies: a non-negative decimal integer is
/// the delay in milliseconds (one too large for a `u64` saturates, and so exceeds any
/// [`max_pushback`](crate::RetryConfig::max_pushback)); a negative value, or anything that is
/// not an integer (empty, signs without digits, spaces, a fraction), means don't retry.
pub fn grpc_pushback_ms(value: &[u8]) -> Pushback {
    match value {
        [b'-', digits @ ..] if is_digits(digits) => Pushback::DontRetry,
        digits if is_digits(digits) => Pushback::After(Duration::from_millis(saturating(digits))),
        _ => Pushback::DontRetry,
    }
}

/// Reads an HTTP `Retry-After` value: delta-seconds (digits only; one too large saturates) is
/// a delay; anything else, an HTTP-date included, says nothing (`None`).
pub fn retry_after(value: &[u8]) -> Option<Pushback> {
    is_digits(value).then(|| Pushback::After(Duration::from_secs(saturating(value))))
}

/// Whether `value` is [`DONT_RETRY_HEADER`]'s "don't retry" ([`DONT_RETRY_VALUE`]).
pub fn is_dont_retry(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(DONT_RETRY_VALUE.as_bytes())
}

/// The header a server writes on an answer that must not be retried: `(name, value)`,
/// `grpc-retry-pushback-ms: -1` for a gRPC answer, `rampart-retry: no` for any other.
pub const fn dont_retry_header(grpc: bool) -> (&'static str, &'static str) {
    if grpc {
        (GRPC_PUSHBACK, GRPC_DONT_RETRY)
    } else {
        (DONT_RETRY_HEADER, DONT_RETRY_VALUE)
    }
}

fn is_digits(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(u8::is_ascii_digit)
}

/// Decimal digits as a `u64`, saturating.
fn saturating(digits: &[u8]) -> u64 {
    digits.iter().fold(0_u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// Reads a server's pushback from an attempt's result, for [`Policy`](crate::Policy)
/// ([`with_pushback`](crate::Policy::with_pushback)). Asked only after an attempt the
/// classifier called a failure.
pub trait ReadPushback<Res> {
    /// What the server asked of the next attempt, if anything.
    fn pushback(&self, result: Result<&Res, &BoxError>) -> Option<Pushback>;

    /// Marks a response the layer gave up on ([`RetryPolicy::mark_gave_up`](crate::RetryPolicy::mark_gave_up)).
    /// The default does nothing.
    fn mark_gave_up(&self, response: &mut Res, mark: GaveUpMark) {
        let _ = (response, mark);
    }
}

/// Reads no pushback: retries wait their backoff (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPushback;

impl<Res> ReadPushback<Res> for NoPushback {
    #[inline]
    fn pushback(&self, _: Result<&Res, &BoxError>) -> Option<Pushback> {
        None
    }
}

impl<Res, F> ReadPushback<Res> for F
where
    F: Fn(Result<&Res, &BoxError>) -> Option<Pushback>,
{
    fn pushback(&self, result: Result<&Res, &BoxError>) -> Option<Pushback> {
        self(result)
    }
}

/// Reads pushback from an HTTP response's headers (feature `http`): "don't retry" in any form
/// wins, then `grpc-retry-pushback-ms` (several values are malformed: don't retry), then
/// `Retry-After` (one value; several, or a date, are ignored). Errors carry no headers: `None`.
/// A response the layer gave up on gets a [`GaveUpMark`] in its extensions.
///
/// ```
/// use std::time::Duration;
/// use rampart_retry::pushback::{HttpPushback, Pushback, ReadPushback};
///
/// let shed = http::Response::builder().status(503).header("retry-after", "2").body(())?;
/// assert_eq!(HttpPushback.pushback(Ok(&shed)), Some(Pushback::After(Duration::from_secs(2))));
/// let grpc = http::Response::builder().header("grpc-retry-pushback-ms", "-1").body(())?;
/// assert_eq!(HttpPushback.pushback(Ok(&grpc)), Some(Pushback::DontRetry));
/// # Ok::<(), http::Error>(())
/// ```
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpPushback;

#[cfg(feature = "http")]
impl HttpPushback {
    /// The pushback `headers` carry, as this reader reads them.
    pub fn read(headers: &http::HeaderMap) -> Option<Pushback> {
        if headers
            .get_all(DONT_RETRY_HEADER)
            .iter()
            .any(|value| is_dont_retry(value.as_bytes()))
        {
            return Some(Pushback::DontRetry);
        }
        let mut grpc = headers.get_all(GRPC_PUSHBACK).iter();
        if let Some(first) = grpc.next() {
            return Some(match grpc.next() {
                None => grpc_pushback_ms(first.as_bytes()),
                Some(_) => Pushback::DontRetry,
            });
        }
        let mut after = headers.get_all(http::header::RETRY_AFTER).iter();
        match (after.next(), after.next()) {
            (Some(value), None) => retry_after(value.as_bytes()),
            _ => None,
        }
    }
}

#[cfg(feature = "http")]
impl<B> ReadPushback<http::Response<B>> for HttpPushback {
    fn pushback(&self, result: Result<&http::Response<B>, &BoxError>) -> Option<Pushback> {
        result
            .ok()
            .and_then(|response| Self::read(response.headers()))
    }

    fn mark_gave_up(&self, response: &mut http::Response<B>, mark: GaveUpMark) {
        response.extensions_mut().insert(mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grpc_pushback_reads_as_a6_specifies() {
        assert_eq!(grpc_pushback_ms(b"0"), Pushback::After(Duration::ZERO));
        assert_eq!(grpc_pushback_ms(b"1500"), Pushback::After(1500 * MS));
        assert_eq!(grpc_pushback_ms(b"007"), Pushback::After(7 * MS));
        for negative in [&b"-1"[..], b"-0", b"-999999999999999999999999"] {
            assert_eq!(
                grpc_pushback_ms(negative),
                Pushback::DontRetry,
                "{negative:?}"
            );
        }
        for malformed in [
            &b""[..],
            b"-",
            b"+5",
            b" 5",
            b"5 ",
            b"1.5",
            b"5ms",
            b"abc",
            b"1e3",
            b"0x10",
        ] {
            assert_eq!(
                grpc_pushback_ms(malformed),
                Pushback::DontRetry,
                "{malformed:?}"
            );
        }
        let overlong = "9".repeat(10_000);
        assert_eq!(
            grpc_pushback_ms(overlong.as_bytes()),
            Pushback::After(Duration::from_millis(u64::MAX)),
            "saturates: longer than any max_pushback"
        );
    }

    #[test]
    fn retry_after_reads_delta_seconds_and_ignores_the_rest() {
        assert_eq!(retry_after(b"0"), Some(Pushback::After(Duration::ZERO)));
        assert_eq!(
            retry_after(b"120"),
            Some(Pushback::After(Duration::from_secs(120)))
        );
        assert_eq!(
            retry_after("9".repeat(400).as_bytes()),
            Some(Pushback::After(Duration::from_secs(u64::MAX)))
        );
        for ignored in [
            &b""[..],
            b"-1",
            b"1.5",
            b"soon",
            b"Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(retry_after(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn the_dont_retry_mark_is_written_and_read_back() {
        let (name, value) = dont_retry_header(true);
        assert_eq!(name, "grpc-retry-pushback-ms");
        assert_eq!(grpc_pushback_ms(value.as_bytes()), Pushback::DontRetry);
        let (name, value) = dont_retry_header(false);
        assert_eq!(name, "rampart-retry");
        assert!(is_dont_retry(value.as_bytes()));
        assert!(is_dont_retry(b"No"));
        assert!(!is_dont_retry(b"yes") && !is_dont_retry(b""));
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_headers_are_read_with_dont_retry_first_and_duplicates_as_specified() {
        let read = |pairs: &[(&str, &str)]| {
            let mut headers = http::HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    http::HeaderValue::from_str(value).expect("value"),
                );
            }
            HttpPushback::read(&headers)
        };
        assert_eq!(read(&[]), None);
        assert_eq!(
            read(&[("grpc-retry-pushback-ms", "20")]),
            Some(Pushback::After(20 * MS))
        );
        assert_eq!(
            read(&[
                ("grpc-retry-pushback-ms", "20"),
                ("grpc-retry-pushback-ms", "20")
            ]),
            Some(Pushback::DontRetry),
            "several values: malformed"
        );
        assert_eq!(
            read(&[("grpc-retry-pushback-ms", "")]),
            Some(Pushback::DontRetry)
        );
        assert_eq!(
            read(&[("retry-after", "2"), ("grpc-retry-pushback-ms", "20")]),
            Some(Pushback::After(20 * MS)),
            "gRPC's first"
        );
        assert_eq!(
            read(&[("grpc-retry-pushback-ms", "20"), ("rampart-retry", "no")]),
            Some(Pushback::DontRetry),
            "don't retry wins"
        );
        assert_eq!(read(&[("rampart-retry", "yes")]), None);
        assert_eq!(
            read(&[("retry-after", "2")]),
            Some(Pushback::After(2000 * MS))
        );
        assert_eq!(read(&[("retry-after", "2"), ("retry-after", "3")]), None);
        assert_eq!(read(&[("retry-after", "-3")]), None);
    }
}
