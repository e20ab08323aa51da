//! `ServiceBuilder` extensions, so that a rampart stack reads as one chain.
//!
//! ```
//! # fn main() -> Result<(), tower::BoxError> {
//! use rampart::ServiceBuilderExt;
//! use rampart::breaker::BreakerConfig;
//! use rampart::retry::{RatioConfig, RetryConfig};
//! use tower::ServiceBuilder;
//!
//! let client = ServiceBuilder::new()
//!     .budgeted_retry(RetryConfig::default(), RatioConfig::default().build()?)?
//!     .sre_breaker(BreakerConfig::default().with_name("inventory"))?
//!     .service_fn(|sku: u32| async move { Ok::<_, tower::BoxError>(sku) });
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! Each method validates its configuration and returns the builder, or the
//! [`ConfigError`](rampart_core::ConfigError) naming the field that is wrong.

use rampart_core::ConfigError;
#[cfg(feature = "breaker")]
use rampart_core::SystemClock;
use tower::ServiceBuilder;
use tower::layer::util::Stack;

#[cfg(feature = "breaker")]
use rampart_breaker::{BreakerConfig, BreakerLayer};
#[cfg(feature = "ratelimit")]
use rampart_ratelimit::{BbrConfig, BbrLimitLayer};
#[cfg(feature = "retry")]
use rampart_retry::{Budget, HedgeConfig, HedgeLayer, RetryConfig, RetryLayer};

/// A `ServiceBuilder` with `Outer` added over its layers `L`, or the configuration error.
pub type Extended<Outer, L> = Result<ServiceBuilder<Stack<Outer, L>>, ConfigError>;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// rampart's layers as `ServiceBuilder` methods.
///
/// Layers run in the order they are added: the first added sees a request first. A client
/// stack puts the retry and the hedge outside the breaker (each attempt and each copy is one
/// call the breaker judges), and all of them outside the balancer (which sends a hedge to
/// another endpoint than the copies under way). A retry and a hedge sharing one budget charge a
/// request to it once, in either order.
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds the SRE adaptive-throttling breaker built from `config`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    #[cfg(feature = "breaker")]
    fn sre_breaker(self, config: BreakerConfig) -> Extended<BreakerLayer, L>;

    /// Adds the breaker as [`sre_breaker`](Self::sre_breaker) does, judging each call with
    /// `classifier` (for example `HttpClassifier`, so that 5xx and 429 answers count as
    /// rejections by the backend).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    #[cfg(feature = "breaker")]
    fn sre_breaker_with<K>(
        self,
        config: BreakerConfig,
        classifier: K,
    ) -> Extended<BreakerLayer<SystemClock, K>, L>;

    /// Adds the BBR-style adaptive limiter built from `config` (reading the machine's CPU).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BbrConfig::validate`]), or if no CPU usage can be read
    /// on this machine (the error's field is `cpu`).
    #[cfg(feature = "ratelimit")]
    fn bbr_limit(self, config: BbrConfig) -> Extended<BbrLimitLayer, L>;

    /// Adds retries of failed requests, as `config` says (attempts, backoff, per-attempt
    /// timeout), within `budget`, with the default [`Policy`](rampart_retry::Policy).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    #[cfg(feature = "retry")]
    fn budgeted_retry<B: Budget>(
        self,
        config: RetryConfig,
        budget: B,
    ) -> Extended<RetryLayer<B>, L>;

    /// Adds retries as [`budgeted_retry`](Self::budgeted_retry) does, deciding what to retry
    /// with `policy` (for example `Policy::new().with_classifier(HttpClassifier)`).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`RetryConfig::validate`]).
    #[cfg(feature = "retry")]
    fn budgeted_retry_with<B: Budget, P>(
        self,
        config: RetryConfig,
        budget: B,
        policy: P,
    ) -> Extended<RetryLayer<B, P>, L>;

    /// Adds hedged requests, as `config` says (the delay's quantile, the copies), within
    /// `budget`, with the default [`Policy`](rampart_retry::Policy) (a request is copied with
    /// `Clone`): share one budget with [`budgeted_retry`](Self::budgeted_retry) by giving both an
    /// `Arc` of it. To hedge only what a retry policy would copy, add
    /// [`RetryLayer::hedge_layer`](rampart_retry::RetryLayer::hedge_layer) with `layer`.
    ///
    /// ```
    /// # fn main() -> Result<(), tower::BoxError> {
    /// use std::sync::Arc;
    /// use rampart::ServiceBuilderExt;
    /// use rampart::retry::{HedgeConfig, RatioConfig, RetryConfig};
    /// use tower::ServiceBuilder;
    ///
    /// let budget = Arc::new(RatioConfig::default().build()?);
    /// let client = ServiceBuilder::new()
    ///     .budgeted_retry(RetryConfig::default(), Arc::clone(&budget))?
    ///     .budgeted_hedge(HedgeConfig::default(), budget)?
    ///     .service_fn(|sku: u32| async move { Ok::<_, tower::BoxError>(sku) });
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`HedgeConfig::validate`]).
    #[cfg(feature = "retry")]
    fn budgeted_hedge<B: Budget>(
        self,
        config: HedgeConfig,
        budget: B,
    ) -> Extended<HedgeLayer<B>, L>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "breaker")]
    fn sre_breaker(self, config: BreakerConfig) -> Extended<BreakerLayer, L> {
        Ok(self.layer(BreakerLayer::new(config)?))
    }

    #[cfg(feature = "breaker")]
    fn sre_breaker_with<K>(
        self,
        config: BreakerConfig,
        classifier: K,
    ) -> Extended<BreakerLayer<SystemClock, K>, L> {
        Ok(self.layer(BreakerLayer::new(config)?.with_classifier(classifier)))
    }

    #[cfg(feature = "ratelimit")]
    fn bbr_limit(self, config: BbrConfig) -> Extended<BbrLimitLayer, L> {
        Ok(self.layer(BbrLimitLayer::new(config)?))
    }

    #[cfg(feature = "retry")]
    fn budgeted_retry<B: Budget>(
        self,
        config: RetryConfig,
        budget: B,
    ) -> Extended<RetryLayer<B>, L> {
        Ok(self.layer(RetryLayer::new(config, budget)?))
    }

    #[cfg(feature = "retry")]
    fn budgeted_retry_with<B: Budget, P>(
        self,
        config: RetryConfig,
        budget: B,
        policy: P,
    ) -> Extended<RetryLayer<B, P>, L> {
        Ok(self.layer(RetryLayer::new(config, budget)?.with_policy(policy)))
    }

    #[cfg(feature = "retry")]
    fn budgeted_hedge<B: Budget>(
        self,
        config: HedgeConfig,
        budget: B,
    ) -> Extended<HedgeLayer<B>, L> {
        Ok(self.layer(HedgeLayer::new(config, budget)?))
    }
}
