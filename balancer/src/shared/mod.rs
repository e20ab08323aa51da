//! [`SharedP2c`]: the P2C balancer as a handle that many tasks clone and share, with no
//! `Buffer` in front of it.

mod discovery;
mod members;
mod pick;
mod service;
mod signal;
mod state;

use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

use rampart_core::{Clock, ConfigError, DefaultClassifier, StripedArc, SystemClock};
use tokio::time::Sleep;
use tower::BoxError;
use tower::discover::{Change, Discover};

use crate::endpoint::saturating_duration;
use crate::p2c::TwoChoices;
use crate::score::PeakSuccess;
pub(crate) use crate::shared::members::Lane;
use crate::shared::state::Shared;
use crate::{EndpointSnapshot, Load, P2cConfig, Score};

/// Power-of-two-choices load balancing as a `Clone + Send + Sync` handle: every clone picks
/// and sends on the task that calls it, over one shared set of endpoints and statistics.
///
/// [`P2c`](crate::P2c) needs `&mut self`, so a client that many tasks share puts it behind a
/// `tower::buffer::Buffer`, which sends every request of every task through one worker task:
/// a channel hop and a wake-up per call, and one core's worth of balancing for the whole
/// process. `SharedP2c` makes the same decision with the same statistics (see
/// [`P2c`](crate::P2c) for the cost, the EWMAs and the force pick) where the request is.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use rampart_balancer::{P2cConfig, SharedP2c};
/// use tower::{ServiceExt, service_fn};
///
/// let replicas = (0..3).map(|replica| service_fn(move |n: u32| async move { Ok::<_, std::io::Error>((replica, n)) }));
/// let balancer = SharedP2c::from_services(replicas, P2cConfig::default().with_seed(1))?;
/// let mut tasks = Vec::new();
/// for n in 0..10 {
///     let balancer = balancer.clone(); // no Buffer: each task picks for itself
///     tasks.push(tokio::spawn(async move { balancer.oneshot(n).await }));
/// }
/// for (n, task) in (0..).zip(tasks) {
///     let (replica, answered) = task.await??;
///     assert!(replica < 3 && answered == n);
/// }
/// assert_eq!(balancer.snapshot().iter().map(|e| e.picks).sum::<u64>(), 10);
/// # Ok(())
/// # }
/// ```
///
/// # Sharing
///
/// Clones share the endpoints, their statistics, the discovery stream and the metrics; each
/// clone has its own pick in progress (a clone starts unready, as tower's services do) and
/// its own random draws.
///
/// Each endpoint's statistics are kept in lanes, one per stripe of threads (one per CPU up
/// to 8, as a [`RollingWindow`](rampart_core::RollingWindow)'s stripes; on Linux a thread
/// uses the lane of the CPU it runs on, see
/// [`Stripes::thread_stripe`](rampart_core::Stripes::thread_stripe)): a pick weighs the
/// requests in flight, the latency and success EWMAs and the force-pick clock of its CPU's
/// lane, and the request records its end on the lane it was picked on. A request thus writes
/// no cache line that another core's requests write or read, which is what lets a handle
/// shared by the worker threads of a server scale with them (a balancer with one set of
/// statistics for all threads ran two threads slower than one, each request moving the
/// endpoint's lines from core to core). The price is that each CPU learns from its own
/// requests: it does not see the other CPUs' requests in flight, and an endpoint turning slow
/// is seen on each CPU at its own next request to it. P2C over each CPU's share of the
/// traffic still balances the whole, as a proxy's per-worker balancers do. The readiness of
/// endpoints, their weights and the score gauges are shared.
/// [`snapshot`](Self::snapshot) adds up the lanes' requests, averages the latency of the
/// lanes that have measured one and the success of those that have learnt an outcome.
///
/// A balancer with a [seed](P2cConfig::with_seed) keeps one lane per endpoint: its picks then
/// depend on its seed and its traffic alone, not on the CPUs its threads happen to run on, as a
/// test or a simulation needs (and one lane is what every request writes, as a seeded
/// balancer's clones already number their draws on one shared counter).
///
/// The endpoint list is read without a lock: it is published as a whole
/// through an [`arc_swap::ArcSwap`] and replaced, never edited, by discovery updates, which
/// take a writer lock that picks never touch. A pick never waits on an endpoint either: its
/// statistics are atomics, read while other threads record requests on it (the beginnings
/// and ends of one lane's requests are written one at a time, behind a flag taken with one
/// atomic swap and let go with a store).
///
/// Why `ArcSwap`: a `RwLock` read writes the lock's shared counter, so every pick of every
/// thread would bounce one cache line between cores; a copy of the list kept by each handle
/// and refreshed on a version number reads cheaper still, but a handle cloned per request
/// would take a reference to the shared list each time (the same bouncing), and an idle handle
/// would keep removed endpoints' services alive. `ArcSwap` loads write only a slot of the
/// reading thread, and the list is let go at the end of each pick.
///
/// # Endpoint services: a clone per request
///
/// Each request goes to a clone of its endpoint's service, polled ready by the handle that
/// picked it and then called, as each task does with its own clone of a `Buffer` or a tonic
/// `Channel`; hence `Clone` on the endpoint service, which must be cheap (a handle to a
/// connection or a pool: hyper's client, tonic's `Channel`, a `Buffer`). The service discovery
/// hands over is never called itself. An endpoint whose services are not `Clone` can be put
/// behind its own `Buffer`. The alternatives are worse: one service per endpoint behind a lock
/// would serialise the tasks sending to it and poll it with whichever task's waker came last;
/// a clone per handle and endpoint would cost memory in handles × endpoints and go stale with
/// each discovery update.
///
/// # Readiness
///
/// An endpoint is a candidate while the last clone of it polled was ready. A clone that
/// answers `Pending` makes its endpoint not ready and is kept; it is polled again when it
/// wakes its waker (by whichever handle's `poll_ready` comes next), and its endpoint is a
/// candidate again once it is ready. The handle is ready when one endpoint is; when none is,
/// [`WhenEmpty`](crate::WhenEmpty) decides, as for [`P2c`](crate::P2c), and a handle left
/// waiting is woken by any endpoint turning ready or being inserted. An endpoint whose
/// `poll_ready` fails is dropped until it is inserted again.
///
/// # Discovery
///
/// From a [`Discover`] stream ([`new`](Self::new)), drained by whichever handle's
/// `poll_ready` finds it has changes (a handle already draining it is not waited for), or by
/// hand ([`insert`](Self::insert), [`remove`](Self::remove)). As for [`P2c`](crate::P2c), a
/// new key starts at the median latency of its warm peers, a key inserted again keeps its
/// statistics, and a removed key's requests in flight complete normally.
///
/// # Pick hints
///
/// As [`P2c`](crate::P2c): under a hedge layer's [`pick_hint`](rampart_core::pick_hint)
/// scope, `call` sends to a ready endpoint outside the hint's list when there is one (the
/// better of two drawn among them, a clone of it polled ready then), and records the endpoint
/// it sends to.
///
/// # Clock
///
/// On a clock whose recent time ticks at least ten times within the shorter of `tau` and
/// `force_pick_after` (the default [`SystemClock`]'s kernel coarse clock, 1–10 ms, against
/// 600 ms), a request is placed at that time when it is picked (in `poll_ready`) and when it
/// completes, and a sample of requests (the first of each tick, one in 16 of the rest: see
/// [`Timing`](rampart_core::Timing)) is timed by reading the precise `now` at both ends
/// besides. Every completion teaches the success average, the completions of one tick
/// averaged into one sample; the timed ones teach the latency average; a request in flight
/// counts as stalled once it looks more than a tick older than that average. On any other
/// clock every request reads `now` once at each end and is timed. With a
/// [`seed`](crate::P2cConfig::seed), the requests timed are drawn from it.
pub struct SharedP2c<K, Svc, C = SystemClock, S = PeakSuccess, L = DefaultClassifier> {
    shared: StripedArc<Shared<K, Svc, C, S>>,
    classifier: L,
    /// This handle's draws.
    choices: TwoChoices,
    /// The endpoint `poll_ready` chose for the next `call`: its clone, ready.
    chosen: Option<Chosen<Svc>>,
    /// The next `call` fails: nothing was ready.
    fail_next: bool,
    empty_timer: Option<Pin<Box<Sleep>>>,
}

/// An endpoint chosen for the next request, with a clone of its service polled ready.
struct Chosen<Svc> {
    /// Its lane for the picking thread: the request's statistics end there.
    lane: Arc<Lane>,
    /// Its name in pick hints.
    id: rampart_core::pick_hint::EndpointId,
    service: Svc,
    /// The request's arrival, when it was chosen.
    arrival: rampart_core::Arrival,
}

/// # Construction
impl<K, Svc> SharedP2c<K, Svc>
where
    K: Hash + Eq + fmt::Debug + Send + 'static,
    Svc: Send + 'static,
{
    /// A balancer over the endpoints `discover` yields, reading [`SystemClock`] and scoring
    /// with [`PeakSuccess`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn new<D>(discover: D, config: P2cConfig) -> Result<Self, ConfigError>
    where
        D: Discover<Key = K, Service = Svc> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        Self::new_with(discover, config, SystemClock::new(), PeakSuccess)
    }

    /// A balancer with no endpoint and no discovery stream: endpoints come and go by
    /// [`insert`](Self::insert) and [`remove`](Self::remove).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn empty(config: P2cConfig) -> Result<Self, ConfigError> {
        Self::empty_with(config, SystemClock::new(), PeakSuccess)
    }
}

impl<Svc> SharedP2c<usize, Svc>
where
    Svc: Send + 'static,
{
    /// A balancer over a fixed list of services, keyed by their position in it.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn from_services(
        services: impl IntoIterator<Item = Svc>,
        config: P2cConfig,
    ) -> Result<Self, ConfigError> {
        let balancer = Self::empty(config)?;
        for (key, service) in services.into_iter().enumerate() {
            balancer.insert(key, service);
        }
        Ok(balancer)
    }
}

impl<K, Svc, C, S> SharedP2c<K, Svc, C, S>
where
    K: Hash + Eq + fmt::Debug + Send + 'static,
    Svc: Send + 'static,
    C: Clock,
{
    /// A balancer over the endpoints `discover` yields, reading `clock` and scoring with
    /// `score`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn new_with<D>(
        discover: D,
        config: P2cConfig,
        clock: C,
        score: S,
    ) -> Result<Self, ConfigError>
    where
        D: Discover<Key = K, Service = Svc> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        config.validate()?;
        let stream: discovery::Stream<K, Svc> = Some(Box::pin(discover));
        Ok(Self::from_shared(Shared::new(stream, config, clock, score)))
    }

    /// [`empty`](SharedP2c::empty), reading `clock` and scoring with `score`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn empty_with(config: P2cConfig, clock: C, score: S) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_shared(Shared::new(None, config, clock, score)))
    }
}

impl<K, Svc, C, S> SharedP2c<K, Svc, C, S> {
    fn from_shared(shared: Shared<K, Svc, C, S>) -> Self {
        let choices = TwoChoices::for_handle(&shared.config, shared.next_handle());
        Self {
            shared: StripedArc::new(shared),
            classifier: DefaultClassifier,
            choices,
            chosen: None,
            fail_next: false,
            empty_timer: None,
        }
    }
}

impl<K, Svc, C, S, L> SharedP2c<K, Svc, C, S, L> {
    /// The same balancer, classifying responses with `classifier` (for example
    /// `HttpClassifier`, so that 5xx responses count against an endpoint). Its clones share
    /// the endpoints with this handle's other clones, and classify with `classifier`.
    pub fn with_classifier<L2>(self, classifier: L2) -> SharedP2c<K, Svc, C, S, L2> {
        SharedP2c {
            shared: self.shared,
            classifier,
            choices: self.choices,
            chosen: self.chosen,
            fail_next: self.fail_next,
            empty_timer: self.empty_timer,
        }
    }

    /// The same balancer, labelling endpoints' metrics with `label(key)` (the key's `Debug`
    /// form by default), for every handle. Endpoints inserted before keep their labels.
    #[must_use]
    pub fn with_endpoint_label(self, label: fn(&K) -> String) -> Self {
        *self.shared.label.lock() = label;
        self
    }

    /// The number of endpoints, ready or not.
    pub fn len(&self) -> usize {
        self.shared.members.load().len()
    }

    /// Whether there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of endpoints believed ready.
    pub fn ready_len(&self) -> usize {
        let list = self.shared.members.load();
        list.iter().filter(|member| member.is_ready()).count()
    }
}

/// # Observing and steering
impl<K, Svc, C, S, L> SharedP2c<K, Svc, C, S, L>
where
    K: Hash + Eq + Clone,
    C: Clock,
    S: Score,
{
    /// Adds `service` under `key`, or replaces the service of a known key (which keeps its
    /// statistics). It is polled ready at the next `poll_ready` of any handle; handles waiting
    /// for an endpoint are woken. Picks in progress are not held up.
    pub fn insert(&self, key: K, service: Svc) {
        self.shared.insert(key, service);
    }

    /// Removes `key`'s endpoint: its requests in flight complete normally. Returns whether the
    /// key was known.
    pub fn remove(&self, key: &K) -> bool {
        self.shared.remove(key)
    }

    /// What the balancer sees of each endpoint, now, over all its lanes (see "Sharing"
    /// above): requests in flight and picks added up, latency averaged over the lanes that
    /// have measured one, success over those that have learnt an outcome.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot<K>> {
        let now = self.shared.timing.instant(&self.shared.clock);
        let list = self.shared.members.load();
        list.iter()
            .map(|member| {
                let merged = member.record.merged(now);
                EndpointSnapshot {
                    key: member.key.clone(),
                    score: self.shared.score.cost(&Load {
                        lag_ms: merged.effective_lag_ns / 1e6,
                        inflight: merged.inflight,
                        success: merged.success,
                        weight: merged.weight,
                    }),
                    lag: saturating_duration(merged.lag_ns),
                    success: merged.success,
                    inflight: merged.inflight,
                    picks: merged.begun,
                    weight: merged.weight,
                    ready: member.is_ready(),
                }
            })
            .collect()
    }

    /// Sets the static weight of `key`'s endpoint (1 by default): weight 2 makes it look half
    /// as costly. Returns whether the key is known.
    ///
    /// # Errors
    ///
    /// `weight` not finite, or not a normal positive number (zero, negative, or so small
    /// that dividing a cost by it overflows).
    pub fn set_weight(&self, key: &K, weight: f64) -> Result<bool, ConfigError> {
        crate::service::check_weight(weight)?;
        let list = self.shared.members.load();
        Ok(list
            .iter()
            .find(|member| member.key == *key)
            .map(|member| member.record.set_weight(weight))
            .is_some())
    }
}

/// A change the caller applies by hand, as discovery would: for code that reads changes
/// from its own source.
impl<K, Svc, C, S, L> SharedP2c<K, Svc, C, S, L>
where
    K: Hash + Eq + Clone,
    C: Clock,
    S: Score,
{
    /// Applies `change`: [`insert`](Self::insert) or [`remove`](Self::remove).
    pub fn apply(&self, change: Change<K, Svc>) {
        match change {
            Change::Insert(key, service) => self.insert(key, service),
            Change::Remove(key) => {
                self.remove(&key);
            }
        }
    }
}

impl<K, Svc, C, S: fmt::Debug, L> fmt::Debug for SharedP2c<K, Svc, C, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedP2c")
            .field("shared", &self.shared)
            .field("chosen", &self.chosen.is_some())
            .finish_non_exhaustive()
    }
}
