//! The configurations the model tests draw breakers from.

use std::ops::RangeInclusive;
use std::time::Duration;

use proptest::prelude::*;
use rampart_breaker::{BreakerConfig, Rejections};
use rampart_core::Outcome;

/// The values a model test draws a breaker's settings from (each rejection policy, a dry
/// run one time in four, and any seed, always).
pub(crate) struct Draws {
    /// `k`, the multiple of accepts a breaker admits before throttling.
    pub(crate) k: Vec<f64>,
    /// The calls a window needs before the breaker throttles.
    pub(crate) min_requests: Vec<u64>,
    /// The number of buckets in the window.
    pub(crate) buckets: RangeInclusive<u32>,
    /// A bucket's length, in milliseconds.
    pub(crate) bucket_ms: Vec<u64>,
    /// How a cancelled call counts (repeated values weigh more).
    pub(crate) on_cancel: Vec<Outcome>,
}

/// Breakers drawn from `draws`.
pub(crate) fn config(draws: Draws) -> impl Strategy<Value = BreakerConfig> {
    let bucket = prop::sample::select(draws.bucket_ms).prop_map(Duration::from_millis);
    (
        prop::sample::select(draws.k),
        prop::sample::select(draws.min_requests),
        (draws.buckets, bucket),
        prop::sample::select(vec![
            Rejections::Sre,
            Rejections::Ignore,
            Rejections::Adaptive,
        ]),
        prop::bool::weighted(0.75),
        prop::sample::select(draws.on_cancel),
        any::<u64>(),
    )
        .prop_map(
            |(k, min_requests, (buckets, bucket), rejections, enforce, on_cancel, seed)| {
                BreakerConfig::default()
                    .with_k(k)
                    .with_min_requests(min_requests)
                    .with_window(bucket * buckets, buckets as usize)
                    .with_rejections(rejections)
                    .with_enforce(enforce)
                    .with_on_cancel(on_cancel)
                    .with_seed(seed)
            },
        )
}
