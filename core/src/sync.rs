//! The synchronisation primitives of the rolling window, swapped for loom's models when the
//! crate is built with `--cfg rampart_loom` (see `tests/loom_window.rs`).

#[cfg(rampart_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
#[cfg(not(rampart_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

/// A value alone on its cache lines (128 bytes: two, the unit adjacent-line prefetchers
/// pull in), so that what other threads write beside it never moves it between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

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

/// The number that picks the calling thread's stripe: on Linux, the CPU it runs on, so that
/// threads running at the same time on different CPUs use different stripes however many
/// threads there are (a pool's workers and its blocking threads alike); elsewhere a number
/// given to each thread in the order it first asks. The CPU is asked of the kernel
/// (`sched_getcpu`, through the vDSO) once per [`CPU_REUSES`] uses by a thread: the lookup
/// then costs about a thread-local read (`benches/benches/window.rs`, row
/// `record/floor/thread_stripe`). Either number may differ from one call to the next (a thread
/// moved to another CPU): what is written to a stripe is always read back from all of them,
/// or from the stripe recorded, so a stale number costs speed, never a count.
#[cfg(all(not(rampart_loom), target_os = "linux"))]
#[inline]
pub(crate) fn thread_stripe_hint() -> usize {
    use std::cell::Cell;

    std::thread_local! {
        /// The CPU last asked for, and the uses left before asking again.
        static CPU: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
    }
    CPU.with(|cpu| match cpu.get() {
        (_, 0) => {
            let number = rustix::thread::sched_getcpu();
            cpu.set((number, CPU_REUSES));
            number
        }
        (number, left) => {
            cpu.set((number, left - 1));
            number
        }
    })
}

/// Uses of a thread's CPU number before the kernel is asked again: a thread moved to another
/// CPU writes its former CPU's stripes for at most this many more records.
#[cfg(all(not(rampart_loom), target_os = "linux"))]
const CPU_REUSES: u32 = 63;

/// See the Linux version: a number given to each thread in the order it first asks.
#[cfg(all(not(rampart_loom), not(target_os = "linux")))]
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
