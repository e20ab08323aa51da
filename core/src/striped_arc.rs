//! [`StripedArc`]: a shared pointer whose clones and drops count on the calling thread's
//! stripe, for the handles that every request of a shared stack clones.
//!
//! The one module of the workspace with `unsafe` code: a pointer whose count is split over
//! stripes cannot be built from `Arc`s without a shared count again (see the type's docs).
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::sync::{AtomicU64, Ordering, Padded, fence};
use crate::{PerStripe, Stripes};

/// The allocation every clone points to.
struct Inner<T> {
    /// Stripes whose count is above zero: each holds one unit for as long as it is.
    holders: Padded<AtomicU64>,
    /// Handles counted in each stripe.
    counts: PerStripe<AtomicU64>,
    value: T,
}

/// A thread-safe reference-counted pointer, as [`std::sync::Arc`], whose count is kept per
/// stripe of threads: a clone counts on the calling thread's stripe, a drop on the stripe its
/// handle was counted in.
///
/// An `Arc`'s one count is written by every clone and drop, so that the threads of a server
/// cloning a shared service for each request (a handler clones its client stack, and each
/// layer's response future takes a reference to what the layer shares) move that count's
/// cache line from core to core at each request, each move several times the cost of a write to a line that stays on one core. The
/// layers keep what their services share behind a `StripedArc`, so that a request on one core
/// writes no count another core writes (`benches/benches/stack.rs`, group `stack_tasks`,
/// times a stack shared by two threads).
///
/// ```
/// use rampart_core::StripedArc;
///
/// let shared = StripedArc::new(String::from("budget"));
/// let on_another_thread = shared.clone();
/// let length = std::thread::spawn(move || on_another_thread.clone().len()).join().unwrap();
/// assert_eq!(length, 6);
/// assert!(StripedArc::ptr_eq(&shared, &shared.clone()));
/// ```
///
/// # How the count stays exact
///
/// Each stripe's count is on its own cache line. A shared `holders` count says how many
/// stripes have handles: a clone that takes its stripe's count from zero then adds one to
/// `holders`, and a drop that takes a count to zero then takes one from `holders`. While the
/// clone has not added its unit yet, the handle it clones from, counted in another stripe,
/// keeps that stripe's unit; and a stripe's count returns to zero only after the handle that
/// took it from zero, made after its unit was added, is dropped. So `holders` is above zero
/// while any handle exists, and the drop that takes it to zero, which happens once, frees the
/// value. A clone or a drop costs what an `Arc`'s does, plus finding the CPU's stripe; only a
/// stripe's first handle and its last touch `holders`.
///
/// The price is memory: one 128-byte line per stripe (by default one per CPU, up to 8, as a
/// window's [`Stripes`]), and no weak references.
pub struct StripedArc<T> {
    inner: NonNull<Inner<T>>,
    /// The stripe this handle is counted in.
    stripe: usize,
    owns: PhantomData<Inner<T>>,
}

// SAFETY: as for `Arc<T>`: handles on several threads give shared access to `T` (hence `Sync`)
// and the last one, on any thread, drops it (hence `Send`). The counts are atomics.
unsafe impl<T: Send + Sync> Send for StripedArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for StripedArc<T> {}

impl<T> StripedArc<T> {
    /// `value` behind a pointer with one stripe per CPU, up to 8.
    pub fn new(value: T) -> Self {
        Self::with_stripes(value, Stripes::Auto)
    }

    /// `value` behind a pointer with `stripes` stripes (rounded up to a power of two, at least
    /// one; `Stripes::Exactly(1)` makes it an `Arc` with one more word).
    pub fn with_stripes(value: T, stripes: Stripes) -> Self {
        let counts = PerStripe::new(stripes, || AtomicU64::new(0));
        let stripe = counts.stripe();
        counts.get(stripe).store(1, Ordering::Relaxed);
        let inner = Box::new(Inner {
            holders: Padded(AtomicU64::new(1)),
            counts,
            value,
        });
        Self {
            inner: NonNull::from(Box::leak(inner)),
            stripe,
            owns: PhantomData,
        }
    }

    /// Whether `this` and `other` point to the same value.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.inner == other.inner
    }

    #[inline]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: this handle is counted, so the allocation lives until it is dropped.
        unsafe { self.inner.as_ref() }
    }
}

impl<T> Deref for StripedArc<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Clone for StripedArc<T> {
    /// Another handle, counted on the calling thread's stripe.
    #[inline]
    fn clone(&self) -> Self {
        let inner = self.inner();
        let stripe = inner.counts.stripe();
        let count = inner.counts.get(stripe);
        // Relaxed, as an `Arc`'s increment: `self` keeps the value alive meanwhile.
        if count.fetch_add(1, Ordering::Relaxed) == 0 {
            // The stripe's first handle: the stripe now holds a unit of `holders`. No drop can
            // free the value before it is added: `self`, counted in another stripe (this one
            // was empty), holds that stripe's unit until after this clone returns, and this
            // stripe's count cannot return to zero before the handle made here is dropped.
            inner.holders.0.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            inner: self.inner,
            stripe,
            owns: PhantomData,
        }
    }
}

impl<T> Drop for StripedArc<T> {
    fn drop(&mut self) {
        let inner = self.inner();
        if inner
            .counts
            .get(self.stripe)
            .fetch_sub(1, Ordering::Release)
            != 1
        {
            return;
        }
        // The stripe's last handle: what the others of the stripe did happens before the unit
        // is given back.
        fence(Ordering::Acquire);
        if inner.holders.0.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // The last handle of all: everything every other handle did happens before the free.
        fence(Ordering::Acquire);
        // SAFETY: no handle is left, and the allocation came from `Box::leak` in
        // `with_stripes`.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

impl<T: fmt::Debug> fmt::Debug for StripedArc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Default> Default for StripedArc<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

#[cfg(all(test, not(rampart_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its drops.
    struct Tally(Arc<AtomicUsize>);

    impl Drop for Tally {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn drops(tally: &Arc<AtomicUsize>) -> usize {
        tally.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn the_value_is_dropped_once_when_the_last_handle_goes() {
        for stripes in [1, 2, 8] {
            let tally = Arc::new(AtomicUsize::new(0));
            let first =
                StripedArc::with_stripes(Tally(Arc::clone(&tally)), Stripes::Exactly(stripes));
            let second = first.clone();
            drop(first);
            assert_eq!(drops(&tally), 0, "{stripes} stripes: a handle is left");
            let third = second.clone();
            drop(second);
            assert_eq!(drops(&tally), 0);
            drop(third);
            assert_eq!(drops(&tally), 1, "{stripes} stripes");
        }
    }

    #[test]
    fn handles_cloned_and_dropped_on_many_threads_drop_the_value_once_at_the_end() {
        let tally = Arc::new(AtomicUsize::new(0));
        let root = StripedArc::with_stripes(Tally(Arc::clone(&tally)), Stripes::Exactly(4));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let mine = root.clone();
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for round in 0..10_000 {
                        kept.push(mine.clone());
                        if round % 3 == 0 {
                            kept.clear();
                        }
                    }
                    // Handles made here, dropped on the thread that joins.
                    kept
                })
            })
            .collect();
        let left: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("no panic"))
            .collect();
        assert_eq!(drops(&tally), 0);
        let holders = root.inner().holders.0.load(Ordering::SeqCst);
        assert!(
            (1..=4).contains(&holders),
            "one unit per stripe in use: {holders}"
        );
        let counted: u64 = root
            .inner()
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum();
        assert_eq!(counted, left.len() as u64 + 1, "every handle counted once");
        drop(left);
        assert_eq!(drops(&tally), 0);
        drop(root);
        assert_eq!(drops(&tally), 1);
    }

    #[test]
    fn stripes_round_up_to_a_power_of_two() {
        for (asked, made) in [(0, 1), (1, 1), (3, 4), (8, 8)] {
            let shared = StripedArc::with_stripes((), Stripes::Exactly(asked));
            assert_eq!(shared.inner().counts.len(), made, "{asked}");
        }
    }
}
