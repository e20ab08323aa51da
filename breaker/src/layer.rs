//! [`BreakerLayer`]: wraps services in a [`Breaker`], all sharing one breaker.

use std::sync::Arc;

use rampart_core::{Clock, ConfigError, DefaultClassifier, StripedArc, SystemClock};
use tower::Layer;

use crate::{Breaker, BreakerConfig, SreBreaker};

/// Wraps services in a [`Breaker`] that throttles calls to them.
///
/// # Sharing
///
/// Every service this layer builds, and every clone of those, shares the layer's one
/// [`SreBreaker`]: a client cloned per connection or per task still throttles as one. For one
/// breaker per route or operation, see [`BreakerGroupLayer`](crate::BreakerGroupLayer).
///
/// ```
/// use rampart_breaker::{BreakerConfig, BreakerLayer};
/// use tower::ServiceBuilder;
///
/// let layer = BreakerLayer::new(BreakerConfig::default().with_name("inventory"))?;
/// let client = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service_fn(|request: String| async move { Ok::<_, std::io::Error>(request.len()) });
/// # let _ = client;
/// assert_eq!(layer.breaker().config().name, "inventory");
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct BreakerLayer<C = SystemClock, L = DefaultClassifier> {
    breaker: StripedArc<Arc<SreBreaker<C>>>,
    classifier: L,
}

impl<C, L: Clone> Clone for BreakerLayer<C, L> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl BreakerLayer {
    /// A layer with a new breaker built from `config`, reading [`SystemClock`] and counting
    /// `Ok` as success and `Err` as failure.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_breaker(Arc::new(config.build()?)))
    }
}

impl<C: Clock> BreakerLayer<C> {
    /// A layer around an existing breaker (which may read any clock). The breaker's gauge is
    /// kept current while no call arrives (see [`SreBreaker::keep_gauges_current`]).
    pub fn from_breaker(breaker: Arc<SreBreaker<C>>) -> Self {
        breaker.keep_gauges_current();
        Self {
            breaker: StripedArc::new(breaker),
            classifier: DefaultClassifier,
        }
    }
}

impl<C, L> BreakerLayer<C, L> {
    /// The same layer, classifying responses with `classifier` (for example
    /// `HttpClassifier`, feature `http`, which counts 5xx and 429 responses as failures).
    pub fn with_classifier<L2>(self, classifier: L2) -> BreakerLayer<C, L2> {
        BreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker every service of this layer shares.
    pub fn breaker(&self) -> &Arc<SreBreaker<C>> {
        &self.breaker
    }
}

impl<S, C, L: Clone> Layer<S> for BreakerLayer<C, L> {
    type Service = Breaker<S, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::from_parts(inner, self.breaker.clone(), self.classifier.clone())
    }
}
