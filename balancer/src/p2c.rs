//! [`P2c`]: the balancer service.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::{Classify, Clock, ConfigError, DefaultClassifier, SystemClock};
use tokio::time::Sleep;
use tower::discover::{Change, Discover, ServiceList};
use tower::{BoxError, Service};

use crate::endpoint::{EndpointStats, saturating_duration};
use crate::future::{Completion, ResponseFuture};
use crate::metrics::{BalancerMetrics, EndpointMetrics};
use crate::score::{Load, PeakSuccess, Score};
use crate::{P2cConfig, WhenEmpty};

/// How often an endpoint's score gauge is refreshed, at most.
const SCORE_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Where an endpoint sits: in the ready list or the pending list, at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ready(usize),
    Pending(usize),
}

struct Endpoint<K, S> {
    key: K,
    service: S,
    stats: Arc<EndpointStats>,
    slot: Slot,
    metrics: EndpointMetrics,
    score_published: Option<Duration>,
    /// Requests sent to it.
    picks: u64,
    /// When it was last picked (or added: the force-pick clock starts then).
    last_pick: Duration,
    /// Whether its cost has crossed into avoidance (reported with feature `tracing`).
    #[cfg(feature = "tracing")]
    avoided: bool,
}

/// What a balancer sees of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSnapshot<K> {
    /// The endpoint's discovery key.
    pub key: K,
    /// Its cost if it were a candidate now (lower is better).
    pub score: f64,
    /// Its EWMA latency.
    pub lag: Duration,
    /// Its EWMA success, from 0 to 1.
    pub success: f64,
    /// Requests in flight on it.
    pub inflight: u64,
    /// Requests sent to it so far.
    pub picks: u64,
    /// Its static weight.
    pub weight: f64,
    /// Whether it was ready when last checked.
    pub ready: bool,
}

/// Power-of-two-choices load balancing over endpoints scored by EWMA latency, success and
/// in-flight load, fed by a tower [`Discover`] stream.
///
/// For each request it draws two distinct ready endpoints at random and sends the request to
/// the one with the lower [`Score`] (an endpoint that has lost every draw for 3 s is picked
/// once anyway). Each endpoint keeps, in floating point, an EWMA of its latency
/// (peak-sensitive: a slower sample replaces it at once) and of its outcomes, both decaying
/// with the time between completions (τ = 600 ms); its in-flight count; and the start times of
/// its in-flight requests, so that an endpoint whose requests have all stalled looks slow
/// before any of them completes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use rampart_balancer::{P2c, P2cConfig};
/// use tower::{Service, ServiceExt, service_fn};
///
/// let replicas = (0..3).map(|replica| service_fn(move |n: u32| async move { Ok::<_, tower::BoxError>((replica, n)) }));
/// let mut balancer = P2c::from_services(replicas, P2cConfig::default().with_seed(1))?;
/// let (replica, n) = balancer.ready().await?.call(7).await?;
/// assert!(replica < 3 && n == 7);
/// # Ok(())
/// # }
/// ```
///
/// # Discovery
///
/// `poll_ready` drains the discovery stream: a new key starts at the median latency of its
/// warm peers (neither starved nor flooded); a key inserted again keeps its statistics (only
/// its service is replaced); a removed key loses them, while its requests in flight complete
/// normally. An endpoint whose `poll_ready` fails is dropped until discovery inserts it again.
///
/// # Readiness
///
/// Only ready endpoints are candidates, and the chosen one is polled ready right before the
/// request goes to it. When none is ready, [`WhenEmpty`] decides: wait, or fail the request
/// with [`NoEndpoints`](crate::NoEndpoints) (after at most a second, by default).
///
/// # Clock
///
/// One clock read when a request is placed (in `poll_ready`) and one when it completes.
pub struct P2c<D, Req, C = SystemClock, S = PeakSuccess, L = DefaultClassifier>
where
    D: Discover,
{
    discover: Pin<Box<D>>,
    discovery_ended: bool,
    endpoints: Vec<Endpoint<D::Key, D::Service>>,
    index: HashMap<D::Key, usize>,
    ready: Vec<usize>,
    pending: Vec<usize>,
    /// The endpoint `poll_ready` chose for the next `call`, and when.
    chosen: Option<(usize, Duration)>,
    /// The next `call` fails: nothing was ready.
    fail_next: bool,
    empty_timer: Option<Pin<Box<Sleep>>>,
    rng: fastrand::Rng,
    config: P2cConfig,
    clock: C,
    score: S,
    classifier: L,
    metrics: BalancerMetrics,
    label: fn(&D::Key) -> String,
    _request: PhantomData<fn(Req)>,
}

/// # Construction
impl<D, Req> P2c<D, Req>
where
    D: Discover,
    D::Key: fmt::Debug,
{
    /// A balancer over the endpoints `discover` yields, reading [`SystemClock`] and scoring
    /// with [`PeakSuccess`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn new(discover: D, config: P2cConfig) -> Result<Self, ConfigError> {
        Self::with_parts(discover, config, SystemClock::new(), PeakSuccess)
    }
}

impl<Svc, Req> P2c<ServiceList<Vec<Svc>>, Req>
where
    Svc: Service<Req>,
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
        let list: Vec<Svc> = services.into_iter().collect();
        P2c::new(ServiceList::new::<Req>(list), config)
    }
}

impl<D, Req, C, S> P2c<D, Req, C, S>
where
    D: Discover,
    D::Key: fmt::Debug,
{
    /// A balancer reading `clock` and scoring with `score`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn with_parts(
        discover: D,
        config: P2cConfig,
        clock: C,
        score: S,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            discover: Box::pin(discover),
            discovery_ended: false,
            endpoints: Vec::new(),
            index: HashMap::new(),
            ready: Vec::new(),
            pending: Vec::new(),
            chosen: None,
            fail_next: false,
            empty_timer: None,
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            metrics: BalancerMetrics::new(&config.name),
            config,
            clock,
            score,
            classifier: DefaultClassifier,
            label: |key| format!("{key:?}"),
            _request: PhantomData,
        })
    }
}

impl<D: Discover, Req, C, S, L> P2c<D, Req, C, S, L> {
    /// The same balancer, classifying responses with `classifier` (for example
    /// `HttpClassifier`, so that 5xx responses count against an endpoint).
    pub fn with_classifier<L2>(self, classifier: L2) -> P2c<D, Req, C, S, L2> {
        P2c {
            discover: self.discover,
            discovery_ended: self.discovery_ended,
            endpoints: self.endpoints,
            index: self.index,
            ready: self.ready,
            pending: self.pending,
            chosen: self.chosen,
            fail_next: self.fail_next,
            empty_timer: self.empty_timer,
            rng: self.rng,
            config: self.config,
            clock: self.clock,
            score: self.score,
            classifier,
            metrics: self.metrics,
            label: self.label,
            _request: PhantomData,
        }
    }

    /// The same balancer, labelling endpoints' metrics with `label(key)` (the key's `Debug`
    /// form by default). Call it before the first `poll_ready`.
    #[must_use]
    pub fn with_endpoint_label(mut self, label: fn(&D::Key) -> String) -> Self {
        self.label = label;
        self
    }

    /// The number of endpoints, ready or not.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The number of endpoints believed ready.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }
}

/// # Observing and steering
impl<D, Req, C, S, L> P2c<D, Req, C, S, L>
where
    D: Discover,
    D::Key: Hash + Eq + Clone,
    C: Clock,
    S: Score,
{
    /// What the balancer sees of each endpoint, now.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot<D::Key>> {
        let now = self.clock.now();
        self.endpoints
            .iter()
            .map(|endpoint| EndpointSnapshot {
                key: endpoint.key.clone(),
                score: self.cost_of(&endpoint.stats, now),
                lag: endpoint.stats.lag(),
                success: endpoint.stats.success(),
                inflight: endpoint.stats.inflight(),
                picks: endpoint.picks,
                weight: endpoint.stats.weight(),
                ready: matches!(endpoint.slot, Slot::Ready(_)),
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
    pub fn set_weight(&self, key: &D::Key, weight: f64) -> Result<bool, ConfigError> {
        if !(weight.is_finite() && weight.is_normal() && weight > 0.0) {
            return Err(ConfigError::new(
                "weight",
                "must be finite and positive, and not subnormal (at least 2.2e-308)",
            )
            .with_value(weight));
        }
        Ok(self
            .index
            .get(key)
            .map(|&at| self.endpoints[at].stats.set_weight(weight))
            .is_some())
    }

    fn cost_of(&self, stats: &EndpointStats, now: Duration) -> f64 {
        self.score.cost(&Load {
            lag_ms: stats.effective_lag_ns(now) / 1e6,
            inflight: stats.inflight(),
            success: stats.success(),
            weight: stats.weight(),
        })
    }
}

impl<D, Req, C, S, L> P2c<D, Req, C, S, L>
where
    D: Discover,
    D::Key: Hash + Eq + Clone,
    D::Service: Service<Req>,
    D::Error: Into<BoxError>,
    C: Clock,
    S: Score,
{
    /// Applies every change the discovery stream has ready.
    fn update_discovery(&mut self, cx: &mut Context<'_>) -> Result<(), BoxError> {
        while !self.discovery_ended {
            match self.discover.as_mut().poll_discover(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discovery_ended = true,
                Poll::Ready(Some(Err(error))) => return Err(error.into()),
                Poll::Ready(Some(Ok(Change::Insert(key, service)))) => self.insert(key, service),
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    if let Some(&at) = self.index.get(&key) {
                        self.remove_at(at);
                    }
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, key: D::Key, service: D::Service) {
        if let Some(&at) = self.index.get(&key) {
            // A replacement: new service, same statistics. It must be polled ready anew.
            self.endpoints[at].service = service;
            self.detach(at);
            self.attach_pending(at);
            return;
        }
        let now = self.clock.now();
        let stats = Arc::new(EndpointStats::new(self.median_warm_lag(), self.config.tau));
        // As if just picked (`last_pick`): it competes on its prior, and is forced in if it
        // keeps losing.
        let at = self.endpoints.len();
        self.endpoints.push(Endpoint {
            metrics: self.metrics.endpoint((self.label)(&key)),
            key: key.clone(),
            service,
            stats,
            slot: Slot::Pending(0),
            score_published: None,
            picks: 0,
            last_pick: now,
            #[cfg(feature = "tracing")]
            avoided: false,
        });
        self.index.insert(key, at);
        self.attach_pending(at);
        self.metrics.endpoints.set(self.endpoints.len() as f64);
    }

    /// The median EWMA latency of the endpoints that have completed requests.
    fn median_warm_lag(&self) -> Duration {
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

    /// Polls every pending endpoint; ready ones become candidates, failed ones are dropped.
    fn promote_pending(&mut self, cx: &mut Context<'_>) {
        let mut position = 0;
        while let Some(&at) = self.pending.get(position) {
            match self.endpoints[at].service.poll_ready(cx) {
                Poll::Pending => position += 1,
                Poll::Ready(Ok(())) => {
                    self.detach(at);
                    self.attach_ready(at);
                }
                Poll::Ready(Err(_)) => self.remove_at(at),
            }
        }
    }

    /// Draws two distinct ready endpoints and returns the one to use.
    fn pick(&mut self, now: Duration) -> usize {
        let candidates = self.ready.len();
        if candidates == 1 {
            let only = self.ready[0];
            if self.score_due(only, now) {
                let cost = self.cost_of(&self.endpoints[only].stats, now);
                self.publish_score(only, cost, now);
            }
            return only;
        }
        let first = self.rng.usize(..candidates);
        let mut second = self.rng.usize(..candidates - 1);
        if second >= first {
            second += 1;
        }
        let (a, b) = (self.ready[first], self.ready[second]);
        let (a_cost, b_cost) = (
            self.cost_of(&self.endpoints[a].stats, now),
            self.cost_of(&self.endpoints[b].stats, now),
        );
        // Both candidates' costs are published, so that an endpoint the balancer avoids shows
        // the cost it is avoided for, not the one it had when last picked.
        for (at, cost) in [(a, a_cost), (b, b_cost)] {
            if self.score_due(at, now) {
                self.publish_score(at, cost, now);
            }
        }
        let (better, worse) = if a_cost <= b_cost { (a, b) } else { (b, a) };
        #[cfg(feature = "tracing")]
        {
            self.note_avoidance(a, a_cost, b_cost);
            self.note_avoidance(b, b_cost, a_cost);
        }
        if now.saturating_sub(self.endpoints[worse].last_pick) > self.config.force_pick_after {
            worse
        } else {
            better
        }
    }

    /// Whether endpoint `at`'s score gauge was last set `SCORE_PUBLISH_INTERVAL` or more ago.
    fn score_due(&self, at: usize, now: Duration) -> bool {
        self.endpoints[at]
            .score_published
            .is_none_or(|last| now.saturating_sub(last) >= SCORE_PUBLISH_INTERVAL)
    }

    /// Sets endpoint `at`'s score gauge to `cost`.
    fn publish_score(&mut self, at: usize, cost: f64, now: Duration) {
        let endpoint = &mut self.endpoints[at];
        endpoint.score_published = Some(now);
        endpoint.metrics.score.set(cost);
    }

    /// Reports endpoint `at` entering or leaving avoidance, from a pick in which it cost
    /// `cost` against a rival's `rival`.
    #[cfg(feature = "tracing")]
    fn note_avoidance(&mut self, at: usize, cost: f64, rival: f64) {
        let endpoint = &mut self.endpoints[at];
        if let Some(avoided) = crate::events::crossed(&mut endpoint.avoided, cost, rival) {
            let label = (self.label)(&endpoint.key);
            crate::events::report(&self.config.name, &label, avoided, cost, rival);
        }
    }

    fn attach_ready(&mut self, at: usize) {
        self.endpoints[at].slot = Slot::Ready(self.ready.len());
        self.ready.push(at);
    }

    fn attach_pending(&mut self, at: usize) {
        self.endpoints[at].slot = Slot::Pending(self.pending.len());
        self.pending.push(at);
    }

    /// Takes endpoint `at` out of its list.
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

    fn remove_at(&mut self, at: usize) {
        self.detach(at);
        let last = self.endpoints.len() - 1;
        let removed = self.endpoints.swap_remove(at);
        self.index.remove(&removed.key);
        self.metrics.endpoints.set(self.endpoints.len() as f64);
        if at != last {
            // The endpoint that was last now lives at `at`: repoint its list entry and index.
            self.index.insert(self.endpoints[at].key.clone(), at);
            match self.endpoints[at].slot {
                Slot::Ready(position) => self.ready[position] = at,
                Slot::Pending(position) => self.pending[position] = at,
            }
        }
        self.chosen = match self.chosen {
            Some((chosen, _)) if chosen == at => None,
            Some((chosen, when)) if chosen == last => Some((at, when)),
            other => other,
        };
    }
}

impl<D, Req, C, S, L> Service<Req> for P2c<D, Req, C, S, L>
where
    D: Discover,
    D::Key: Hash + Eq + Clone,
    D::Service: Service<Req>,
    <D::Service as Service<Req>>::Error: Into<BoxError>,
    D::Error: Into<BoxError>,
    C: Clock + Clone,
    S: Score,
    L: Classify<<D::Service as Service<Req>>::Response, <D::Service as Service<Req>>::Error>
        + Clone,
{
    type Response = <D::Service as Service<Req>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<<D::Service as Service<Req>>::Future, C, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.chosen.is_some() || self.fail_next {
            return Poll::Ready(Ok(()));
        }
        self.update_discovery(cx)?;
        self.promote_pending(cx);
        loop {
            if self.ready.is_empty() {
                return self.poll_empty(cx);
            }
            self.empty_timer = None;
            let now = self.clock.now();
            let at = self.pick(now);
            match self.endpoints[at].service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    self.chosen = Some((at, now));
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {
                    self.detach(at);
                    self.attach_pending(at);
                }
                Poll::Ready(Err(_)) => self.remove_at(at),
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some((at, now)) = self.chosen.take() else {
            // Nothing was ready (or `poll_ready` was not called): fail this request.
            self.fail_next = false;
            return ResponseFuture::no_endpoint();
        };
        let endpoint = &mut self.endpoints[at];
        // Tracked before the call: if the endpoint's `call` panics, the guard ends it.
        let ticket = endpoint.stats.begin(now);
        let completion = Completion::new(
            Arc::clone(&endpoint.stats),
            ticket,
            self.clock.clone(),
            self.classifier.clone(),
        );
        endpoint.picks += 1;
        endpoint.last_pick = now;
        endpoint.metrics.picks.increment(1);
        ResponseFuture::sent(endpoint.service.call(request), completion)
    }
}

impl<D, Req, C, S, L> P2c<D, Req, C, S, L>
where
    D: Discover,
{
    /// No endpoint is ready: wait, or fail the next request.
    fn poll_empty(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.config.when_empty {
            WhenEmpty::Wait => Poll::Pending,
            WhenEmpty::FailFast { after: None } => {
                self.fail_next = true;
                Poll::Ready(Ok(()))
            }
            WhenEmpty::FailFast { after: Some(after) } => {
                let timer = self
                    .empty_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.empty_timer = None;
                    self.fail_next = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
        }
    }
}

impl<D, Req, C, S, L> fmt::Debug for P2c<D, Req, C, S, L>
where
    D: Discover,
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2c")
            .field("endpoints", &self.endpoints.len())
            .field("ready", &self.ready.len())
            .field("score", &self.score)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
