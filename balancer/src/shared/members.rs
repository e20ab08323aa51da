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
use metrics::Counter;
use parking_lot::Mutex;
use rampart_core::pick_hint::EndpointId;
use rampart_core::saturating_nanos;

use crate::endpoint::{EndpointStats, saturating_duration};
use crate::metrics::EndpointMetrics;

/// One stripe of threads' view of an endpoint: the statistics of the requests those threads
/// sent to it (in flight, latency and success EWMAs), when they last picked it, and its
/// pick counter.
///
/// Each thread picks and records on its own lane of every endpoint, so that the requests of
/// two cores never write one cache line: aligned to 128 bytes and reached through an `Arc` of
/// its own, whose counts (written by each request sent through the lane) then sit on lines of
/// their own too.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Lane {
    pub(crate) stats: EndpointStats,
    /// When the lane's threads last picked the endpoint (or it was added), in nanoseconds.
    last_pick: AtomicU64,
    picks: Counter,
}

impl Lane {
    /// When the lane's threads last picked the endpoint (or it was added: the force-pick
    /// clock starts then).
    #[inline]
    pub(crate) fn last_pick(&self) -> Duration {
        Duration::from_nanos(self.last_pick.load(Ordering::Relaxed))
    }

    /// Counts a request sent to the endpoint at `now` (the count itself is the statistics'
    /// requests begun).
    #[inline]
    pub(crate) fn picked(&self, now: Duration) {
        self.last_pick
            .store(saturating_nanos(now), Ordering::Relaxed);
        self.picks.increment(1);
    }
}

/// What an endpoint keeps across a re-insertion of its key: its lanes, its static weight,
/// its metrics.
#[derive(Debug)]
pub(crate) struct Record {
    /// One per stripe of threads (see
    /// [`Stripes::thread_stripe`](rampart_core::Stripes::thread_stripe)), or one for a
    /// balancer with a seed; never empty.
    lanes: Box<[Arc<Lane>]>,
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

/// An endpoint's statistics over all its lanes, for observation and for a new peer's prior.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Merged {
    /// The mean of the warm lanes' latency EWMAs (the prior when no lane is warm), in
    /// nanoseconds.
    pub(crate) lag_ns: f64,
    /// The same mean of the lanes' effective latencies (see
    /// [`EndpointStats::effective_lag_ns`]).
    pub(crate) effective_lag_ns: f64,
    /// The mean of the success EWMAs of the lanes that have learnt an outcome (1 when none
    /// has).
    pub(crate) success: f64,
    /// Requests in flight, over all lanes.
    pub(crate) inflight: u64,
    /// Requests begun, over all lanes.
    pub(crate) begun: u64,
    pub(crate) weight: f64,
    /// Whether any lane has measured a latency.
    pub(crate) warm: bool,
}

impl Record {
    /// A new endpoint's record with `lanes` lanes starting from `prior` latency, decaying
    /// with `tau`, its requests placed at instants `tick` apart, as if just picked at `now`
    /// (the force-pick clock starts).
    pub(crate) fn new(
        (prior, tau, tick): (Duration, Duration, Duration),
        lanes: usize,
        metrics: EndpointMetrics,
        now: Duration,
        (name, label): (&str, String),
    ) -> Self {
        #[cfg(not(feature = "tracing"))]
        let _ = (name, label);
        let lanes = (0..lanes.max(1))
            .map(|_| {
                Arc::new(Lane {
                    stats: EndpointStats::new(prior, tau, tick),
                    last_pick: AtomicU64::new(saturating_nanos(now)),
                    picks: metrics.picks.clone(),
                })
            })
            .collect();
        Self {
            lanes,
            metrics,
            #[cfg(feature = "tracing")]
            avoided: AtomicBool::new(false),
            #[cfg(feature = "tracing")]
            name: name.to_owned(),
            #[cfg(feature = "tracing")]
            label,
        }
    }

    /// The lane of stripe `stripe` (the first if there is no such stripe).
    #[inline]
    pub(crate) fn lane(&self, stripe: usize) -> &Arc<Lane> {
        self.lanes.get(stripe).unwrap_or(&self.lanes[0])
    }

    /// Sets the static weight on every lane.
    pub(crate) fn set_weight(&self, weight: f64) {
        for lane in &self.lanes {
            lane.stats.set_weight(weight);
        }
    }

    /// The mean of the warm lanes' latency EWMAs, in nanoseconds; `None` if no lane is warm.
    pub(crate) fn warm_lag_ns(&self) -> Option<f64> {
        let (mut total, mut warm) = (0.0, 0_u32);
        for lane in self.lanes.iter().filter(|lane| lane.stats.is_warm()) {
            total += lane.stats.lag_ns();
            warm += 1;
        }
        (warm > 0).then(|| total / f64::from(warm))
    }

    /// The endpoint's statistics over all lanes at `now`.
    pub(crate) fn merged(&self, now: Duration) -> Merged {
        let first = &self.lanes[0].stats;
        let mut merged = Merged {
            lag_ns: 0.0,
            effective_lag_ns: 0.0,
            success: 0.0,
            inflight: 0,
            begun: 0,
            weight: first.weight(),
            warm: false,
        };
        // Lanes that have measured a latency, and lanes that have learnt an outcome (on a
        // clock with a recent time, a lane may have the second without the first).
        let (mut warm, mut judged) = (0_u32, 0_u32);
        for lane in &self.lanes {
            let stats = &lane.stats;
            merged.inflight += stats.inflight();
            merged.begun += stats.begun();
            if stats.is_warm() {
                warm += 1;
                merged.lag_ns += stats.lag_ns();
                merged.effective_lag_ns += stats.effective_lag_ns(now);
            }
            if stats.has_outcomes() {
                judged += 1;
                merged.success += stats.success();
            }
        }
        if warm == 0 {
            merged.lag_ns = first.lag_ns();
            merged.effective_lag_ns = first.effective_lag_ns(now);
        } else {
            let warm = f64::from(warm);
            merged.lag_ns /= warm;
            merged.effective_lag_ns /= warm;
            merged.warm = true;
        }
        merged.success = if judged == 0 {
            first.success()
        } else {
            merged.success / f64::from(judged)
        };
        merged
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

/// The median EWMA latency of the members that have measured a latency; zero if none.
fn median_warm_lag<K, Svc>(list: &[Arc<Member<K, Svc>>]) -> Duration {
    let mut lags: Vec<f64> = list.iter().filter_map(|m| m.record.warm_lag_ns()).collect();
    if lags.is_empty() {
        return Duration::ZERO;
    }
    lags.sort_by(f64::total_cmp);
    saturating_duration(lags[lags.len() / 2])
}

#[cfg(test)]
mod tests {
    use rampart_core::Outcome;

    use super::*;
    use crate::metrics::BalancerMetrics;

    const MS: Duration = Duration::from_millis(1);

    fn record(lanes: usize) -> Record {
        let metrics = BalancerMetrics::new("lanes").endpoint("e".to_owned());
        Record::new(
            (5 * MS, 600 * MS, Duration::ZERO),
            lanes,
            metrics,
            Duration::ZERO,
            ("lanes", "e".to_owned()),
        )
    }

    fn complete(lane: &Lane, at: Duration, latency: Duration, outcome: Outcome) {
        let ticket = lane.stats.begin_now(at.saturating_sub(latency));
        lane.stats.end_now(&ticket, at, Some(outcome));
    }

    #[test]
    fn the_merged_view_adds_up_requests_and_averages_the_warm_lanes() {
        let record = record(2);
        let cold = record.merged(Duration::ZERO);
        assert_eq!((cold.lag_ns, cold.success, cold.warm), (5e6, 1.0, false));
        assert_eq!(record.warm_lag_ns(), None);

        complete(record.lane(0), 100 * MS, 10 * MS, Outcome::Success);
        let one = record.merged(100 * MS);
        assert_eq!(
            (one.lag_ns, one.success, one.begun),
            (10e6, 1.0, 1),
            "lane 1 is cold"
        );
        complete(record.lane(1), 100 * MS, 20 * MS, Outcome::Failure);
        let _in_flight = [
            record.lane(0).stats.begin_now(100 * MS),
            record.lane(1).stats.begin_now(100 * MS),
        ];
        let both = record.merged(100 * MS);
        assert_eq!((both.lag_ns, both.success), (15e6, 0.5));
        assert_eq!((both.inflight, both.begun, both.warm), (2, 4, true));
        assert_eq!(record.warm_lag_ns(), Some(15e6));
    }

    #[test]
    fn a_stripe_beyond_the_lanes_reads_the_first_and_weights_reach_every_lane() {
        let record = record(2);
        assert!(Arc::ptr_eq(record.lane(7), record.lane(0)));
        assert!(!Arc::ptr_eq(record.lane(1), record.lane(0)));
        record.set_weight(2.0);
        assert_eq!([0, 1].map(|at| record.lane(at).stats.weight()), [2.0, 2.0]);
        assert_eq!(record.merged(Duration::ZERO).weight, 2.0);
    }
}
