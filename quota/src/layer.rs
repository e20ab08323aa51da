//! [`QuotaLayer`]: wraps services in a [`Quota`], all sharing one [`QuotaGroup`].

use std::fmt;
use std::sync::Arc;

use rampart_core::SystemClock;
use tower::Layer;

use crate::{Quota, QuotaGroup};

/// Wraps services in a [`Quota`]: each request takes a token of the fleet-wide quota of its
/// key, as `key_of(&request)` names it (a tenant, an API key, a downstream dependency).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rampart_core::ConfigError> {
/// use rampart_quota::{QuotaConfig, QuotaGroup, QuotaLayer};
/// use tower::ServiceBuilder;
///
/// let group: QuotaGroup<String> = QuotaGroup::new(QuotaConfig::per_second(500.0).with_name("api"))?;
/// let service = ServiceBuilder::new()
///     .layer(QuotaLayer::new(group, |request: &(String, u32)| request.0.clone()))
///     .service_fn(|(_tenant, n): (String, u32)| async move { Ok::<_, std::io::Error>(n * 2) });
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
///
/// # Sharing
///
/// Every service the layer builds, and their clones, share the layer's one group: its leases
/// and its Redis connection.
pub struct QuotaLayer<K, F, C = SystemClock> {
    group: Arc<QuotaGroup<K, C>>,
    key_of: F,
}

impl<K, F, C> QuotaLayer<K, F, C> {
    /// A layer deciding each request with `group`'s quota for `key_of(&request)`.
    pub fn new(group: QuotaGroup<K, C>, key_of: F) -> Self {
        Self::from_group(Arc::new(group), key_of)
    }

    /// A layer over a group shared with other layers or with code that calls it directly.
    pub fn from_group(group: Arc<QuotaGroup<K, C>>, key_of: F) -> Self {
        Self { group, key_of }
    }

    /// The group the layer's services share.
    pub fn group(&self) -> &Arc<QuotaGroup<K, C>> {
        &self.group
    }
}

impl<K, F: Clone, C> Clone for QuotaLayer<K, F, C> {
    fn clone(&self) -> Self {
        Self {
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
        }
    }
}

impl<S, K, F: Clone, C> Layer<S> for QuotaLayer<K, F, C> {
    type Service = Quota<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Quota::from_parts(inner, Arc::clone(&self.group), self.key_of.clone())
    }
}

impl<K, F, C> fmt::Debug for QuotaLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaLayer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
