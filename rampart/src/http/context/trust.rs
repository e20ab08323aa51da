//! [`Trust`]: which callers' criticality a server honours.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

/// Which inbound requests' criticality header a [`ServerContextLayer`] honours.
///
/// Criticality from the network is a privilege: a caller that may send `critical-plus` jumps
/// ahead of every other caller's work when the server sheds. The default, [`Trust::None`],
/// honours no caller; a service reached only by its own fleet trusts [`Trust::All`]; one
/// reached by both decides per request with [`Trust::when`].
///
/// ```
/// use rampart::http::Trust;
///
/// /// The peer's identity, put in the request's extensions by the TLS layer in front.
/// #[derive(Clone)]
/// struct Peer(&'static str);
///
/// // The service's own fleet: callers that present a client certificate of ours.
/// let fleet = Trust::when(|request| {
///     request.extensions.get::<Peer>().is_some_and(|peer| peer.0.ends_with(".internal"))
/// });
/// let (mut ours, _) = http::Request::new(()).into_parts();
/// ours.extensions.insert(Peer("checkout.internal"));
/// let (stranger, _) = http::Request::new(()).into_parts();
/// assert!(fleet.trusts(&ours));
/// assert!(!fleet.trusts(&stranger));
/// assert!(!Trust::default().trusts(&ours));
/// ```
///
/// [`ServerContextLayer`]: crate::http::ServerContextLayer
#[derive(Clone, Default)]
pub enum Trust {
    /// Every caller's criticality is honoured (up to the layer's cap): for a service that only
    /// its own services call.
    All,
    /// No caller's criticality is honoured: every request gets the layer's default. The
    /// default, and what an internet-facing service must use.
    #[default]
    None,
    /// A request's criticality is honoured when the predicate holds for its head: a peer
    /// identity a TLS layer put in its extensions, a header the service's own edge sets, its
    /// path. Build it with [`Trust::when`].
    When(Arc<dyn Fn(&Parts) -> bool + Send + Sync>),
}

impl Trust {
    /// Honours a request's criticality when `predicate` holds for its head.
    pub fn when(predicate: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        Self::When(Arc::new(predicate))
    }

    /// Whether a request with this head may set its own criticality.
    pub fn trusts(&self, request: &Parts) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::When(predicate) => predicate(request),
        }
    }
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("All"),
            Self::None => f.write_str("None"),
            Self::When(_) => f.write_str("When(..)"),
        }
    }
}
