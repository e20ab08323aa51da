//! The two traits of the CPU signal, [`CpuUsage`] and [`CpuSource`], and [`CpuError`].

use std::fmt;

/// How busy the CPU allowance is, as a fraction in [0, 1]: read on every request, so it must
/// be cheap (an atomic load).
pub trait CpuUsage: Send + Sync + 'static {
    /// The current (smoothed) utilisation, in [0, 1].
    fn usage(&self) -> f64;
}

impl<U: CpuUsage + ?Sized> CpuUsage for std::sync::Arc<U> {
    fn usage(&self) -> f64 {
        (**self).usage()
    }
}

/// A raw CPU meter: each sample is the utilisation, in [0, 1], since the previous sample.
pub trait CpuSource: Send + 'static {
    /// The utilisation since the previous sample (or since the source was created).
    ///
    /// # Errors
    ///
    /// If the meter could not be read this time; the sampler keeps the previous value.
    fn sample(&mut self) -> Result<f64, CpuError>;
}

impl<F> CpuSource for F
where
    F: FnMut() -> f64 + Send + 'static,
{
    fn sample(&mut self) -> Result<f64, CpuError> {
        Ok(self())
    }
}

/// No CPU usage could be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuError {
    reason: String,
}

impl CpuError {
    /// An error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why no usage could be read.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no CPU usage source: {}", self.reason)
    }
}

impl std::error::Error for CpuError {}
