//! The synchronisation primitives of the rolling window, swapped for loom's models when the
//! crate is built with `--cfg rampart_loom` (see `tests/loom_window.rs`).

#[cfg(rampart_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(rampart_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

/// A mutex guarding no data, serialising the rare slow path that rotates a window.
#[derive(Debug, Default)]
pub(crate) struct RotationLock {
    #[cfg(not(rampart_loom))]
    inner: parking_lot::Mutex<()>,
    #[cfg(rampart_loom)]
    inner: loom::sync::Mutex<()>,
}

#[cfg(not(rampart_loom))]
impl RotationLock {
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.inner.lock()
    }
}

#[cfg(rampart_loom)]
impl RotationLock {
    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, ()> {
        // A loom mutex is only poisoned by a panicking model thread, which fails the model.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
