//! [`Shared`]: what every handle of a [`SharedP2c`](crate::SharedP2c) shares: the members,
//! the discovery stream, the signals, the clock and score; and the maintenance a handle does
//! in `poll_ready` when a signal is up (draining discovery, polling endpoints not ready).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use rampart_core::{Clock, Stripes, Timing};
use tower::discover::Change;
use tower::{BoxError, Service};

use crate::P2cConfig;
use crate::metrics::BalancerMetrics;
use crate::shared::discovery::{self, Stream};
use crate::shared::members::{Member, Members, Record};
use crate::shared::signal::Signals;

/// The state all handles of one shared balancer hold a [`StripedArc`](rampart_core::StripedArc)
/// of: a handle cloned on one core and one cloned on another write different counts.
pub(crate) struct Shared<K, Svc, C, S> {
    pub(crate) members: Members<K, Svc>,
    discovery: Mutex<Stream<K, Svc>>,
    pub(crate) signals: Arc<Signals>,
    discovery_waker: Waker,
    /// The waker every endpoint clone is polled with.
    pub(crate) probe_waker: Waker,
    pub(crate) config: P2cConfig,
    pub(crate) clock: C,
    /// How requests are placed in time and which are timed.
    pub(crate) timing: Timing,
    pub(crate) score: S,
    metrics: BalancerMetrics,
    pub(crate) label: Mutex<fn(&K) -> String>,
    /// Handles made so far, with a seed: each one's stream of draws (on a line of its own).
    handles: Padded<AtomicU64>,
    /// Lanes per endpoint: one per stripe of threads, or one with a seed.
    lanes: usize,
}

/// A value alone on its cache lines.
#[repr(align(128))]
struct Padded<T>(T);

impl<K, Svc, C, S> Shared<K, Svc, C, S> {
    /// The state of a new balancer; `config` must be valid.
    pub(crate) fn new(stream: Stream<K, Svc>, config: P2cConfig, clock: C, score: S) -> Self
    where
        K: fmt::Debug,
        C: Clock,
    {
        // A seed asks for reproducible picks: one lane, whatever CPUs the threads run on.
        let lanes = if config.seed.is_some() {
            1
        } else {
            Stripes::Auto.count()
        };
        let signals = Signals::new();
        let (discovery_waker, probe_waker) = signals.wakers();
        Self {
            members: Members::new(),
            discovery: Mutex::new(stream),
            signals,
            discovery_waker,
            probe_waker,
            metrics: BalancerMetrics::new(&config.name),
            timing: config.timing(&clock),
            config,
            clock,
            score,
            label: Mutex::new(|key| format!("{key:?}")),
            handles: Padded(AtomicU64::new(0)),
            lanes,
        }
    }

    /// The calling thread's stripe: the lane of each endpoint it picks and records on.
    #[inline]
    pub(crate) fn thread_stripe(&self) -> usize {
        Stripes::thread_stripe(self.lanes)
    }

    /// The number of a new handle of a balancer with a seed.
    pub(crate) fn next_handle(&self) -> u64 {
        self.handles.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Drops `member` (its `poll_ready` failed) until discovery inserts its key again.
    pub(crate) fn drop_member(&self, member: &Arc<Member<K, Svc>>) {
        member.set_ready(false);
        if let Some(len) = self.members.remove_member(member) {
            self.metrics.endpoints.set(len as f64);
        }
    }

    /// Keeps `probe`, a clone of `member`'s service that answered `Pending`: the member is
    /// not ready until a poll of it says so.
    pub(crate) fn park(&self, member: &Member<K, Svc>, probe: Svc) {
        member.set_ready(false);
        if let Some(mut slot) = member.probe.try_lock() {
            slot.get_or_insert(probe);
        }
        // Polled once more at the next `poll_ready`, in case it was woken before it was kept.
        self.signals.probes_due.store(true, Ordering::Release);
    }
}

impl<K, Svc, C, S> Shared<K, Svc, C, S>
where
    K: Hash + Eq,
    C: Clock,
{
    /// Adds `service` under `key` (or replaces the service of a known key, which keeps its
    /// statistics); it is polled ready at the next `poll_ready` of any handle.
    pub(crate) fn insert(&self, key: K, service: Svc) {
        let now = self.timing.instant(&self.clock);
        let label = (*self.label.lock())(&key);
        let (tau, tick) = (self.config.tau, self.timing.tick());
        let len = self.members.insert(key, service, |prior| {
            Record::new(
                (prior, tau, tick),
                self.lanes,
                self.metrics.endpoint(label.clone()),
                now,
                (&self.config.name, label),
            )
        });
        self.metrics.endpoints.set(len as f64);
        self.signals.raise(&self.signals.probes_due);
    }

    /// Removes `key`'s endpoint; its requests in flight complete normally.
    pub(crate) fn remove(&self, key: &K) -> bool {
        let removed = self.members.remove(key);
        if let Some(len) = removed {
            self.metrics.endpoints.set(len as f64);
        }
        removed.is_some()
    }

    /// The maintenance of `poll_ready`: drains discovery if it is due, polls the endpoints
    /// that are not ready if that is due. A discovery error is returned after the changes
    /// before it are applied.
    pub(crate) fn maintain<Req>(&self) -> Result<(), BoxError>
    where
        Svc: Service<Req> + Clone,
    {
        let mut result = Ok(());
        if Signals::take(&self.signals.discovery_due) {
            result = self.poll_discovery();
        }
        if Signals::take(&self.signals.probes_due) {
            self.poll_probes::<Req>();
        }
        result
    }

    /// Applies every change the discovery stream has ready; another handle doing so already
    /// is left to it (the flag goes back up, so that nothing is missed).
    fn poll_discovery(&self) -> Result<(), BoxError> {
        let Some(mut stream) = self.discovery.try_lock() else {
            self.signals.discovery_due.store(true, Ordering::Release);
            return Ok(());
        };
        let drained =
            discovery::drain(&mut stream, &mut Context::from_waker(&self.discovery_waker));
        for change in drained.changes {
            match change {
                Change::Insert(key, service) => self.insert(key, service),
                Change::Remove(key) => {
                    self.remove(&key);
                }
            }
        }
        match drained.error {
            None => Ok(()),
            Some(error) => {
                // Polled again at the next `poll_ready`, as `P2c` does.
                self.signals.discovery_due.store(true, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Polls a clone of each endpoint that is not ready (the one kept, or a new one): a ready
    /// one becomes a candidate again and wakes the waiting handles; a failed one is dropped.
    fn poll_probes<Req>(&self)
    where
        Svc: Service<Req> + Clone,
    {
        let list = self.members.load();
        let mut cx = Context::from_waker(&self.probe_waker);
        let (mut became_ready, mut busy, mut failed) = (false, false, Vec::new());
        for member in list.iter().filter(|member| !member.is_ready()) {
            let Some(mut probe) = member.probe.try_lock() else {
                busy = true;
                continue;
            };
            let service = probe.get_or_insert_with(|| member.service.clone());
            match Service::<Req>::poll_ready(service, &mut cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => {
                    *probe = None;
                    member.set_ready(true);
                    became_ready = true;
                }
                Poll::Ready(Err(_)) => {
                    *probe = None;
                    failed.push(Arc::clone(member));
                }
            }
        }
        drop(list);
        for member in &failed {
            self.drop_member(member);
        }
        if busy {
            self.signals.probes_due.store(true, Ordering::Release);
        }
        if became_ready {
            self.signals.wake_waiting();
        }
    }
}

impl<K, Svc, C, S: fmt::Debug> fmt::Debug for Shared<K, Svc, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("endpoints", &self.members.load().len())
            .field("score", &self.score)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
