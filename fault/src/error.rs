use std::fmt;

/// The error a [`Fault`](crate::Fault) service returns for an injected failure.
///
/// Find it by downcasting the `BoxError`:
///
/// ```
/// # use rampart_fault::InjectedError;
/// let err: tower::BoxError = InjectedError::new().into();
/// assert!(err.is::<InjectedError>());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedError {
    _private: (),
}

impl InjectedError {
    /// The injected error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for InjectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("injected fault")
    }
}

impl std::error::Error for InjectedError {}

/// A [`SimBackend`](crate::SimBackend) turned a request away because its queue was full.
///
/// The simulated server rejects it at once and spends no worker time on it, as a real server
/// with a bounded accept queue does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFull {
    _private: (),
}

impl QueueFull {
    /// The rejection.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated backend overloaded: queue full")
    }
}

impl std::error::Error for QueueFull {}

/// A delay was needed but the call was not made inside a tokio runtime.
///
/// [`Fault`](crate::Fault) and [`SimBackend`](crate::SimBackend) wait on tokio's timer (so
/// that they follow `tokio::time::pause()`); outside a runtime they return this error instead
/// of panicking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingRuntime {
    _private: (),
}

impl MissingRuntime {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for MissingRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rampart-fault needs a tokio runtime with time enabled to wait")
    }
}

impl std::error::Error for MissingRuntime {}

/// Whether the calling thread can create a tokio timer.
pub(crate) fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}
