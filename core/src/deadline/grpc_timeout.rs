//! gRPC's `grpc-timeout` header: the time a caller still waits, as at most eight ASCII digits
//! and a unit (`H`, `M`, `S`, `m`, `u`, `n`: hours to nanoseconds), per the gRPC over HTTP/2
//! specification. rampart uses the same form on HTTP unless configured otherwise.
//!
//! ```
//! use std::time::Duration;
//! use rampart_core::grpc_timeout;
//!
//! assert_eq!(grpc_timeout::parse("250m"), Ok(Duration::from_millis(250)));
//! assert_eq!(grpc_timeout::format(Duration::from_millis(250)), "250000u");
//! assert!(grpc_timeout::parse("250").is_err()); // no unit
//! assert!(grpc_timeout::parse("123456789m").is_err()); // nine digits
//! ```

use std::fmt;
use std::time::Duration;

/// The most digits a value may have.
pub const MAX_DIGITS: usize = 8;

/// The largest value of eight digits.
const MAX_VALUE: u64 = 99_999_999;

/// The units, from the finest, with their length in nanoseconds.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60_000_000_000),
    (b'H', 3_600_000_000_000),
];

/// Why a `grpc-timeout` value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseTimeoutError {
    /// Empty, or a unit without digits.
    Empty,
    /// More than eight digits.
    TooLong,
    /// Zero: the specification asks for a positive value.
    Zero,
    /// A character that is not an ASCII digit before the unit (a sign, a space, a point, a
    /// non-ASCII character).
    NotDigits,
    /// The last character is not one of `H`, `M`, `S`, `m`, `u`, `n`.
    UnknownUnit,
}

impl fmt::Display for ParseTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "a grpc-timeout needs digits and a unit",
            Self::TooLong => "a grpc-timeout has at most 8 digits",
            Self::Zero => "a grpc-timeout must be positive",
            Self::NotDigits => "a grpc-timeout's value is ASCII digits only",
            Self::UnknownUnit => "a grpc-timeout's unit is one of H, M, S, m, u, n",
        })
    }
}

impl std::error::Error for ParseTimeoutError {}

/// Reads a `grpc-timeout` value: at most eight ASCII digits, positive, then its unit.
///
/// # Errors
///
/// [`ParseTimeoutError`] saying what is wrong with `value`.
pub fn parse(value: &str) -> Result<Duration, ParseTimeoutError> {
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(ParseTimeoutError::Empty);
    };
    let Some(&(_, nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(ParseTimeoutError::UnknownUnit);
    };
    if digits.is_empty() {
        return Err(ParseTimeoutError::Empty);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseTimeoutError::NotDigits);
    }
    if digits.len() > MAX_DIGITS {
        return Err(ParseTimeoutError::TooLong);
    }
    let count = digits
        .iter()
        .fold(0_u64, |count, digit| count * 10 + u64::from(digit - b'0'));
    if count == 0 {
        return Err(ParseTimeoutError::Zero);
    }
    // Whole seconds and the rest apart: 99 999 999 hours overflow a `u64` of nanoseconds.
    let seconds = Duration::from_secs(count * (nanos / 1_000_000_000));
    Ok(seconds + Duration::from_nanos(count * (nanos % 1_000_000_000)))
}

/// Writes `timeout` as a `grpc-timeout` value: the finest unit that holds it in eight digits,
/// rounded down (a caller told a little less waits no longer than it meant to), and at least
/// one of that unit. A timeout beyond 99 999 999 hours is written as that.
pub fn format(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    for (unit, length) in UNITS {
        let count = nanos / u128::from(length);
        if count <= u128::from(MAX_VALUE) {
            return format!("{}{}", count.max(1), char::from(unit));
        }
    }
    format!("{MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_read() {
        let cases = [
            ("3H", Duration::from_secs(3 * 3_600)),
            ("2M", Duration::from_secs(120)),
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("1500u", Duration::from_micros(1_500)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("00000007S", Duration::from_secs(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        assert_eq!(
            parse("99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3_600)),
            "the longest there is"
        );
    }

    #[test]
    fn malformed_values_say_what_is_wrong() {
        let cases = [
            ("", ParseTimeoutError::Empty),
            ("m", ParseTimeoutError::Empty),
            ("250", ParseTimeoutError::UnknownUnit),
            ("250x", ParseTimeoutError::UnknownUnit),
            ("250ms", ParseTimeoutError::UnknownUnit),
            ("123456789m", ParseTimeoutError::TooLong),
            ("0m", ParseTimeoutError::Zero),
            ("00000000S", ParseTimeoutError::Zero),
            ("-5m", ParseTimeoutError::NotDigits),
            ("+5m", ParseTimeoutError::NotDigits),
            (" 5m", ParseTimeoutError::NotDigits),
            ("1.5S", ParseTimeoutError::NotDigits),
            ("５m", ParseTimeoutError::NotDigits),
            ("5é", ParseTimeoutError::UnknownUnit),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn a_written_timeout_reads_back_at_most_one_unit_shorter() {
        let timeouts = [
            Duration::from_nanos(1),
            Duration::from_nanos(99_999_999),
            Duration::from_millis(100),
            Duration::from_millis(250),
            Duration::from_secs(99),
            Duration::from_secs(100),
            Duration::from_secs(86_400),
            Duration::from_secs(10 * 365 * 86_400),
        ];
        for timeout in timeouts {
            let text = format(timeout);
            assert!(text.len() <= MAX_DIGITS + 1, "{text}");
            let read = parse(&text).expect("readable");
            let unit = UNITS
                .iter()
                .find(|(name, _)| *name == *text.as_bytes().last().expect("a unit"))
                .map(|&(_, nanos)| Duration::from_nanos(nanos))
                .expect("a known unit");
            assert!(
                read <= timeout && timeout.saturating_sub(read) < unit,
                "{timeout:?} → {text}"
            );
        }
    }

    #[test]
    fn the_finest_unit_that_holds_the_value_is_chosen() {
        assert_eq!(format(Duration::from_millis(250)), "250000u");
        assert_eq!(format(Duration::from_nanos(5)), "5n");
        assert_eq!(format(Duration::from_secs(3_600)), "3600000m");
        assert_eq!(format(Duration::ZERO), "1n", "never zero");
        assert_eq!(format(Duration::MAX), "99999999H");
    }
}
