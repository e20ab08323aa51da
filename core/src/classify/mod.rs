//! Outcome classification: how a completed call counts.

mod deferred;
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;

pub use self::deferred::Deferred;
#[cfg(feature = "grpc")]
pub use self::grpc::{GrpcBody, GrpcClassifier, grpc_code_outcome};
#[cfg(feature = "http")]
pub use self::http::HttpClassifier;

/// How a completed call counts towards a layer's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend accepted and served the call.
    Success,
    /// The backend failed or rejected the call: it counts against the backend.
    Failure,
    /// The call says nothing about the backend's health (for example, a request the client
    /// cancelled, or a 404 a classifier chooses to ignore): it is not counted at all.
    Ignore,
}

/// Maps a completed call's result to an [`Outcome`].
///
/// Implemented by [`DefaultClassifier`], by `HttpClassifier` (feature `http`), and by any
/// `Fn(Result<&Res, &Err>) -> Outcome` closure:
///
/// ```
/// use rampart_core::{Classify, Outcome};
///
/// // A 404 is the caller's problem, not the backend's: don't count it.
/// let not_found_is_neutral = |result: Result<&u16, &std::io::Error>| match result {
///     Ok(404) => Outcome::Ignore,
///     Ok(status) if *status >= 500 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// };
/// assert_eq!(not_found_is_neutral.classify(Ok(&404)), Outcome::Ignore);
/// assert_eq!(not_found_is_neutral.classify(Ok(&503)), Outcome::Failure);
/// ```
pub trait Classify<Res, Err> {
    /// Classifies one completed call.
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome;

    /// The [`Deferred`] outcome of a response whose end is still to come, or `None` (the
    /// default) to classify the response now.
    ///
    /// A layer whose response future records through
    /// [`Completion::poll_inner_or_defer`](crate::Completion::poll_inner_or_defer) (the
    /// breaker's, the balancer's) asks this first when the response arrives: given `Some`, it
    /// hands its recorder over and records nothing at the headers. `GrpcClassifier` (feature
    /// `grpc`) defers a gRPC answer whose status is not in its headers to the end of its body.
    fn defer(&self, response: &Res) -> Option<Deferred> {
        let _ = response;
        None
    }
}

impl<F, Res, Err> Classify<Res, Err> for F
where
    F: Fn(Result<&Res, &Err>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a [`Success`](Outcome::Success), `Err` a [`Failure`](Outcome::Failure).
///
/// ```
/// use rampart_core::{Classify, DefaultClassifier, Outcome};
///
/// let served: Result<u16, std::io::Error> = Ok(200);
/// assert_eq!(DefaultClassifier.classify(served.as_ref()), Outcome::Success);
/// let reset: Result<u16, std::io::Error> = Err(std::io::ErrorKind::ConnectionReset.into());
/// assert_eq!(DefaultClassifier.classify(reset.as_ref()), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, Err> Classify<Res, Err> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}
