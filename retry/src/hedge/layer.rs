use std::time::Duration;

use rampart_core::{Clock, ConfigError, StripedArc, SystemClock};
use tower::Layer;

use super::metrics::HedgeMetrics;
use super::service::Shared;
use super::{AnyRequest, Hedge, HedgeConfig, HedgeStats, Hedger};
use crate::{Budget, Policy};

/// Wraps services in a [`Hedge`] that sends a second copy of slow requests, within a budget.
///
/// ```
/// use std::sync::Arc;
/// use rampart_retry::{HedgeConfig, HedgeLayer, RatioConfig, RetryConfig, RetryLayer};
/// use tower::ServiceBuilder;
///
/// // Retries and hedges together within 20 % of the requests.
/// let budget = Arc::new(RatioConfig::default().build()?);
/// let client = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryConfig::default(), Arc::clone(&budget))?)
///     .layer(HedgeLayer::new(HedgeConfig::default(), budget)?)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
/// # let _ = client;
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Sharing
///
/// Every service the layer builds, and their clones, share the layer's one latency window and
/// budget. Pass an `Arc` of a budget to share it with a [`RetryLayer`](crate::RetryLayer):
/// retries and hedges then draw from one allowance, and each request deposits once, whichever
/// layer is outside. [`RetryLayer::hedge_layer`](crate::RetryLayer::hedge_layer) builds one
/// sharing the retry layer's budget and policy, so that what the retry policy would not retry
/// (cannot copy) is not hedged either.
#[derive(Debug)]
pub struct HedgeLayer<B, P = Policy, F = AnyRequest> {
    shared: StripedArc<Shared<B>>,
    policy: P,
    filter: F,
}

impl<B, P: Clone, F: Clone> Clone for HedgeLayer<B, P, F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            filter: self.filter.clone(),
        }
    }
}

impl<B: Budget> HedgeLayer<B> {
    /// A layer hedging per `config` within `budget`, with the default [`Policy`] (requests
    /// copied with `Clone`) and every request allowed, timing latencies on [`SystemClock`].
    ///
    /// The default policy hedges every request it can clone, whatever a retry layer beside it
    /// was told: to hedge only what the retry layer would retry, build this layer from it
    /// ([`RetryLayer::hedge_layer`](crate::RetryLayer::hedge_layer): its budget and policy),
    /// or give it the same policy ([`with_policy`](Self::with_policy)).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    pub fn new(config: HedgeConfig, budget: B) -> Result<Self, ConfigError> {
        Self::new_with(config, budget, SystemClock::new())
    }

    /// A layer hedging per `config` within `budget`, timing latencies and reading requests'
    /// deadlines on `clock` (a clock of the same origin as the one that set them). Hedge
    /// delays are tokio timers, so a simulation under paused time passes a `TokioClock`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    pub fn new_with<C: Clock>(
        config: HedgeConfig,
        budget: B,
        clock: C,
    ) -> Result<Self, ConfigError> {
        let hedger = Hedger::new(config, budget)?;
        Ok(Self {
            shared: StripedArc::new(Shared {
                metrics: HedgeMetrics::new(&hedger.config().name),
                hedger,
                clock: Box::new(clock),
            }),
            policy: Policy::new(),
            filter: AnyRequest,
        })
    }
}

impl<B, P, F> HedgeLayer<B, P, F> {
    /// The same layer copying requests and classifying answers with `policy` (a request it
    /// cannot copy is not hedged; a failure is returned only once no other copy is under way).
    pub fn with_policy<P2>(self, policy: P2) -> HedgeLayer<B, P2, F> {
        HedgeLayer {
            shared: self.shared,
            policy,
            filter: self.filter,
        }
    }

    /// The same layer hedging only the requests `filter` allows (see
    /// [`MayHedge`](crate::MayHedge)).
    pub fn only_hedging<F2>(self, filter: F2) -> HedgeLayer<B, P, F2> {
        HedgeLayer {
            shared: self.shared,
            policy: self.policy,
            filter,
        }
    }

    /// The budget every service of this layer draws from.
    pub fn budget(&self) -> &B {
        self.shared.hedger.budget()
    }

    /// The configuration of the layer.
    pub fn config(&self) -> &HedgeConfig {
        self.shared.hedger.config()
    }

    /// What the layer's services did since it was built.
    pub fn stats(&self) -> HedgeStats {
        self.shared.metrics.stats()
    }
}

impl<B: Budget, P, F> HedgeLayer<B, P, F> {
    /// The hedge delay now: `None` while the window is cold.
    pub fn delay(&self) -> Option<Duration> {
        self.shared.hedger.delay_at(self.shared.clock.now())
    }
}

impl<S, B, P: Clone, F: Clone> Layer<S> for HedgeLayer<B, P, F> {
    type Service = Hedge<S, B, P, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_parts(
            inner,
            self.shared.clone(),
            self.policy.clone(),
            self.filter.clone(),
        )
    }
}
