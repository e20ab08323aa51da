//! The facade's `rampart::http::ErrorStatus` (`with_overloaded`, `with_retry_after`): every
//! setting maps a refusal to its status, with a `Retry-After` of whole seconds, rounded up.

use std::time::Duration;

use hyper::{StatusCode, header};
use rampart::http::ErrorStatus;
use rampart::ratelimit::Overloaded;

use super::harness::{Builder, Used, ensure};
use super::hostile::Draw;

const STATUSES: &[u16] = &[429, 503, 500, 200, 599];

/// A status for `Overloaded` and a `Retry-After` delay (or none).
pub type Case = (u16, Option<Duration>);

fn use_mapping(status: u16, retry_after: Option<Duration>) -> Used {
    let status = StatusCode::from_u16(status).map_err(|e| e.to_string())?;
    let mapping = ErrorStatus::default()
        .with_overloaded(status)
        .with_retry_after(retry_after);
    let mapped = mapping
        .of(&Overloaded::new())
        .ok_or("Overloaded is not mapped")?;
    ensure!(mapped.status == status, "mapped to {}", mapped.status);
    let headers = mapped.headers();
    let seconds = headers
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().ok().and_then(|s| s.parse::<u64>().ok()));
    match retry_after {
        None => ensure!(seconds.is_none(), "Retry-After without a delay"),
        Some(wait) => {
            let due = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1);
            ensure!(
                seconds == Some(Some(due)),
                "Retry-After {seconds:?} for {wait:?}, where {due} is due"
            );
        }
    }
    Ok(())
}

/// `ErrorStatus::default().with_overloaded(status).with_retry_after(delay)`, mapping
/// `Overloaded`.
pub const ERROR_STATUS: Builder<(), Case> = Builder {
    name: "ErrorStatus",
    context: || (),
    draw: |draw: &mut Draw| {
        let delay = draw.duration("retry_after", Duration::ZERO..=Duration::from_secs(120));
        (draw.pick(STATUSES), draw.bool().then_some(delay))
    },
    bad_fields: |_| Vec::new(),
    build_and_use: |(), (status, retry_after)| Ok(use_mapping(*status, *retry_after)),
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
