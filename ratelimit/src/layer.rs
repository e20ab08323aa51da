use std::sync::Arc;

use rampart_core::{Clock, ConfigError, SystemClock};
use tower::Layer;

use crate::{BbrConfig, BbrLimit, BbrLimiter, CpuUsage, SystemCpu};

/// Wraps services in a [`BbrLimit`] that sheds requests while the server is overloaded.
///
/// # Sharing
///
/// Every service this layer builds, and every clone of those (a server clones its service per
/// connection), shares the layer's one [`BbrLimiter`]: the limit is the whole server's, also
/// as an axum `route_layer`, which builds a service per connection. (tower's
/// `ConcurrencyLimitLayer` there gets a semaphore per connection, so a server with many
/// connections never sheds: use its `GlobalConcurrencyLimitLayer`.) For
/// one limiter per route, see [`BbrGroupLayer`](crate::BbrGroupLayer).
#[derive(Debug)]
pub struct BbrLimitLayer<C = SystemClock, U = SystemCpu> {
    limiter: Arc<BbrLimiter<C, U>>,
}

impl<C, U> Clone for BbrLimitLayer<C, U> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl BbrLimitLayer {
    /// A layer with a new limiter built from `config`, reading [`SystemClock`] and
    /// [`SystemCpu`].
    ///
    /// # Errors
    ///
    /// As [`BbrConfig::build`]: an invalid field, or no readable CPU usage for a CPU gate.
    pub fn new(config: BbrConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_limiter(Arc::new(config.build()?)))
    }
}

impl<C: Clock, U: CpuUsage> BbrLimitLayer<C, U> {
    /// A layer around an existing limiter (which may read any clock and CPU signal). The
    /// limiter's gauges are kept current while no request arrives (see
    /// [`BbrLimiter::keep_gauges_current`]).
    pub fn from_limiter(limiter: Arc<BbrLimiter<C, U>>) -> Self {
        limiter.keep_gauges_current();
        Self { limiter }
    }
}

impl<C, U> BbrLimitLayer<C, U> {
    /// The limiter every service of this layer shares.
    pub fn limiter(&self) -> &Arc<BbrLimiter<C, U>> {
        &self.limiter
    }
}

impl<S, C, U> Layer<S> for BbrLimitLayer<C, U> {
    type Service = BbrLimit<S, C, U>;

    fn layer(&self, inner: S) -> Self::Service {
        BbrLimit::from_limiter(inner, Arc::clone(&self.limiter))
    }
}
