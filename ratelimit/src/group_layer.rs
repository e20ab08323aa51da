//! [`BbrGroupLayer`] and [`KeyedBbrLimit`]: each request limited by the limiter of its key.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::{Clock, RequestContext, SystemClock};
use tower::{BoxError, Layer, Service};

use crate::cpu::CpuUsage;
use crate::future::ResponseFuture;
use crate::{BbrGroup, SystemCpu};

/// Wraps services in a [`KeyedBbrLimit`]: each request is limited by the limiter of its key,
/// as `key_of(&request)` names it.
///
/// ```
/// use rampart_core::SystemClock;
/// use rampart_ratelimit::{BbrConfig, BbrGroup, BbrGroupLayer, ManualCpu};
/// use tower::ServiceBuilder;
///
/// let group: BbrGroup<String, _, _> =
///     BbrGroup::new_with(BbrConfig::default(), SystemClock::new(), ManualCpu::new(0.1))?;
/// let server = ServiceBuilder::new()
///     .layer(BbrGroupLayer::new(group, |path: &String| path.clone()))
///     .service_fn(|path: String| async move { Ok::<_, std::io::Error>(path.len()) });
/// # let _ = server;
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Sharing
///
/// Every service the layer builds, and their clones, share the layer's one group: a key's
/// limit is the whole server's.
pub struct BbrGroupLayer<K, F, C = SystemClock, U = SystemCpu> {
    group: Arc<BbrGroup<K, C, U>>,
    key_of: F,
}

impl<K: Send + Sync + 'static, F> BbrGroupLayer<K, F> {
    /// A layer limiting each request with `group`'s limiter for `key_of(&request)`. The
    /// members' gauges are kept current while their keys see no request (see
    /// [`BbrGroup::keep_gauges_current`]).
    pub fn new<C: Clock, U: CpuUsage>(
        group: BbrGroup<K, C, U>,
        key_of: F,
    ) -> BbrGroupLayer<K, F, C, U> {
        let group = Arc::new(group);
        group.keep_gauges_current();
        BbrGroupLayer { group, key_of }
    }
}

impl<K, F, C, U> BbrGroupLayer<K, F, C, U> {
    /// The group the layer's services share.
    pub fn group(&self) -> &Arc<BbrGroup<K, C, U>> {
        &self.group
    }
}

impl<K, F: Clone, C, U> Clone for BbrGroupLayer<K, F, C, U> {
    fn clone(&self) -> Self {
        Self {
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
        }
    }
}

impl<K, F, C, U> fmt::Debug for BbrGroupLayer<K, F, C, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BbrGroupLayer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl<S, K, F: Clone, C, U> Layer<S> for BbrGroupLayer<K, F, C, U> {
    type Service = KeyedBbrLimit<S, K, F, C, U>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBbrLimit {
            inner,
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
        }
    }
}

/// A service that limits each request to `S` with the limiter of the request's key; see
/// [`BbrGroupLayer`].
pub struct KeyedBbrLimit<S, K, F, C = SystemClock, U = SystemCpu> {
    inner: S,
    group: Arc<BbrGroup<K, C, U>>,
    key_of: F,
}

impl<S, K, F, C, U> KeyedBbrLimit<S, K, F, C, U> {
    /// The group this service shares with its clones.
    pub fn group(&self) -> &Arc<BbrGroup<K, C, U>> {
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

impl<S: Clone, K, F: Clone, C, U> Clone for KeyedBbrLimit<S, K, F, C, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, C, U> fmt::Debug for KeyedBbrLimit<S, K, F, C, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBbrLimit")
            .field("inner", &self.inner)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, U, Req> Service<Req> for KeyedBbrLimit<S, K, F, C, U>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
    C: Clock + Clone,
    U: CpuUsage + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, U>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key_of)(&request);
        let limiter = self.group.get_at(&key, self.group.clock().recent());
        let arrival = limiter.arrival();
        let context = RequestContext::current();
        if let Some(deadline) = context.deadline()
            && let Err(refusal) = limiter.check_deadline_as(
                (arrival.precise(limiter.clock()), arrival.at),
                deadline,
                context.criticality(),
            )
        {
            return ResponseFuture::refused(refusal.into_boxed());
        }
        match limiter.acquire_as(arrival, context.criticality()) {
            Ok(permit) => ResponseFuture::admitted(self.inner.call(request), permit),
            Err(shed) => ResponseFuture::refused(shed),
        }
    }
}
