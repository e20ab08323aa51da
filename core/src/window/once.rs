//! [`OncePerBucket`]: lets exactly one caller act in each bucket of a window.

use std::sync::atomic::{AtomicU64, Ordering};

/// Grants one claim per bucket number, to whichever caller asks first: for work done once per
/// bucket from the request path (publishing gauges, letting one probe through) without a lock.
///
/// Buckets are numbered as [`RollingWindow::bucket_at`](super::RollingWindow::bucket_at)
/// numbers them. A claim for a bucket older than one already claimed is refused.
///
/// ```
/// use rampart_core::OncePerBucket;
///
/// let once = OncePerBucket::new();
/// assert!(once.claim(0));
/// assert!(!once.claim(0));
/// assert!(once.claim(3));
/// assert!(!once.claim(2));
/// ```
#[derive(Debug, Default)]
pub struct OncePerBucket {
    /// One more than the newest bucket claimed; 0 before any claim.
    next: AtomicU64,
}

impl OncePerBucket {
    /// No bucket claimed yet.
    pub const fn new() -> Self {
        Self {
            next: AtomicU64::new(0),
        }
    }

    /// Whether this call is the first to claim `bucket` (and no newer bucket was claimed).
    #[inline]
    pub fn claim(&self, bucket: u64) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        bucket >= next
            && self
                .next
                .compare_exchange(
                    next,
                    bucket.saturating_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn many_threads_claim_each_bucket_at_most_once() {
        const BUCKETS: usize = 1_000;
        let once = Arc::new(OncePerBucket::new());
        let grants: Arc<Vec<AtomicUsize>> =
            Arc::new((0..BUCKETS).map(|_| AtomicUsize::new(0)).collect());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (once, grants) = (Arc::clone(&once), Arc::clone(&grants));
                std::thread::spawn(move || {
                    for bucket in 0..BUCKETS {
                        if once.claim(bucket as u64) {
                            grants[bucket].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        // No bucket is ever granted twice (a thread that falls behind may find its bucket
        // passed over: it then acts in a newer one).
        let granted: Vec<usize> = grants.iter().map(|g| g.load(Ordering::Relaxed)).collect();
        assert!(granted.iter().all(|&n| n <= 1), "{granted:?}");
        assert!(granted.iter().sum::<usize>() >= 1);
        assert!(!once.claim(BUCKETS as u64 - 1));
    }
}
