//! [`EnforceDeadlineLayer`]: the layer, holding the clock the deadlines are read on.

use rampart_core::SystemClock;
use tower::Layer;

use super::service::EnforceDeadline;

/// Ends each request's future at the request's deadline with
/// [`DeadlineExceeded`](rampart_core::DeadlineExceeded), and refuses a request whose deadline
/// has passed without calling the inner service; see [the module](crate::deadline).
///
/// # Sharing
///
/// The layer holds only its clock: every service it makes reads a clone of it (clones of a
/// clock share its origin).
#[derive(Debug, Clone, Copy)]
pub struct EnforceDeadlineLayer<C = SystemClock> {
    clock: C,
}

impl EnforceDeadlineLayer {
    /// A layer reading deadlines on the [`SystemClock`].
    pub fn new() -> Self {
        Self::new_with(SystemClock::new())
    }
}

impl Default for EnforceDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> EnforceDeadlineLayer<C> {
    /// A layer reading deadlines on `clock` (of the same origin as the clock that made them).
    pub const fn new_with(clock: C) -> Self {
        Self { clock }
    }

    /// The clock the deadlines are read on.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<S, C: Clone> Layer<S> for EnforceDeadlineLayer<C> {
    type Service = EnforceDeadline<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        EnforceDeadline::new_with(inner, self.clock.clone())
    }
}
