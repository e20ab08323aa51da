//! Which bucket of a rolling window an instant falls in, as a layer's reference model counts
//! it: buckets numbered from the clock's reading when the layer was built, an event at an
//! older instant than the newest bucket's (the clock stepped back) joining the newest.
//!
//! ```
//! use std::time::Duration;
//!
//! use rampart_testkit::buckets::Buckets;
//!
//! let ms = Duration::from_millis;
//! let mut buckets = Buckets::new(ms(1_000), ms(100), 10);
//! assert_eq!(buckets.at(ms(1_250)), 2);
//! buckets.advance(ms(1_250));
//! // The clock stepped back: the event joins the newest bucket.
//! assert_eq!(buckets.at(ms(1_050)), 2);
//! assert_eq!(buckets.first(12), 3);
//! ```

use std::time::Duration;

/// The newest bucket a window can number (2⁴⁸ − 1); later records stay in it.
const MAX_SLOT: u128 = (1 << 48) - 1;

/// The numbering of a rolling window's buckets, and the newest one the window has moved to.
#[derive(Debug, Clone)]
pub struct Buckets {
    /// The clock's reading when the layer was built: bucket 0 starts there.
    origin: Duration,
    bucket_nanos: u128,
    len: u64,
    newest: u64,
}

impl Buckets {
    /// A window of `len` buckets of `bucket` each, bucket 0 starting at `origin`.
    pub fn new(origin: Duration, bucket: Duration, len: usize) -> Self {
        Self {
            origin,
            bucket_nanos: bucket.as_nanos(),
            len: len as u64,
            newest: 0,
        }
    }

    /// The bucket an event at `now` counts in (never older than the newest).
    pub fn at(&self, now: Duration) -> u64 {
        let slot = (now.saturating_sub(self.origin).as_nanos() / self.bucket_nanos).min(MAX_SLOT);
        (slot as u64).max(self.newest)
    }

    /// Moves the window to the bucket of `now`, and returns that bucket.
    pub fn advance(&mut self, now: Duration) -> u64 {
        self.newest = self.at(now);
        self.newest
    }

    /// The newest bucket the window has moved to.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// The oldest bucket of the window whose newest bucket is `last`.
    pub fn first(&self, last: u64) -> u64 {
        (last + 1).saturating_sub(self.len)
    }
}
