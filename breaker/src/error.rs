//! The error of a rejected call: [`Rejected`], defined in `rampart-core` and re-exported here.

/// The breaker rejected the call locally, without calling the backend (boxed in
/// `tower::BoxError`). Defined in `rampart-core`, so that `rampart-retry` never retries it without
/// depending on this crate.
pub use rampart_core::Rejected;
