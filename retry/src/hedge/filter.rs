//! [`MayHedge`]: the requests a hedge layer may send twice.

/// Says whether a request may be hedged: a hook for requests that must not run twice
/// (expensive, non-idempotent). Any `Fn(&Req) -> bool` is one.
///
/// The layer asks it once per request, in `call`, and only while the window is warm enough to
/// hedge at all. A request it refuses is sent once, as without the layer; one whose copy the
/// policy refuses ([`RetryPolicy::clone_request`](crate::RetryPolicy::clone_request) returning
/// `None`: a request the retry layer would not retry either) too.
///
/// ```
/// use rampart_retry::{HedgeConfig, HedgeLayer, Unlimited};
///
/// struct Query { sql: String }
///
/// let layer = HedgeLayer::new(HedgeConfig::default(), Unlimited)?
///     .only_hedging(|query: &Query| query.sql.starts_with("SELECT"));
/// # let _ = layer;
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
pub trait MayHedge<Req> {
    /// Whether `request` may be sent again while its first copy is still under way.
    fn may_hedge(&self, request: &Req) -> bool;
}

/// Every request may be hedged (that the policy can copy): the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyRequest;

impl<Req> MayHedge<Req> for AnyRequest {
    #[inline]
    fn may_hedge(&self, _request: &Req) -> bool {
        true
    }
}

impl<Req, F: Fn(&Req) -> bool> MayHedge<Req> for F {
    #[inline]
    fn may_hedge(&self, request: &Req) -> bool {
        self(request)
    }
}
