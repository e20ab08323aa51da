//! loom models of [`StripedArc`]'s counting: whatever the interleaving of clones and drops on
//! threads of different stripes, the value is dropped exactly once, after its last use.
//!
//! Run with `RUSTFLAGS="--cfg rampart_loom" cargo test -p rampart-core --test
//! loom_striped_arc --release` (CI does).
#![cfg(rampart_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use rampart_core::{StripedArc, Stripes};

/// Marks itself dropped; a use after that fails the model.
struct Value {
    dropped: Arc<AtomicBool>,
    drops: Arc<AtomicUsize>,
}

impl Value {
    fn use_it(&self) {
        assert!(!self.dropped.load(Ordering::SeqCst), "used after its drop");
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn value() -> (Value, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let value = Value {
        dropped: Arc::new(AtomicBool::new(false)),
        drops: Arc::clone(&drops),
    };
    (value, drops)
}

/// Two threads, each on its own stripe (loom numbers a model's threads afresh in each
/// execution), clone the handle they were given and drop both, while the first handle is
/// dropped on the main thread: one drop, at the end.
#[test]
fn handles_dropped_on_racing_stripes_drop_the_value_once() {
    loom::model(|| {
        let (value, drops) = value();
        let root = StripedArc::with_stripes(value, Stripes::Exactly(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let given = root.clone();
                thread::spawn(move || {
                    let mine = given.clone();
                    drop(given);
                    mine.use_it();
                })
            })
            .collect();
        drop(root);
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A stripe's last handle is dropped while another thread makes the stripe's count nonzero
/// again from a handle of another stripe: the value outlives every handle.
#[test]
fn a_stripe_emptied_while_refilled_keeps_the_value_alive() {
    loom::model(|| {
        let (value, drops) = value();
        let root = StripedArc::with_stripes(value, Stripes::Exactly(2));
        let for_a = root.clone();
        let for_b = root.clone();
        let a = thread::spawn(move || {
            let made_here = for_a.clone();
            drop(for_a);
            made_here
        });
        let b = thread::spawn(move || {
            let made_here = for_b.clone();
            drop(for_b);
            made_here.use_it();
        });
        drop(root);
        let from_a = a.join().expect("no panic");
        b.join().expect("no panic");
        from_a.use_it();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(from_a);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}
