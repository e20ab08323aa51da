//! [`BucketStats`]: the `sum` and `count` of one bucket, or of several added together.

/// The `sum` and `count` of a bucket, or of several buckets added together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BucketStats {
    /// The sum of the recorded values.
    pub sum: u64,
    /// The number of recorded values.
    pub count: u64,
}

impl BucketStats {
    /// `sum / count`, or `None` when nothing was recorded.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl std::ops::Add for BucketStats {
    type Output = Self;

    /// Adds sums and counts (wrapping, as the buckets do).
    fn add(self, other: Self) -> Self {
        Self {
            sum: self.sum.wrapping_add(other.sum),
            count: self.count.wrapping_add(other.count),
        }
    }
}
