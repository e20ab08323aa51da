//! [`MayHedge`]: the requests a hedge layer may send twice.

/// Says whether a request may be hedged: a hook for requests that must not run twice
/// (expensive, non-idempotent). Any `Fn(&Req) -> bool` is one.
///
/// The layer asks it once per request, in `call`. A request it refuses is sent once, as
/// without the layer, and its latency stays out of the window: the hedge delay is a quantile
/// of the latencies of the requests it applies to, so a few expensive requests kept from
/// hedging do not lengthen it for the others. A request whose copy the policy refuses
/// ([`RetryPolicy::clone_request`](crate::RetryPolicy::clone_request) returning `None`: a
/// request the retry layer would not retry either) is sent once too.
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
