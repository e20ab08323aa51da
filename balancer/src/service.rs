//! [`P2c`]: the balancer service.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::pick_hint::{self, EndpointId};
use rampart_core::{Classify, Clock, Completion, ConfigError, DefaultClassifier, SystemClock};
use tower::discover::{Discover, ServiceList};
use tower::{BoxError, Service};

use crate::P2cConfig;
use crate::future::{ResponseFuture, Sent, Stats};
use crate::score::{PeakSuccess, Score};
use crate::state::{P2cState, cost_of};

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
/// once anyway: [`TwoChoices`](crate::TwoChoices)). Each endpoint keeps, in floating point, an EWMA of its latency
/// (peak-sensitive: a slower sample replaces it at once) and of its outcomes, both decaying
/// with the time between their samples (τ = 600 ms; see "Clock" for which completions are
/// samples of each); its in-flight count; and the start times of
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
/// request goes to it. When none is ready, [`WhenEmpty`](crate::WhenEmpty) decides: wait, or fail the request
/// with [`NoEndpoints`](crate::NoEndpoints) (after at most a second, by default).
///
/// # Pick hints
///
/// Under a hedge layer's [`pick_hint`](rampart_core::pick_hint) scope, `call` sends to an
/// endpoint outside the hint's list when one is ready (the better of two drawn among them),
/// and records the endpoint it sends to. Outside a scope it costs one thread-local read.
///
/// A hint reaches only a `call` made synchronously inside the scope, on the caller's thread.
/// `P2c` is not `Clone` and a hedge layer needs a `Clone` inner service, so under one it
/// usually sits behind a `tower::buffer::Buffer`, whose worker task calls it outside any
/// scope: the hint is lost, and a hedge may go to the endpoint still working on the first
/// copy. Under a hedge layer use [`SharedP2c`](crate::SharedP2c), which is `Clone` and takes
/// hints, or a `Clone` wrapper that calls a `P2c` within its own `call` (behind a lock).
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
pub struct P2c<D, Req, C = SystemClock, S = PeakSuccess, L = DefaultClassifier>
where
    D: Discover,
{
    /// Everything but the classifier, which `with_classifier` swaps.
    state: P2cState<D, C, S>,
    classifier: L,
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
        Self::new_with(discover, config, SystemClock::new(), PeakSuccess)
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
    pub fn new_with(discover: D, config: P2cConfig, clock: C, score: S) -> Result<Self, ConfigError>
    where
        C: Clock,
    {
        config.validate()?;
        Ok(Self {
            state: P2cState::new(discover, config, clock, score),
            classifier: DefaultClassifier,
            _request: PhantomData,
        })
    }
}

impl<D: Discover, Req, C, S, L> P2c<D, Req, C, S, L> {
    /// The same balancer, classifying responses with `classifier` (for example
    /// `HttpClassifier`, so that 5xx responses count against an endpoint).
    pub fn with_classifier<L2>(self, classifier: L2) -> P2c<D, Req, C, S, L2> {
        P2c {
            state: self.state,
            classifier,
            _request: PhantomData,
        }
    }

    /// The same balancer, labelling endpoints' metrics with `label(key)` (the key's `Debug`
    /// form by default). Call it before the first `poll_ready`.
    #[must_use]
    pub fn with_endpoint_label(mut self, label: fn(&D::Key) -> String) -> Self {
        self.state.label = label;
        self
    }

    /// The number of endpoints, ready or not.
    pub fn len(&self) -> usize {
        self.state.set.len()
    }

    /// Whether there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.state.set.len() == 0
    }

    /// The number of endpoints believed ready.
    pub fn ready_len(&self) -> usize {
        self.state.set.ready().len()
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
        let now = self.state.timing.instant(&self.state.clock);
        self.state
            .set
            .iter()
            .map(|endpoint| EndpointSnapshot {
                key: endpoint.key.clone(),
                score: cost_of(&self.state.score, &endpoint.stats, now),
                lag: endpoint.stats.lag(),
                success: endpoint.stats.success(),
                inflight: endpoint.stats.inflight(),
                picks: endpoint.picks,
                weight: endpoint.stats.weight(),
                ready: endpoint.is_ready(),
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
        check_weight(weight)?;
        let set = &self.state.set;
        Ok(set
            .find(key)
            .map(|at| set.get(at).stats.set_weight(weight))
            .is_some())
    }
}

/// Checks an endpoint's weight: finite, positive, not subnormal.
pub(crate) fn check_weight(weight: f64) -> Result<(), ConfigError> {
    if weight.is_finite() && weight.is_normal() && weight > 0.0 {
        return Ok(());
    }
    Err(ConfigError::new(
        "weight",
        "must be finite and positive, and not subnormal (at least 2.2e-308)",
    )
    .with_value(weight))
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
        if self.state.chosen.is_some() || self.state.fail_next {
            return Poll::Ready(Ok(()));
        }
        self.state.poll_choose::<Req>(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let state = &mut self.state;
        let Some((mut at, arrival)) = state.chosen.take() else {
            // Nothing was ready (or `poll_ready` was not called): fail this request.
            state.fail_next = false;
            return ResponseFuture::no_endpoint();
        };
        if pick_hint::is_listening() {
            at = state.honour_hint::<Req>(at, arrival.at);
            pick_hint::record_pick(EndpointId::of(&state.set.get(at).key));
        }
        let endpoint = state.set.get_mut(at);
        // Tracked before the call: if the endpoint's `call` panics, the guard ends it.
        let ticket = endpoint.stats.begin(arrival);
        let recorded = Stats::Owned(Arc::clone(&endpoint.stats));
        let sent = Sent::new(recorded, ticket, state.clock.clone());
        let completion = Completion::new(sent, self.classifier.clone());
        endpoint.picks += 1;
        endpoint.last_pick = arrival.at;
        endpoint.metrics.picks.increment(1);
        ResponseFuture::sent(endpoint.service.call(request), completion)
    }
}

impl<D, Req, C, S, L> fmt::Debug for P2c<D, Req, C, S, L>
where
    D: Discover,
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2c")
            .field("endpoints", &self.state.set.len())
            .field("ready", &self.state.set.ready().len())
            .field("score", &self.state.score)
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}
