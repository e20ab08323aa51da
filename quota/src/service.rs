//! [`Quota`]: the service that takes a token of its request's quota before each call.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::{Clock, SystemClock};
use tower::{BoxError, Service};

use crate::QuotaGroup;
use crate::future::ResponseFuture;

/// A service that admits each request to `S` only with a token of its key's fleet-wide quota.
///
/// A refused request resolves at once to [`QuotaExceeded`](crate::QuotaExceeded) (boxed)
/// without calling `S`. The decision never waits: it reads the key's lease in this process,
/// and leases are refilled from Redis in the background. A token is spent when the request is
/// admitted, whatever becomes of it.
///
/// Readiness is the inner service's: the quota decides in `call`. Inner errors pass through
/// untouched. Build it with [`QuotaLayer`](crate::QuotaLayer).
pub struct Quota<S, K, F, C = SystemClock> {
    inner: S,
    group: Arc<QuotaGroup<K, C>>,
    key_of: F,
}

impl<S, K, F, C> Quota<S, K, F, C> {
    pub(crate) fn from_parts(inner: S, group: Arc<QuotaGroup<K, C>>, key_of: F) -> Self {
        Self {
            inner,
            group,
            key_of,
        }
    }

    /// The group this service shares with its clones.
    pub fn group(&self) -> &Arc<QuotaGroup<K, C>> {
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

impl<S: Clone, K, F: Clone, C> Clone for Quota<S, K, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            group: Arc::clone(&self.group),
            key_of: self.key_of.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, C> fmt::Debug for Quota<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("inner", &self.inner)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, Req> Service<Req> for Quota<S, K, F, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + fmt::Display,
    F: Fn(&Req) -> K,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key_of)(&request);
        match self.group.check(&key) {
            Ok(()) => ResponseFuture::admitted(self.inner.call(request)),
            Err(refused) => ResponseFuture::refused(refused),
        }
    }
}
