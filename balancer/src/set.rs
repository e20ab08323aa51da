//! [`EndpointSet`]: the balancer's endpoints, found by key and by readiness in constant time.
//!
//! Four structures describe the endpoints:
//!
//! - `endpoints`: the records, in no particular order. An endpoint's position in it (its
//!   `at`) is what the other structures hold; it changes only when a removal moves the last
//!   record into the gap.
//! - `index`: each key's position.
//! - `ready`: the positions of the endpoints believed ready, the pick's candidates.
//! - `pending`: the positions of the endpoints to poll until they are ready.
//!
//! and each record's `slot` says which of the two lists holds it, and where.
//!
//! # Invariant
//!
//! Every endpoint is in exactly one of `ready` and `pending`, once, and the structures agree:
//! for every position `at`,
//!
//! - `index[endpoints[at].key] == at`;
//! - `endpoints[at].slot` is `Ready(p)` with `ready[p] == at`, or `Pending(p)` with
//!   `pending[p] == at`;
//!
//! and `index`, `endpoints` and `ready` + `pending` have the same length. Each operation
//! restores it before returning (a debug assertion checks it after each change): so a move
//! between the lists and a removal are swap-removes, in constant time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::{EndpointStats, saturating_duration};
use crate::metrics::EndpointMetrics;

/// Where an endpoint sits: in the ready list or the pending list, at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ready(usize),
    Pending(usize),
}

/// One endpoint as the balancer keeps it.
pub(crate) struct Endpoint<K, S> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) stats: Arc<EndpointStats>,
    pub(crate) metrics: EndpointMetrics,
    /// Requests sent to it.
    pub(crate) picks: u64,
    /// When it was last picked (or added: the force-pick clock starts then).
    pub(crate) last_pick: Duration,
    /// Whether its cost has crossed into avoidance (reported with feature `tracing`).
    #[cfg(feature = "tracing")]
    pub(crate) avoided: bool,
    slot: Slot,
}

impl<K, S> Endpoint<K, S> {
    /// A new endpoint, as if just picked at `now`: it competes on its prior statistics, and
    /// is forced in if it keeps losing.
    pub(crate) fn new(
        key: K,
        service: S,
        stats: Arc<EndpointStats>,
        metrics: EndpointMetrics,
        now: Duration,
    ) -> Self {
        Self {
            key,
            service,
            stats,
            metrics,
            picks: 0,
            last_pick: now,
            #[cfg(feature = "tracing")]
            avoided: false,
            slot: Slot::Pending(0),
        }
    }

    /// Whether it is in the ready list.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.slot, Slot::Ready(_))
    }
}

/// The balancer's endpoints (see the module docs for the invariant tying its parts).
pub(crate) struct EndpointSet<K, S> {
    endpoints: Vec<Endpoint<K, S>>,
    index: HashMap<K, usize>,
    ready: Vec<usize>,
    pending: Vec<usize>,
}

impl<K, S> EndpointSet<K, S> {
    pub(crate) fn new() -> Self {
        Self {
            endpoints: Vec::new(),
            index: HashMap::new(),
            ready: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The number of endpoints, ready or not.
    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// The positions of the ready endpoints, the pick's candidates.
    pub(crate) fn ready(&self) -> &[usize] {
        &self.ready
    }

    /// The position of the `nth` pending endpoint.
    pub(crate) fn pending(&self, nth: usize) -> Option<usize> {
        self.pending.get(nth).copied()
    }

    /// Every endpoint, in position order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Endpoint<K, S>> {
        self.endpoints.iter()
    }

    /// The endpoint at position `at` (which must exist).
    pub(crate) fn get(&self, at: usize) -> &Endpoint<K, S> {
        &self.endpoints[at]
    }

    /// The endpoint at position `at` (which must exist).
    pub(crate) fn get_mut(&mut self, at: usize) -> &mut Endpoint<K, S> {
        &mut self.endpoints[at]
    }

    /// The median EWMA latency of the endpoints that have measured a latency; zero if none.
    pub(crate) fn median_warm_lag(&self) -> Duration {
        let mut lags: Vec<f64> = self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.stats.is_warm())
            .map(|endpoint| endpoint.stats.lag_ns())
            .collect();
        if lags.is_empty() {
            return Duration::ZERO;
        }
        lags.sort_by(f64::total_cmp);
        saturating_duration(lags[lags.len() / 2])
    }

    fn attach_ready(&mut self, at: usize) {
        self.endpoints[at].slot = Slot::Ready(self.ready.len());
        self.ready.push(at);
    }

    fn attach_pending(&mut self, at: usize) {
        self.endpoints[at].slot = Slot::Pending(self.pending.len());
        self.pending.push(at);
    }

    /// Takes endpoint `at` out of its list, repointing the entry moved into its place.
    fn detach(&mut self, at: usize) {
        let (list, position) = match self.endpoints[at].slot {
            Slot::Ready(position) => (&mut self.ready, position),
            Slot::Pending(position) => (&mut self.pending, position),
        };
        list.swap_remove(position);
        if let Some(&moved) = list.get(position) {
            self.endpoints[moved].slot = match self.endpoints[moved].slot {
                Slot::Ready(_) => Slot::Ready(position),
                Slot::Pending(_) => Slot::Pending(position),
            };
        }
    }
}

impl<K: Hash + Eq + Clone, S> EndpointSet<K, S> {
    /// The position of `key`'s endpoint.
    pub(crate) fn find(&self, key: &K) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Adds `endpoint`, whose key must be new, at the end of the pending list; returns its
    /// position.
    pub(crate) fn add(&mut self, endpoint: Endpoint<K, S>) -> usize {
        let at = self.endpoints.len();
        self.index.insert(endpoint.key.clone(), at);
        self.endpoints.push(endpoint);
        self.attach_pending(at);
        self.debug_check();
        at
    }

    /// Moves endpoint `at` to the end of the ready list.
    pub(crate) fn make_ready(&mut self, at: usize) {
        self.detach(at);
        self.attach_ready(at);
        self.debug_check();
    }

    /// Moves endpoint `at` to the end of the pending list (also when it is pending already).
    pub(crate) fn make_pending(&mut self, at: usize) {
        self.detach(at);
        self.attach_pending(at);
        self.debug_check();
    }

    /// Removes endpoint `at`; the last endpoint takes its position. Returns the position the
    /// moved endpoint had (`None` when `at` was the last).
    pub(crate) fn remove(&mut self, at: usize) -> Option<usize> {
        self.detach(at);
        let last = self.endpoints.len() - 1;
        let removed = self.endpoints.swap_remove(at);
        self.index.remove(&removed.key);
        if at != last {
            // The endpoint that was last now lives at `at`: repoint its list entry and index.
            self.index.insert(self.endpoints[at].key.clone(), at);
            match self.endpoints[at].slot {
                Slot::Ready(position) => self.ready[position] = at,
                Slot::Pending(position) => self.pending[position] = at,
            }
        }
        self.debug_check();
        (at != last).then_some(last)
    }

    /// Checks the invariant in debug builds.
    fn debug_check(&self) {
        if cfg!(debug_assertions)
            && let Err(broken) = self.check()
        {
            panic!("endpoint set invariant broken: {broken}");
        }
    }

    /// The invariant of the module docs, or the first place it is broken.
    fn check(&self) -> Result<(), String> {
        let len = self.endpoints.len();
        if self.index.len() != len || self.ready.len() + self.pending.len() != len {
            return Err(format!(
                "{len} endpoints, {} keys, {} ready, {} pending",
                self.index.len(),
                self.ready.len(),
                self.pending.len()
            ));
        }
        for (at, endpoint) in self.endpoints.iter().enumerate() {
            if self.index.get(&endpoint.key) != Some(&at) {
                let indexed = self.index.get(&endpoint.key);
                return Err(format!("endpoint {at}: its key indexes {indexed:?}"));
            }
            let held = match endpoint.slot {
                Slot::Ready(position) => self.ready.get(position),
                Slot::Pending(position) => self.pending.get(position),
            };
            if held != Some(&at) {
                return Err(format!("endpoint {at}: {:?} holds {held:?}", endpoint.slot));
            }
        }
        // With the lengths equal, every slot pointing at its own entry leaves no entry over.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::BalancerMetrics;

    fn endpoint(key: u32) -> Endpoint<u32, ()> {
        let metrics = BalancerMetrics::new("test").endpoint(key.to_string());
        let stats = Arc::new(EndpointStats::new(
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        Endpoint::new(key, (), stats, metrics, Duration::ZERO)
    }

    fn keys_of(set: &EndpointSet<u32, ()>, positions: &[usize]) -> Vec<u32> {
        let mut keys: Vec<u32> = positions.iter().map(|&at| set.get(at).key).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn the_invariant_holds_through_random_operations() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut set = EndpointSet::new();
        // The model: which keys exist, and which of them are ready.
        let mut ready = std::collections::BTreeMap::new();
        for step in 0..10_000 {
            let key = rng.u32(..12);
            match (set.find(&key), rng.u8(..4)) {
                (None, _) => {
                    set.add(endpoint(key));
                    ready.insert(key, false);
                }
                (Some(at), 0) => {
                    let last = set.len() - 1;
                    assert_eq!(set.remove(at), (at != last).then_some(last));
                    ready.remove(&key);
                }
                (Some(at), 1) => {
                    set.make_pending(at);
                    ready.insert(key, false);
                }
                (Some(at), _) => {
                    set.make_ready(at);
                    ready.insert(key, true);
                }
            }
            assert_eq!(set.check(), Ok(()), "step {step}");
            let expected: Vec<u32> = ready.iter().filter(|r| *r.1).map(|r| *r.0).collect();
            assert_eq!(keys_of(&set, set.ready()), expected, "step {step}");
            assert_eq!(set.len(), ready.len());
            for (&key, &is_ready) in &ready {
                let at = set.find(&key).expect("present");
                assert_eq!((set.get(at).key, set.get(at).is_ready()), (key, is_ready));
            }
        }
    }

    #[test]
    fn a_removal_moves_the_last_endpoint_into_the_gap() {
        let mut set = EndpointSet::new();
        for key in 0..3 {
            set.add(endpoint(key));
        }
        set.make_ready(2);
        assert_eq!(set.remove(0), Some(2), "the last, 2, moves to 0");
        assert_eq!((set.find(&2), set.ready()), (Some(0), &[0][..]));
        assert_eq!(set.find(&1), Some(1));
        assert_eq!(set.pending(0), Some(1));
        assert_eq!(set.pending(1), None);
    }

    #[test]
    fn the_check_reports_a_broken_slot() {
        let mut set = EndpointSet::new();
        set.add(endpoint(0));
        set.add(endpoint(1));
        set.endpoints[0].slot = Slot::Pending(1);
        let broken = set.check().expect_err("two endpoints claim one entry");
        assert!(broken.starts_with("endpoint 0"), "{broken}");
    }

    #[test]
    fn the_median_warm_lag_ignores_cold_endpoints() {
        let mut set = EndpointSet::new();
        assert_eq!(set.median_warm_lag(), Duration::ZERO);
        for (key, lag_ms) in [(0, 30), (1, 10), (2, 20)] {
            let at = set.add(endpoint(key));
            let stats = &set.get(at).stats;
            let ticket = stats.begin_now(Duration::ZERO);
            let outcome = Some(rampart_core::Outcome::Success);
            stats.end_now(&ticket, Duration::from_millis(lag_ms), outcome);
        }
        set.add(endpoint(3));
        assert_eq!(set.median_warm_lag(), Duration::from_millis(20));
    }
}
