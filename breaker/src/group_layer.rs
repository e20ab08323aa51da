//! [`BreakerGroupLayer`] and [`KeyedBreaker`]: a breaker per key of the request.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::{Classify, Clock, Completion, DefaultClassifier, RequestContext, SystemClock};
use tower::{BoxError, Layer, Service};

use crate::BreakerGroup;
use crate::future::{Admitted, Holder, ResponseFuture};

/// Wraps services in a [`KeyedBreaker`]: each request is throttled by the breaker of its key,
/// as `key_of(&request)` names it (a route, an RPC method, a tenant).
///
/// ```
/// use rampart_breaker::{BreakerConfig, BreakerGroup, BreakerGroupLayer};
/// use tower::ServiceBuilder;
///
/// let group: BreakerGroup<String> = BreakerGroup::new(BreakerConfig::default().with_name("backend"))?;
/// let layer = BreakerGroupLayer::new(group, |path: &String| path.clone());
/// let client = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|path: String| async move { Ok::<_, std::io::Error>(path.len()) });
/// # let _ = client;
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Sharing
///
/// Every service the layer builds, and their clones, share the layer's one group.
pub struct BreakerGroupLayer<K, F, C = SystemClock, L = DefaultClassifier> {
    group: Arc<BreakerGroup<K, C>>,
    key_of: F,
    classifier: L,
}

impl<K: Send + Sync + 'static, F> BreakerGroupLayer<K, F> {
    /// A layer throttling each request with `group`'s breaker for `key_of(&request)`. The
    /// members' gauges are kept current while their keys see no call (see
    /// [`BreakerGroup::keep_gauges_current`]).
    pub fn new<C: Clock>(group: BreakerGroup<K, C>, key_of: F) -> BreakerGroupLayer<K, F, C> {
        let group = Arc::new(group);
        group.keep_gauges_current();
        BreakerGroupLayer {
            group,
            key_of,
            classifier: DefaultClassifier,
        }
    }
}

impl<K, F, C, L> BreakerGroupLayer<K, F, C, L> {
    /// The same layer, classifying responses with `classifier`.
    pub fn with_classifier<L2>(self, classifier: L2) -> BreakerGroupLayer<K, F, C, L2> {
        BreakerGroupLayer {
            group: self.group,
            key_of: self.key_of,
            classifier,
        }
    }

    /// The group the layer's services share.
    pub fn group(&self) -> &Arc<BreakerGroup<K, C>> {
        &self.group
    }
}

impl<K, F: Clone, C, L: Clone> Clone for BreakerGroupLayer<K, F, C, L> {
    fn clone(&self) -> Self {
        Self {
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S, K, F: Clone, C, L: Clone> Layer<S> for BreakerGroupLayer<K, F, C, L> {
    type Service = KeyedBreaker<S, K, F, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBreaker {
            inner,
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<K, F, C, L: fmt::Debug> fmt::Debug for BreakerGroupLayer<K, F, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerGroupLayer")
            .field("group", &self.group)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

/// A service that throttles each request to `S` with the breaker of the request's key.
///
/// It behaves as [`Breaker`](crate::Breaker) does, one breaker per key; build it with
/// [`BreakerGroupLayer`].
pub struct KeyedBreaker<S, K, F, C = SystemClock, L = DefaultClassifier> {
    inner: S,
    group: Arc<BreakerGroup<K, C>>,
    key_of: F,
    classifier: L,
}

impl<S, K, F, C, L> KeyedBreaker<S, K, F, C, L> {
    /// The group this service shares with its clones.
    pub fn group(&self) -> &Arc<BreakerGroup<K, C>> {
        &self.group
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F: Clone, C, L: Clone> Clone for KeyedBreaker<S, K, F, C, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, C, L: fmt::Debug> fmt::Debug for KeyedBreaker<S, K, F, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreaker")
            .field("inner", &self.inner)
            .field("group", &self.group)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, L, Req> Service<Req> for KeyedBreaker<S, K, F, C, L>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
    C: Clock + Clone,
    L: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key_of)(&request);
        let now = self.group.now();
        let breaker = self.group.get_at(&key, now);
        let said = RequestContext::current().criticality();
        if let Err(rejected) = breaker.admit_at(now, said, None) {
            return ResponseFuture::rejected(rejected);
        }
        let admitted = Admitted(Holder::Keyed(breaker), said.unwrap_or_default());
        let completion = Completion::new(admitted, self.classifier.clone());
        ResponseFuture::admitted(self.inner.call(request), completion)
    }
}
