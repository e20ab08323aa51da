use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastrand::Rng;
use parking_lot::Mutex;
use rampart_core::ConfigError;

use crate::FaultConfig;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Go on to the inner service.
    Proceed,
    /// Fail with `InjectedError`.
    Fail,
    /// Never complete.
    Hang,
    /// Panic when polled.
    Panic,
}

/// The state every clone of a fault layer, its services and its handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration and the generator, drawn from under one short lock per request.
    state: Mutex<(FaultConfig, Rng)>,
    requests: AtomicU64,
    errors: AtomicU64,
    hangs: AtomicU64,
    panics: AtomicU64,
}

impl Shared {
    /// `config` must be valid.
    pub(crate) fn new(config: FaultConfig) -> Self {
        let rng = config.seed.map_or_else(Rng::new, Rng::with_seed);
        Self {
            state: Mutex::new((config, rng)),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        }
    }

    /// Draws one request's delay and fate, in that order.
    pub(crate) fn decide(&self) -> (Duration, Fate) {
        let (delay, draw, config) = {
            let mut state = self.state.lock();
            let (config, rng) = &mut *state;
            let delay = config.latency.sample(rng);
            let any_fault = config.error_rate + config.hang_rate + config.panic_rate > 0.0;
            // Draw only when a fault is possible, so that pure latency injection consumes the
            // same generator values as before faults were configured.
            let draw = if any_fault { rng.f64() } else { 1.0 };
            (
                delay,
                draw,
                (config.error_rate, config.hang_rate, config.panic_rate),
            )
        };
        let (error_rate, hang_rate, panic_rate) = config;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fate = if draw < error_rate {
            self.errors.fetch_add(1, Ordering::Relaxed);
            Fate::Fail
        } else if draw < error_rate + hang_rate {
            self.hangs.fetch_add(1, Ordering::Relaxed);
            Fate::Hang
        } else if draw < error_rate + hang_rate + panic_rate {
            self.panics.fetch_add(1, Ordering::Relaxed);
            Fate::Panic
        } else {
            Fate::Proceed
        };
        (delay, fate)
    }
}

/// Changes and observes a fault layer while it runs: a backend turns bad mid-test.
///
/// Every clone controls the same layer, and every service that layer built.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use tower::{Layer, ServiceExt, service_fn};
/// use rampart_fault::{FaultConfig, FaultLayer, InjectedError};
///
/// let (layer, handle) = FaultLayer::pair(FaultConfig::default())?;
/// let service = layer.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
///
/// assert_eq!(service.clone().oneshot(1).await?, 1);
/// handle.update(|config| config.error_rate = 1.0)?; // the backend goes down
/// let err = service.oneshot(2).await.unwrap_err();
/// assert!(err.is::<InjectedError>());
/// assert_eq!(handle.stats().errors, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

/// Counts of what a fault layer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests the layer has seen.
    pub requests: u64,
    /// Requests failed with `InjectedError`.
    pub errors: u64,
    /// Requests left hanging.
    pub hangs: u64,
    /// Requests that panicked (or will, when polled).
    pub panics: u64,
}

impl FaultHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.shared.state.lock().0.clone()
    }

    /// Replaces the configuration; the generator keeps running (its `seed` is not re-read).
    ///
    /// # Errors
    ///
    /// If `config` is invalid; the running configuration is then unchanged.
    pub fn set(&self, config: FaultConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.shared.state.lock().0 = config;
        Ok(())
    }

    /// Changes the configuration in place.
    ///
    /// # Errors
    ///
    /// If the changed configuration is invalid; the running configuration is then unchanged.
    pub fn update(&self, change: impl FnOnce(&mut FaultConfig)) -> Result<(), ConfigError> {
        let mut state = self.shared.state.lock();
        let mut config = state.0.clone();
        change(&mut config);
        config.validate()?;
        state.0 = config;
        Ok(())
    }

    /// What the layer has done so far.
    pub fn stats(&self) -> FaultStats {
        let shared = &self.shared;
        FaultStats {
            requests: shared.requests.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
            hangs: shared.hangs.load(Ordering::Relaxed),
            panics: shared.panics.load(Ordering::Relaxed),
        }
    }
}
