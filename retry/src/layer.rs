use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rampart_core::ConfigError;
use tower::Layer;

use crate::metrics::RetryMetrics;
use crate::{Budget, Policy, Retry, RetryConfig};

/// What every service of a retry layer shares: the configuration, the budget, the metrics.
#[derive(Debug)]
pub(crate) struct Shared<B> {
    pub(crate) config: RetryConfig,
    pub(crate) budget: B,
    pub(crate) metrics: RetryMetrics,
    /// The next per-request jitter seed.
    pub(crate) seeds: AtomicU64,
}

impl<B: Budget> Shared<B> {
    /// Whether a request that has made `attempts` attempts may make another.
    pub(crate) fn allows_another_after(&self, attempts: u32) -> bool {
        attempts < self.config.max_attempts
    }

    /// Takes a retry from the budget, counting a refusal.
    pub(crate) fn withdraw(&self) -> bool {
        let granted = self.budget.withdraw();
        if granted {
            self.metrics.granted();
        } else {
            self.metrics.exhausted();
        }
        granted
    }
}

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
            shared: Arc::clone(&self.shared),
            policy: self.policy.clone(),
        }
    }
}

impl<B: Budget> RetryLayer<B> {
    /// A layer retrying per `config` within `budget`, with the default [`Policy`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    pub fn new(config: RetryConfig, budget: B) -> Result<Self, ConfigError> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(Self {
            shared: Arc::new(Shared {
                metrics: RetryMetrics::new(&config.name),
                config,
                budget,
                seeds: AtomicU64::new(seed),
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
        &self.shared.budget
    }

    /// The configuration of the layer.
    pub fn config(&self) -> &RetryConfig {
        &self.shared.config
    }
}

impl<S, B, P: Clone> Layer<S> for RetryLayer<B, P> {
    type Service = Retry<S, B, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_parts(inner, Arc::clone(&self.shared), self.policy.clone())
    }
}
