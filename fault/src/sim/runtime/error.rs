use std::fmt;

/// A [`Handler`](crate::Handler) was polled where no worker of its
/// [`SimRuntime`](crate::SimRuntime) runs it: outside the tasks of
/// [`serve`](crate::SimRuntime::serve), or after the runtime was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotOnWorker {
    _private: (),
}

impl NotOnWorker {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for NotOnWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated handler polled outside its runtime's workers")
    }
}

impl std::error::Error for NotOnWorker {}

/// A [`SimRuntime`](crate::SimRuntime) request's task ended without an answer: it panicked, or
/// the runtime was dropped first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unanswered {
    _private: (),
}

impl Unanswered {
    /// The error.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated runtime ended the request without an answer")
    }
}

impl std::error::Error for Unanswered {}
