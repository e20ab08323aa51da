use std::sync::Arc;

use rampart_core::{Clock, ConfigError, SystemClock};
use tower::Layer;

use crate::metrics::RetryMetrics;
use crate::service::Shared;
use crate::{Budget, HedgeConfig, HedgeLayer, Policy, Retrier, Retry, RetryConfig};

/// Wraps services in a [`Retry`] that retries failed attempts within a budget.
///
/// ```
/// use rampart_retry::{Policy, RatioConfig, RetryConfig, RetryLayer};
/// use tower::ServiceBuilder;
///
/// let retries = RetryLayer::new(RetryConfig::default(), RatioConfig::default().build()?)?
///     .with_policy(Policy::new());
/// let client = ServiceBuilder::new()
///     .layer(retries)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
/// # let _ = client;
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Sharing
///
/// Every service the layer builds, and their clones, share the layer's one budget: the
/// budget bounds the retries of all of them together. Pass an `Arc` of a budget to share it
/// between layers too.
#[derive(Debug)]
pub struct RetryLayer<B, P = Policy> {
    shared: Arc<Shared<B>>,
    policy: P,
}

impl<B, P: Clone> Clone for RetryLayer<B, P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<B: Budget> RetryLayer<B> {
    /// A layer retrying per `config` within `budget`, with the default [`Policy`], reading
    /// requests' deadlines on [`SystemClock`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    pub fn new(config: RetryConfig, budget: B) -> Result<Self, ConfigError> {
        Self::new_with(config, budget, SystemClock::new())
    }

    /// A layer retrying per `config` within `budget`, with the default [`Policy`], reading
    /// requests' deadlines ([`rampart_core::Deadline`]) on `clock`: a clock of the same origin
    /// as the one that set them (see [`rampart_core::Deadline`]), and timing servers' pushback
    /// holds ([`PushbackHold`](crate::PushbackHold)) on it. It is read only for requests with a
    /// deadline and after pushback; backoff waits and attempt timeouts are tokio timers, so a
    /// simulation under paused time passes a `TokioClock`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    pub fn new_with<C: Clock>(
        config: RetryConfig,
        budget: B,
        clock: C,
    ) -> Result<Self, ConfigError> {
        let retrier = Retrier::new(config, budget)?;
        Ok(Self {
            shared: Arc::new(Shared {
                metrics: RetryMetrics::new(&retrier.config().name),
                retrier,
                clock: Box::new(clock),
            }),
            policy: Policy::new(),
        })
    }
}

impl<B, P> RetryLayer<B, P> {
    /// The same layer deciding with `policy`.
    pub fn with_policy<P2>(self, policy: P2) -> RetryLayer<B, P2> {
        RetryLayer {
            shared: self.shared,
            policy,
        }
    }

    /// The budget every service of this layer draws from.
    pub fn budget(&self) -> &B {
        self.shared.retrier.budget()
    }

    /// The configuration of the layer.
    pub fn config(&self) -> &RetryConfig {
        self.shared.retrier.config()
    }
}

impl<B: Budget + Clone, P: Clone> RetryLayer<B, P> {
    /// A [`HedgeLayer`] hedging per `config` within this layer's budget and with its policy:
    /// retries and hedges together stay within the one budget (each request deposits once,
    /// whichever layer it meets first), and a request the policy cannot copy for a retry (its
    /// cloner answers `None`: non-idempotent, or too costly) is never hedged either. It times
    /// latencies on [`SystemClock`]. Put it inside the retry layer, so that a retry is hedged
    /// too, or outside it.
    ///
    /// The budget is shared by cloning it: pass the retry layer an `Arc` of one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rampart_retry::{HedgeConfig, Policy, RatioConfig, RetryConfig, RetryLayer};
    /// use tower::ServiceBuilder;
    ///
    /// // Only reads may go twice: writes are neither retried nor hedged.
    /// let reads = Policy::new().with_cloner(|sql: &String| sql.starts_with("SELECT").then(|| sql.clone()));
    /// let budget = Arc::new(RatioConfig::default().build()?);
    /// let retries = RetryLayer::new(RetryConfig::default(), budget)?.with_policy(reads);
    /// let hedges = retries.hedge_layer(HedgeConfig::default())?;
    /// assert!(Arc::ptr_eq(hedges.budget(), retries.budget()));
    /// let client = ServiceBuilder::new()
    ///     .layer(retries)
    ///     .layer(hedges)
    ///     .service_fn(|sql: String| async move { Ok::<_, std::io::Error>(sql.len()) });
    /// # let _ = client;
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    pub fn hedge_layer(&self, config: HedgeConfig) -> Result<HedgeLayer<B, P>, ConfigError> {
        self.hedge_layer_with(config, SystemClock::new())
    }

    /// [`hedge_layer`](Self::hedge_layer), timing latencies and reading requests' deadlines on
    /// `clock` (see [`HedgeLayer::new_with`]).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    pub fn hedge_layer_with<C: Clock>(
        &self,
        config: HedgeConfig,
        clock: C,
    ) -> Result<HedgeLayer<B, P>, ConfigError> {
        let layer = HedgeLayer::new_with(config, self.budget().clone(), clock)?;
        Ok(layer.with_policy(self.policy.clone()))
    }
}

impl<S: Clone, B, P: Clone> Layer<S> for RetryLayer<B, P> {
    type Service = Retry<S, B, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_parts(inner, self.shared.clone(), self.policy.clone())
    }
}
