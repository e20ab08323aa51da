//! The synchronisation primitives of the rolling window, swapped for loom's models when the
//! crate is built with `--cfg rampart_loom` (see `tests/loom_window.rs`).

#[cfg(rampart_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(rampart_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};

/// A mutex guarding no data, serialising a rare slow path: rotating a window, refreshing a
/// cache.
#[derive(Debug, Default)]
pub(crate) struct SlowPathLock {
    #[cfg(not(rampart_loom))]
    inner: parking_lot::Mutex<()>,
    #[cfg(rampart_loom)]
    inner: loom::sync::Mutex<()>,
}

#[cfg(not(rampart_loom))]
impl SlowPathLock {
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.inner.lock()
    }

    pub(crate) fn try_lock(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.inner.try_lock()
    }
}

#[cfg(rampart_loom)]
impl SlowPathLock {
    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, ()> {
        // A loom mutex is only poisoned by a panicking model thread, which fails the model.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn try_lock(&self) -> Option<loom::sync::MutexGuard<'_, ()>> {
        self.inner.try_lock().ok()
    }
}

/// A small number, distinct for each of the first threads that ask, in the order they first
/// ask: it picks the thread's stripe of a window.
#[cfg(not(rampart_loom))]
#[inline]
pub(crate) fn thread_stripe_hint() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    HINT.with(|hint| match hint.get() {
        usize::MAX => {
            let assigned = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
            hint.set(assigned);
            assigned
        }
        assigned => assigned,
    })
}

/// loom's version: numbered afresh in every execution of a model, so that each execution
/// of the same schedule touches the same stripes.
#[cfg(rampart_loom)]
pub(crate) fn thread_stripe_hint() -> usize {
    use std::cell::Cell;

    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    loom::thread_local! {
        static HINT: Cell<usize> = Cell::new(usize::MAX);
    }
    HINT.with(|hint| match hint.get() {
        usize::MAX => {
            let assigned = NEXT.fetch_add(1, Ordering::Relaxed);
            hint.set(assigned);
            assigned
        }
        assigned => assigned,
    })
}
