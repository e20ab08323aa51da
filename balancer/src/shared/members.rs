//! The shared balancer's endpoints: [`Member`]s in a list that picks read without a lock and
//! updates replace whole.
//!
//! The list is an [`ArcSwap`] of a vector of `Arc<Member>`: a pick loads the current vector
//! (no lock, no write to a cache line another thread reads), draws from it, and drops the
//! guard. An update (an insertion, a removal, an endpoint dropped because its `poll_ready`
//! failed) takes the writer lock, copies the vector of pointers, changes the copy and
//! publishes it; picks running meanwhile finish on the vector they loaded. Updates are rare
//! and cost O(endpoints); picks never wait for them.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rampart_core::pick_hint::EndpointId;
use rampart_core::saturating_nanos;

use crate::endpoint::{EndpointStats, saturating_duration};
use crate::metrics::EndpointMetrics;

/// What an endpoint keeps across a re-insertion of its key: statistics, counts, metrics.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) stats: EndpointStats,
    /// When it was last picked (or added), in nanoseconds.
    last_pick: AtomicU64,
    pub(crate) metrics: EndpointMetrics,
    /// Whether its cost has crossed into avoidance (reported with feature `tracing`).
    #[cfg(feature = "tracing")]
    pub(crate) avoided: AtomicBool,
    /// The balancer's name and the endpoint's label, for the events.
    #[cfg(feature = "tracing")]
    pub(crate) name: String,
    #[cfg(feature = "tracing")]
    pub(crate) label: String,
}

impl Record {
    /// A new endpoint's record, as if just picked at `now` (the force-pick clock starts).
    pub(crate) fn new(
        stats: EndpointStats,
        metrics: EndpointMetrics,
        now: Duration,
        (name, label): (&str, String),
    ) -> Self {
        #[cfg(not(feature = "tracing"))]
        let _ = (name, label);
        Self {
            stats,
            last_pick: AtomicU64::new(saturating_nanos(now)),
            metrics,
            #[cfg(feature = "tracing")]
            avoided: AtomicBool::new(false),
            #[cfg(feature = "tracing")]
            name: name.to_owned(),
            #[cfg(feature = "tracing")]
            label,
        }
    }

    /// When it was last picked (or added: the force-pick clock starts then).
    #[inline]
    pub(crate) fn last_pick(&self) -> Duration {
        Duration::from_nanos(self.last_pick.load(Ordering::Relaxed))
    }

    /// Counts a request sent to it at `now` (the count itself is the statistics' requests
    /// begun).
    #[inline]
    pub(crate) fn picked(&self, now: Duration) {
        self.last_pick
            .store(saturating_nanos(now), Ordering::Relaxed);
        self.metrics.picks.increment(1);
    }
}

/// One endpoint of the shared balancer: its key, the service every request's clone is made
/// from, whether it is ready, and its [`Record`].
///
/// Aligned to 128 bytes, so that its `Arc`'s counts, written by each request sent to it,
/// share no cache line with what the picks of other threads read.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Member<K, Svc> {
    pub(crate) key: K,
    /// Its name in pick hints.
    pub(crate) id: EndpointId,
    /// Never polled or called itself: each request goes to a clone of it.
    pub(crate) service: Svc,
    /// Whether the last clone polled was ready (a new member is not, until a clone is).
    ready: AtomicBool,
    /// A clone that answered `Pending`, kept to be polled until it is ready.
    pub(crate) probe: Mutex<Option<Svc>>,
    pub(crate) record: Arc<Record>,
}

impl<K: Hash, Svc> Member<K, Svc> {
    pub(crate) fn new(key: K, service: Svc, record: Arc<Record>) -> Self {
        Self {
            id: EndpointId::of(&key),
            key,
            service,
            ready: AtomicBool::new(false),
            probe: Mutex::new(None),
            record,
        }
    }
}

impl<K, Svc> Member<K, Svc> {
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// One published list of members.
pub(crate) type List<K, Svc> = Vec<Arc<Member<K, Svc>>>;

/// The list of members: read without a lock, replaced whole under the writer lock.
pub(crate) struct Members<K, Svc> {
    list: ArcSwap<List<K, Svc>>,
    writer: Mutex<()>,
}

impl<K, Svc> Members<K, Svc> {
    pub(crate) fn new() -> Self {
        Self {
            list: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    /// The current list, for a pick: no lock is taken.
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<List<K, Svc>>> {
        self.list.load()
    }

    /// Replaces the list by what `change` makes of a copy of it, under the writer lock (one
    /// writer at a time; readers never wait). Returns the new length and `change`'s result.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut List<K, Svc>) -> R) -> (usize, R) {
        let _writer = self.writer.lock();
        let mut next: List<K, Svc> = self.list.load().as_ref().clone();
        let result = change(&mut next);
        let len = next.len();
        self.list.store(Arc::new(next));
        (len, result)
    }

    /// Drops `member` if it is still in the list (a replacement of its key stays).
    pub(crate) fn remove_member(&self, member: &Arc<Member<K, Svc>>) -> Option<usize> {
        let (len, found) = self.update(|list| {
            let at = list.iter().position(|m| Arc::ptr_eq(m, member));
            at.map(|at| list.swap_remove(at))
        });
        found.map(|_| len)
    }
}

impl<K: Hash + Eq, Svc> Members<K, Svc> {
    /// Inserts `service` under `key`: a new key gets a new record made by `record` (from the
    /// median latency of the warm members); a known key keeps its record, with the new service
    /// to poll anew. Returns the new length.
    pub(crate) fn insert(
        &self,
        key: K,
        service: Svc,
        record: impl FnOnce(Duration) -> Record,
    ) -> usize {
        self.update(|list| {
            if let Some(at) = list.iter().position(|m| m.key == key) {
                let kept = Arc::clone(&list[at].record);
                list[at] = Arc::new(Member::new(key, service, kept));
            } else {
                let prior = median_warm_lag(list);
                list.push(Arc::new(Member::new(key, service, Arc::new(record(prior)))));
            }
        })
        .0
    }

    /// Removes `key`'s member; its requests in flight complete normally. Returns the new
    /// length if the key was known.
    pub(crate) fn remove(&self, key: &K) -> Option<usize> {
        let (len, found) = self.update(|list| {
            let at = list.iter().position(|m| m.key == *key);
            at.map(|at| list.swap_remove(at))
        });
        found.map(|_| len)
    }
}

/// The median EWMA latency of the members that have completed requests; zero if none.
fn median_warm_lag<K, Svc>(list: &[Arc<Member<K, Svc>>]) -> Duration {
    let mut lags: Vec<f64> = list
        .iter()
        .filter(|m| m.record.stats.is_warm())
        .map(|m| m.record.stats.lag_ns())
        .collect();
    if lags.is_empty() {
        return Duration::ZERO;
    }
    lags.sort_by(f64::total_cmp);
    saturating_duration(lags[lags.len() / 2])
}
