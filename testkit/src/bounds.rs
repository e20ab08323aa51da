//! The bounds of a keyed group under a model test, and their strategy.
//!
//! ```
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use rampart_testkit::bounds::bounds;
//!
//! let mut runner = TestRunner::deterministic();
//! let drawn = bounds().new_tree(&mut runner).unwrap().current();
//! assert!(drawn.max_keys == 1 || drawn.max_keys == 64);
//! ```

use std::time::Duration;

use proptest::prelude::*;

/// A group's bounds: at most one key (a new key evicts the other, unless it has requests in
/// flight), or room for all. (A group spreads its keys over up to 8 shards, each with its share
/// of the bound: the [`Membership`](crate::membership::Membership) model is exact for these
/// two bounds only.)
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The most keys the group holds.
    pub max_keys: usize,
    /// How long a key may go unused before the group may evict it.
    pub idle_timeout: Duration,
}

/// A bound of one key or of 64, and an idle timeout from 50 ms to 10 minutes (some at a
/// second, the resolution of a key's last use, and around it).
pub fn bounds() -> impl Strategy<Value = Bounds> {
    (
        prop::sample::select(vec![1_usize, 64]),
        prop::sample::select(vec![50_u64, 900, 1_000, 2_500, 600_000]),
    )
        .prop_map(|(max_keys, idle_ms)| Bounds {
            max_keys,
            idle_timeout: Duration::from_millis(idle_ms),
        })
}
