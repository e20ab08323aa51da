use std::sync::Arc;

use rampart_core::ConfigError;
use tower::Layer;

use crate::handle::Shared;
use crate::{Fault, FaultConfig, FaultHandle};

/// Wraps services in [`Fault`], injecting latency, errors, hangs and panics.
///
/// # Sharing
///
/// Every service this layer builds, and every clone of them, shares one configuration, one
/// generator and one set of counters, all steered by the layer's [`FaultHandle`].
#[derive(Debug, Clone)]
pub struct FaultLayer {
    shared: Arc<Shared>,
}

impl FaultLayer {
    /// A layer injecting the faults of `config`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`FaultConfig::validate`]).
    pub fn new(config: FaultConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared::new(config)),
        })
    }

    /// A layer and the handle that steers it.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`FaultConfig::validate`]).
    pub fn pair(config: FaultConfig) -> Result<(Self, FaultHandle), ConfigError> {
        let layer = Self::new(config)?;
        let handle = layer.handle();
        Ok((layer, handle))
    }

    /// A handle that changes and observes this layer while it runs.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle::new(Arc::clone(&self.shared))
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Fault<S> {
        Fault::from_shared(inner, Arc::clone(&self.shared))
    }
}
